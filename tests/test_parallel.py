"""Scenarios side by side (``run --jobs``), and the command line from a source checkout that is not installed."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mutants.zoo import mutant
from support import wait_for

from harness.parallel import port_slices
from harness.target import can_connect

ROOT = Path(__file__).resolve().parent.parent


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_port_slices_are_disjoint_and_inside_the_range() -> None:
    slices = [tuple(int(x) for x in s.split("-")) for s in port_slices(3, "20000-20299")]
    assert slices == [(20000, 20099), (20100, 20199), (20200, 20299)]
    below = [tuple(int(x) for x in s.split("-")) for s in port_slices(4, None)]
    assert all(1024 <= low <= high < 32768 for low, high in below)  # below Linux's default ephemeral range
    assert all(a[1] < b[0] for a, b in itertools.pairwise(below))
    with pytest.raises(ValueError, match="too small"):
        port_slices(5, "20000-20002")


def test_scenarios_side_by_side_give_the_same_verdicts_in_the_given_order(tmp_path: Path) -> None:
    names = ["pipelined", "bad-input", "exit-word", "large-message"]
    proc = cli("run", *names, "--jobs", "3", "--seed", "3", "--report-dir", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "3 scenarios at a time" in proc.stderr
    report = json.loads((tmp_path / "out" / "latest" / "report.json").read_text())
    assert [s["name"] for s in report["scenarios"]] == names
    assert all(s["verdict"] == "valid" for s in report["scenarios"])
    assert "3 scenarios at a time" in report["environment"]["isolation"]
    for name in names:  # one line each, whenever it finished
        assert sum(line.split()[:2] == [name, "valid"] for line in proc.stderr.splitlines()) == 1


def test_a_broken_server_fails_side_by_side_as_it_does_alone(tmp_path: Path) -> None:
    target = str(mutant("drop_some").target_file)
    verdicts = {}
    for jobs in ("1", "2"):
        proc = cli(
            "run", "pipelined", "exit-word", "--target", target, "--jobs", jobs, "--seed", "4",
            "--report-dir", f"out{jobs}", "--quiet", cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        report = json.loads((tmp_path / f"out{jobs}" / "latest" / "report.json").read_text())
        verdicts[jobs] = {
            s["name"]: (s["verdict"], "lost" in {a["kind"] for a in s["anomalies"]}) for s in report["scenarios"]
        }
    assert verdicts["1"] == verdicts["2"] == {"pipelined": ("invalid", True), "exit-word": ("invalid", True)}


def ctrl_c_works() -> None:
    """In the child: SIGINT as in a terminal (a test run in the background inherits it ignored, and so would the harness)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_an_interrupted_side_by_side_run_stops_at_once_and_leaves_no_server(tmp_path: Path) -> None:
    harness = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "random", "slow-clients", "--jobs", "2", "--duration", "120",
         "--report-dir", "out"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=ctrl_c_works,
    )  # fmt: skip
    try:
        histories = wait_for(
            lambda: [h for h in tmp_path.glob("out/*/*/**/history.jsonl") if '"run"' in h.read_text()][:2] or None,
            timeout=60,
            what="both scenarios' servers",
        )
        ports = {json.loads(h.read_text().splitlines()[0])["value"]["port"] for h in histories}
        harness.send_signal(signal.SIGINT)
        _, err = harness.communicate(timeout=30)
    finally:
        harness.kill()
        harness.wait(5)
    assert harness.returncode == 2 and "interrupted" in err
    for port in ports:
        wait_for(lambda port=port: not can_connect("127.0.0.1", port), timeout=10, what=f"the server on {port} to die")


def test_the_command_line_works_from_a_source_checkout_that_is_not_installed(tmp_path: Path) -> None:
    src = tmp_path / "checkout"
    for package in ("chat", "harness", "scenarios"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    # Stand-ins for an installed copy, placed where a child that cannot find the checkout would look:
    # importing one of them (instead of the checkout's package) fails the run.
    installed = tmp_path / "elsewhere"
    for package in ("chat", "harness", "scenarios"):
        (installed / package).mkdir(parents=True)
        (installed / package / "__init__.py").write_text("raise ImportError('imported from outside the checkout')\n")
    env = {"PYTHONPATH": str(installed)}
    for jobs in ("1", "2"):  # in this process, and in a child process per scenario
        proc = cli("run", "exit-word", "pipelined", "--jobs", jobs, "--report-dir", f"r{jobs}", cwd=src, env=env)
        assert proc.returncode == 0, proc.stderr
        report = json.loads((src / f"r{jobs}" / "latest" / "report.json").read_text())
        assert report["verdict"] == "valid"


def test_a_target_whose_instances_share_one_log_runs_one_scenario_at_a_time(tmp_path: Path) -> None:
    shared = tmp_path / "shared.toml"
    shared.write_text(
        f'name = "shared"\ncommand = ["{{python}}", "-m", "chat.server", "--port", "{{port}}", "--db", "{tmp_path}/one.db"]\n'
        f'[log]\npath = "{tmp_path}/one.db"\nts = "fecha_envio"\n'
    )
    proc = cli(
        "run", "exit-word", "pipelined", "--jobs", "2", "--target", str(shared), "--report-dir", "out", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "one scenario at a time: every instance would write the same log" in proc.stderr
    assert (
        "scenarios at a time"
        not in json.loads((tmp_path / "out" / "latest" / "report.json").read_text())["environment"]["isolation"]
    )
