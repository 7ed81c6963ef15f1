"""The harness end to end: real servers, real clients, real SQLite logs, the real command line."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from mutants.zoo import mutant
from support import wait_for

from harness.clients import Options
from harness.log import LogReader
from harness.pbt import LiveTarget, search
from harness.plan import CLOSE, EXIT, HALF_RESET, PAUSE, RECONNECT, RESET, SEND, ClientPlan, Op, Plan, Shape, plans
from harness.runner import LiveServer, RunConfig, run_plan
from harness.scenario import shape_for
from harness.target import Target, can_connect, reference

ROOT = Path(__file__).resolve().parent.parent


def broken(name: str) -> Target:
    """One of the deliberately broken servers of the mutant zoo."""
    return mutant(name).target()


def busy_plan(clients: int) -> Plan:
    """Every kind of operation, by many clients at once."""
    ops = [
        Op(SEND, "hola"),
        Op(SEND, 'it\'s "quoted"', pipelined=True),
        Op(SEND, "ñandú 😀"),
        Op(PAUSE, seconds=0.05),
        Op(RESET),
        Op(SEND, "after a reset"),
        Op(HALF_RESET, "never stored"),
        Op(SEND, "x" * 3000),
        Op(RECONNECT),
        Op(SEND, "é" * 1500),
        Op(EXIT),
        Op(SEND, "again"),
        Op(CLOSE),
        Op(SEND, "last"),
    ]
    return Plan([ClientPlan(ops, start=(i % 10) / 100) for i in range(clients)], seed=7, name="busy")


@pytest.mark.slow
def test_over_a_hundred_clients_against_the_reference_are_valid(tmp_path: Path) -> None:
    outcome = run_plan(reference(), busy_plan(120), tmp_path / "run")
    r = outcome.result
    assert r.valid is True and r.anomalies == [], r.summary()
    assert r.counts.sent == 120 * 9 + 1  # the probe too
    assert r.counts.acked == r.counts.stored == 120 * 8 + 1
    assert r.counts.indeterminate == 120  # the half-sent ones
    assert all(s in ("pass", "n/a") for s in r.invariants.values()), r.invariants
    assert r.invariants[7] == "pass" and r.invariants[10] == "pass"
    assert (outcome.rundir / "plan.json").exists() and (outcome.rundir / "history.jsonl").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "expected"),
    [("drop_some", {"lost"}), ("store_twice", {"duplicate"}), ("raw_framing", {"merged", "split"})],
)
def test_broken_servers_are_caught_and_shrunk(tmp_path: Path, name: str, expected: set[str]) -> None:
    target = broken(name)
    config = RunConfig(options=Options(ack_timeout=2.0, close_timeout=2.0))
    found = search(
        target,
        tmp_path,
        replace(shape_for(target, max_clients=6), faults=False),  # plan shrinking here, fault schedules elsewhere
        seed=2026,
        max_examples=40,
        budget=60,
        shrink_budget=45,
        reruns=3,
        config=config,
    )
    assert found.minimal is not None, f"{name} not caught in {found.examples} examples"
    kinds = {a.kind for a in found.minimal.result.anomalies}
    assert kinds & expected, kinds
    first, minimal = found.first_failure.plan, found.minimal.plan  # type: ignore[union-attr]
    print(
        f"{name}: caught after {found.first_failure_after:.1f} s; plan shrunk from {len(first.clients)} clients, "
        f"{first.size()} items, {first.text_bytes} bytes to {len(minimal.clients)} clients, {minimal.size()} items, "
        f"{minimal.text_bytes} bytes; reproduced {found.reproduced}/{found.reruns}"
    )
    assert len(minimal.clients) <= 2 and minimal.size() <= 5, minimal.to_json()[:2000]
    assert (tmp_path / "minimal" / "plan.json").exists()


@pytest.fixture
def live_reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveTarget]:
    live = LiveTarget(reference(), tmp_path_factory.mktemp("live"))
    yield live
    live.close()


def test_your_own_given_test_against_a_live_target(live_reference: LiveTarget) -> None:
    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(plans(Shape(max_clients=3, max_ops=4, max_text=100)))
    def check(plan: Plan) -> None:
        live_reference.check(plan)

    check()
    assert live_reference.live.starts == 1  # one server for every example


def test_live_target_check_raises_with_anomalies_and_a_replay_command(tmp_path: Path) -> None:
    live = LiveTarget(broken("store_twice"), tmp_path)
    try:
        with pytest.raises(AssertionError, match=r"(?s)duplicate.*chat-harness replay"):
            for _ in range(3):  # ids are counted server-wide: a few sends make the fourth row
                live.check(Plan([ClientPlan([Op(SEND, "a"), Op(SEND, "b")])]))
    finally:
        live.close()


def harness_cli(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_cli_run_writes_a_valid_report(tmp_path: Path) -> None:
    proc = harness_cli(
        "run", "--seed", "5", "--clients", "4", "--duration", "3", "--report-dir", "out", "--quiet", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "latest" / "report.json").read_text())
    assert report["schema"] == "chat-harness/report" and report["version"] == 2
    assert report["verdict"] == "valid" and report["environment"]["seed"] == 5
    [scenario] = report["scenarios"]
    assert scenario["name"] == "random" and scenario["search"]["examples"] >= 1
    assert {"sent", "acked", "stored", "lost", "duplicated", "indeterminate"} <= set(scenario["counts"])
    assert scenario["latency"]["p50_ms"] is not None
    assert proc.stdout == "" and proc.stderr == ""  # --quiet


def test_cli_exit_codes_replay_and_check_on_a_broken_server(tmp_path: Path) -> None:
    target = mutant("drop_some").target_file
    proc = harness_cli(
        "run",
        "--target",
        str(target),
        "--seed",
        "1",
        "--clients",
        "3",
        "--duration",
        "20",
        "--report-dir",
        "out",
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    report = json.loads((tmp_path / "out" / "latest" / "report.json").read_text())
    scenario = report["scenarios"][0]
    assert report["verdict"] == "invalid" and scenario["anomalies"][0]["kind"] == "lost"
    assert scenario["search"]["reproduced"].endswith("/5")
    replay = scenario["replay"]
    assert replay.startswith("chat-harness replay ") and str(target) in replay
    plan = replay.split()[2]
    proc = harness_cli("replay", plan, "--target", str(target), "--times", "3", "--report-dir", "out", cwd=tmp_path)
    assert proc.returncode in (0, 1) and "reproduced" in proc.stderr  # the defect depends on row ids: k/3
    history = Path(plan).with_name("history.jsonl")
    proc = harness_cli("check", str(history), "--target", str(target), cwd=tmp_path)
    assert proc.returncode == 1 and "lost" in proc.stdout
    proc = harness_cli("check", str(history), "--target", "reference", cwd=tmp_path)
    assert proc.returncode == 1  # the same log read through the reference mapping


def test_cli_rejects_unknown_scenarios_and_bad_targets(tmp_path: Path) -> None:
    proc = harness_cli("run", "no-such-scenario", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown scenario" in proc.stderr
    (tmp_path / "bad.toml").write_text('name = "x"\n')
    proc = harness_cli("run", "--target", "bad.toml", cwd=tmp_path)
    assert proc.returncode == 2 and "'command' is required" in proc.stderr and "Traceback" not in proc.stderr
    proc = harness_cli("list", cwd=tmp_path)
    assert proc.returncode == 0 and "random" in proc.stdout


def test_the_plan_is_on_disk_before_it_runs_and_a_killed_run_leaves_no_server(tmp_path: Path) -> None:
    harness = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--seed",
            "9",
            "--clients",
            "3",
            "--duration",
            "60",
            "--report-dir",
            "out",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        plan = wait_for(lambda: next(iter(tmp_path.glob("out/*/random/current/plan.json")), None), what="plan.json")
        history = plan.with_name("history.jsonl")
        wait_for(lambda: history.exists() and '"run"' in history.read_text(), what="the run record")
        port = json.loads(history.read_text().splitlines()[0])["value"]["port"]
        harness.send_signal(signal.SIGKILL)
        harness.wait(10)
        wait_for(lambda: not can_connect("127.0.0.1", port), what="the server to die with the harness")
    finally:
        harness.kill()
        harness.wait(5)
    assert Plan.load(plan).clients
    proc = harness_cli("replay", str(plan), "--report-dir", "again", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0


@pytest.mark.xdist_group("port-5000")
@pytest.mark.usefixtures("port_5000")
def test_a_pfo1_style_server_on_a_fixed_port(tmp_path: Path) -> None:
    if can_connect("127.0.0.1", 5000):
        pytest.skip("something else listens on port 5000")
    proc = harness_cli(
        "run",
        "--target",
        str(ROOT / "examples" / "pfo1.toml"),
        "--seed",
        "3",
        "--clients",
        "4",
        "--duration",
        "4",
        "--report-dir",
        "out",
        "--quiet",
        cwd=tmp_path,
    )
    report = json.loads((tmp_path / "out" / "latest" / "report.json").read_text())
    assert proc.returncode == 0, report["scenarios"][0]
    assert report["scenarios"][0]["counts"]["acked"] > 0
    assert not can_connect("127.0.0.1", 5000)


def test_every_ack_is_audited_against_the_log_and_an_early_ack_is_caught(tmp_path: Path) -> None:
    plan = Plan([ClientPlan([Op(SEND, f"m{i}") for i in range(5)]) for _ in range(3)], seed=3, name="audit")
    good = run_plan(reference(), plan, tmp_path / "reference")
    audits = [r for r in good.records if r.f == "audit"]
    assert all(r.get("visible") for r in audits), good.result.summary()
    acked = sorted(r.get("token") for r in good.records if r.f == "send" and r.type == "ok" and r.client < 3)
    assert len(acked) == 15 and sorted(t for r in audits for t in r.get("tokens")) == acked
    early = run_plan(broken("ack_before_commit"), plan, tmp_path / "early")
    assert "ack-before-commit" in {a.kind for a in early.result.anomalies}, early.result.summary()


def test_rows_of_earlier_traffic_still_being_stored_when_a_run_starts_are_not_phantoms(tmp_path: Path) -> None:
    live = LiveServer(reference(), tmp_path / "server")
    try:
        srv = live.ensure()
        log = LogReader(srv.db_path, reference().log)
        before = log.max_id()

        def someone_else() -> None:  # untokened lines for 1 s, then a polite leave: a user, a load generator
            with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
                end = time.monotonic() + 1.0
                n = 0
                while time.monotonic() < end:
                    n += 1
                    sock.sendall(f"/say earlier traffic {n}\n".encode())
                    time.sleep(0.005)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass

        other = threading.Thread(target=someone_else)
        other.start()
        try:
            wait_for(lambda: log.max_id() > before, what="the first row of the other traffic")
            plan = Plan([ClientPlan([Op(SEND, f"m{i}") for i in range(3)]) for _ in range(2)], seed=5, name="after")
            outcome = run_plan(live.target, plan, tmp_path / "run", server=live)
        finally:
            other.join(15)
        assert outcome.result.valid is True, [(a.kind, a.message) for a in outcome.result.anomalies[:2]]
        run = next(r for r in outcome.records if r.f == "run")
        theirs = [r.id for r in log.rows_after(before) if "earlier traffic" in (r.content or "")]
        assert run.get("baseline_first") < max(theirs) <= run.get("baseline_id")  # they went on after the first reading
    finally:
        live.close()
