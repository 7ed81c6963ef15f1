"""The client engine: every simulated client a coroutine on one event loop, and worker processes for big runs."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
from mutants.zoo import mutant
from support import count_short_way

from harness import runner
from harness.clients import Options, SimClient
from harness.history import INFO, History, Record, load
from harness.plan import CLOSE, PAUSE, RECONNECT, SEND, ClientPlan, Op, Plan
from harness.runner import RunConfig, RunOutcome, run_plan
from harness.target import Target, reference
from harness.workers import shares


def quiet_reference() -> Target:
    """The reference without its relay: many clients then measure the harness, not N-1 copies of everything."""
    return replace(reference().with_args("--no-relay"), relay="none")


def chatter(clients: int, messages: int = 2, hold: float = 0.0) -> Plan:
    ops = [Op(SEND, f"hello {i}") for i in range(messages)] + [Op(RECONNECT), Op(SEND, "again")]
    if hold:
        ops.append(Op(PAUSE, seconds=hold))
    return Plan([ClientPlan(list(ops), start=(c % 10) / 100) for c in range(clients)], seed=7, name="engine")


def sends_by_client(outcome: RunOutcome) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = {}
    for r in outcome.records:
        if r.f == "send":
            out.setdefault(r.client, []).append((r.type, str(r.get("token"))))
    return out


def test_a_thousand_clients_run_on_one_thread(tmp_path: Path) -> None:
    seen: list[int] = []
    config = RunConfig(
        options=Options(connect_timeout=30, ack_timeout=30), progress=lambda h: seen.append(threading.active_count())
    )
    outcome = run_plan(quiet_reference(), chatter(1000, hold=1.5), tmp_path, config=config)
    assert outcome.result.valid is True, outcome.result.summary()
    connected = {r.client for r in outcome.records if r.f == "connect" and r.type == "ok" and r.client < 1000}
    assert len(connected) == 1000
    assert seen and max(seen) < 30  # the clients are coroutines: the threads are the auditor, proxy, progress...


def test_workers_drive_shares_of_the_clients_and_the_merged_history_is_judged_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "MIN_CLIENTS_PER_WORKER", 20)
    plan = chatter(60)
    alone = run_plan(quiet_reference(), plan, tmp_path / "one", config=RunConfig(workers=1))
    shared = run_plan(quiet_reference(), plan, tmp_path / "two", config=RunConfig(workers=2))
    assert [r.get("processes") for r in shared.records if r.f == "workers"] == [2]
    assert not [r for r in alone.records if r.f == "workers"]
    for outcome in (alone, shared):
        assert outcome.result.valid is True, outcome.result.summary()
        assert [r.index for r in outcome.records] == list(range(len(outcome.records)))
        times = [r.time for r in outcome.records]
        assert times == sorted(times)
    # The same plan gives every client the same operations, tokens and answers on either engine.
    strip = {c: [(t, tok.split(".", 1)[1]) for t, tok in v] for c, v in sends_by_client(alone).items()}
    assert strip == {c: [(t, tok.split(".", 1)[1]) for t, tok in v] for c, v in sends_by_client(shared).items()}
    conns = [r.conn for r in shared.records if r.f == "connect" and r.type == "invoke"]
    assert len(conns) == len(set(conns)) == 121  # numbered once across the workers and the probe
    assert len([r for r in shared.records if r.f == "connect" and r.type == "invoke" and r.client < 60]) == 120
    assert load(tmp_path / "two" / "history.jsonl") == shared.records  # the file holds the merged history


def test_a_broken_server_is_caught_through_workers_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "MIN_CLIENTS_PER_WORKER", 20)
    outcome = run_plan(mutant("drop_some").target(), chatter(60), tmp_path, config=RunConfig(workers=2))
    assert [r.get("processes") for r in outcome.records if r.f == "workers"] == [2]
    assert outcome.result.valid is False
    assert "lost" in {a.kind for a in outcome.result.anomalies}


def test_an_early_ack_is_audited_inside_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "MIN_CLIENTS_PER_WORKER", 10)
    plan = Plan([ClientPlan([Op(SEND, f"m{i}") for i in range(5)] + [Op(CLOSE)]) for _ in range(20)], seed=3)
    outcome = run_plan(mutant("ack_before_commit").target(), plan, tmp_path, config=RunConfig(workers=2))
    assert [r.get("processes") for r in outcome.records if r.f == "workers"] == [2]
    audits = [r for r in outcome.records if r.f == "audit"]
    assert audits and any(r.get("visible") is False for r in audits)
    assert outcome.result.valid is False


def test_shares_spread_every_client_once() -> None:
    for n in (1, 2, 7, 100):
        for w in (1, 2, 3, 8):
            parts = shares(n, w)
            assert sorted(i for p in parts for i in p) == list(range(n))
            assert len(parts) == min(n, w) and max(map(len, parts)) - min(map(len, parts)) <= 1


def test_merging_keeps_time_order_and_renumbers(tmp_path: Path) -> None:
    h = History(tmp_path / "h.jsonl", start=0.0)
    h.records = [Record(0, 1.0, INFO, "run"), Record(1, 5.0, INFO, "server")]
    h.merge([Record(0, 2.0, INFO, "a", 1), Record(1, 2.0, INFO, "b", 1), Record(0, 6.0, INFO, "c", 2)])
    assert [(r.index, r.f) for r in h.records] == [(0, "run"), (1, "a"), (2, "b"), (3, "server"), (4, "c")]
    h.close()
    assert load(tmp_path / "h.jsonl") == h.records


def history_shape(outcome: RunOutcome) -> list[tuple[int, str, str, str, str]]:
    """What each client did and heard, without run ids and times: (client, type, f, token's rest, how it ended)."""
    out = []
    for r in outcome.records:
        if r.f in ("send", "connect", "conn-end", "abandon") and r.client >= 0:
            token = str(r.get("token") or "").split(".", 1)[-1]
            end = r.get("reason") if r.f == "conn-end" else r.get("end")
            out.append((r.client, r.type, r.f, token, str(end or "")))
    return sorted(out, key=lambda t: t[0])  # stable: each client's records keep their order


@pytest.mark.parametrize("server", ["reference", "silent_drop"])
def test_a_plain_send_takes_the_short_way_and_records_what_the_general_path_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    target = reference() if server == "reference" else mutant(server).target()
    ops = [Op(SEND, f"m{i}") for i in range(5)] + [Op(SEND, "p1", pipelined=True), Op(SEND, "p2")]
    ops += [Op(RECONNECT), Op(SEND, "after"), Op(PAUSE, seconds=0.1), *[Op(SEND, f"n{i}") for i in range(6)], Op(CLOSE)]
    plan = Plan([ClientPlan(ops)], seed=3, name="short-way")
    # Two unanswered sends in a row (0.4 s of waiting) abandon the plan: an answer in between must reset the count.
    config = RunConfig(options=Options(ack_timeout=0.5, give_up_after=2, give_up_seconds=0.4), probe=False)
    taken = count_short_way(monkeypatch)
    short = run_plan(target, plan, tmp_path / "short", config=config)
    assert len(taken) >= (6 if server == "reference" else 2)  # plain sends on an open connection
    monkeypatch.setattr(SimClient, "_plain", lambda self: False)
    general = run_plan(target, plan, tmp_path / "general", config=config)
    assert history_shape(short) == history_shape(general)
    for o in (short, general):  # an unanswered send waited the ack timeout from its send, not more
        sent = {(r.get("token"), r.conn): r.time for r in o.records if r.f == "send" and r.type == "invoke"}
        gave_up = [r.time - sent[r.get("token"), r.conn] for r in o.records if r.get("end") == "ack-timeout"]
        assert all(0.5 <= w < 0.9 for w in gave_up), gave_up
        assert bool(gave_up) == (server != "reference")
    kinds = [{a.kind for a in o.result.anomalies} for o in (short, general)]
    assert kinds[0] == kinds[1] == (set() if server == "reference" else {"unanswered"})
