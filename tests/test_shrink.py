"""Domain-aware shrinking: pure (a plan-judging function instead of a server), then against a real broken server."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mutants.zoo import mutant

from harness.pbt import cut_down, failing_kinds
from harness.plan import PAUSE, SEND, ClientPlan, Op, Plan
from harness.runner import LiveServer, run_plan
from harness.shrink import reproduces, shrink


def noisy_plan(rng: random.Random, clients: int, ops: int, culprit: str) -> Plan:
    """Clients with pauses and chatter; one operation somewhere sends ``culprit``."""
    plans = []
    for c in range(clients):
        items = []
        for i in range(ops):
            items.append(Op(SEND, f"chatter {c} {i} " + "x" * rng.randrange(50)))
            items.append(Op(PAUSE, seconds=round(rng.uniform(0.01, 0.5), 3)))
        plans.append(ClientPlan(items, start=round(rng.uniform(0, 1), 3)))
    who = rng.randrange(clients)
    plans[who].ops.insert(rng.randrange(len(plans[who].ops) + 1), Op(SEND, culprit + " and a long tail of text"))
    faults = [
        {"at": 0.5, "action": "add", "fault": {"name": "slow", "kind": "latency", "latency": 0.01}},
        {"at": 1.0, "action": "remove", "name": "slow"},
    ]
    return Plan(plans, seed=1, faults=faults)


def judge(plan: Plan) -> set[str]:
    """A defect that needs one message containing 'boom' and at least two clients connected."""
    texts = [op.text for c in plan.clients for op in c.ops]
    return {"lost"} if len(plan.clients) >= 2 and any("boom" in t for t in texts) else set()


@given(st.integers(min_value=2, max_value=12), st.integers(min_value=1, max_value=8), st.integers(0, 10**6))
@settings(max_examples=40)
def test_shrinking_reaches_the_true_minimum_of_a_deterministic_failure(clients: int, ops: int, seed: int) -> None:
    plan = noisy_plan(random.Random(seed), clients, ops, "boom")
    assert judge(plan)
    out = shrink(plan, judge, {"lost"}, deadline=time.monotonic() + 30, tries=1, need=1)
    small = out.plan
    assert judge(small) == {"lost"}
    assert len(small.clients) == 2 and not small.faults
    assert sum(len(c.ops) for c in small.clients) == 1  # one send; the other client only needs to exist
    [op] = [op for c in small.clients for op in c.ops]
    assert op.text == "boom" and all(c.start == 0 for c in small.clients)


def test_nemesis_steps_are_dropped_unless_the_failure_needs_them() -> None:
    plan = noisy_plan(random.Random(5), 3, 2, "boom")
    lock = {"at": 0.2, "action": "lock", "seconds": 0.5}
    kill = {"at": 0.3, "action": "kill-restart"}

    def needs_the_kill(p: Plan) -> set[str]:
        return {"lost"} if kill in p.nemesis and any("boom" in op.text for c in p.clients for op in c.ops) else set()

    out = shrink(replace(plan, nemesis=[lock, kill]), needs_the_kill, {"lost"}, time.monotonic() + 30, tries=1, need=1)
    assert out.plan.nemesis == [kill] and len(out.plan.clients) == 1
    out = shrink(replace(plan, nemesis=[lock, kill]), judge, {"lost"}, time.monotonic() + 30, tries=1, need=1)
    assert out.plan.nemesis == []


def test_a_different_failure_is_not_the_same_failure() -> None:
    plan = noisy_plan(random.Random(3), 4, 3, "boom")

    def other(p: Plan) -> set[str]:  # small plans fail too, but with another kind: not a reproduction
        return {"lost"} if len(p.clients) >= 3 else ({"duplicate"} if judge(p) else set())

    out = shrink(plan, other, {"lost"}, deadline=time.monotonic() + 10, tries=1, need=1)
    assert len(out.plan.clients) == 3


def test_a_flaky_failure_needs_two_of_three() -> None:
    outcomes = iter([{"lost"}, set(), set(), {"lost"}, set(), {"lost"}])
    plan = Plan([ClientPlan([Op(SEND, "x")])])
    assert reproduces(plan, lambda p: next(outcomes), {"lost"}) == (False, 3)  # 1 of 3
    assert reproduces(plan, lambda p: next(outcomes), {"lost"}) == (True, 3)  # 2 of 3
    assert reproduces(plan, lambda p: set(), {"lost"}) == (False, 2)  # 0 of 2: the third cannot help


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_bloated_failing_plan_against_a_real_server_is_cut_to_a_few_operations(tmp_path: Path) -> None:
    target = mutant("drop_some").target()  # acknowledges every message, then deletes every third row
    plan = noisy_plan(random.Random(5), clients=6, ops=6, culprit="boom")
    live = LiveServer(target, tmp_path / "servers")
    try:
        failed = run_plan(target, plan, tmp_path / "first", server=live)
        assert "lost" in failing_kinds(failed), failed.result.summary()
        (tmp_path / "minimal").mkdir()
        shrunk, smaller = cut_down(target, failed, tmp_path, live, None, time.monotonic() + 150)
    finally:
        live.close()
    assert shrunk is not None and shrunk.accepted > 0 and smaller is not None
    minimal = smaller.plan
    assert len(minimal.clients) <= 2 and sum(len(c.ops) for c in minimal.clients) <= 4, minimal.to_json()
    assert not minimal.faults and plan.size() >= 5 * minimal.size()
    # One run, one story: the outcome the report shows is the run whose files are in minimal/.
    assert smaller.rundir == tmp_path / "minimal"
    assert Plan.load(tmp_path / "minimal" / "plan.json").to_dict() == minimal.to_dict()
    run = json.loads((tmp_path / "minimal" / "history.jsonl").read_text().splitlines()[0])["value"]
    assert run["run_id"] == smaller.run_id and "lost" in failing_kinds(smaller)
