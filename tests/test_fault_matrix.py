"""Every fault kind against the reference: valid, no anomaly — what a fault explains is never held against it.

Each run has chatting clients and a listener that only receives relays and then leaves politely, so
the relay and answer invariants get something to judge (and the fault something to disturb).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.plan import CLOSE, PAUSE, SEND, ClientPlan, Op, Plan
from harness.runner import run_plan
from harness.scenario import chatter, fault
from harness.target import reference

FAULTS: dict[str, list[dict[str, Any]]] = {
    "latency": fault("f", "latency", at=0.1, until=0.8, latency=0.03, jitter=0.01),
    "slicer": fault("f", "slicer", at=0.1, until=0.8, size=3, size_jitter=2),
    "bandwidth": fault("f", "bandwidth", at=0.1, until=0.8, direction="down", rate=8000),
    "limit_data": fault("f", "limit_data", at=0.1, direction="down", limit=700, probability=0.5),
    "reset_peer": fault("f", "reset_peer", at=0.1, until=0.8, after=0.1, probability=0.5),
    "black hole, then released": fault("f", "timeout", at=0.2, until=0.7, direction="down"),
    "black hole closing (the issue's plan)": fault("f", "timeout", at=0.2, direction="down", close_after=0.45),
    "slow_close": fault("f", "slow_close", at=0.0, linger=0.2),
    "down": [{"at": 0.3, "action": "down"}, {"at": 0.6, "action": "up"}],
    "down with cut": [{"at": 0.3, "action": "down", "cut": True}, {"at": 0.6, "action": "up"}],
}


def plan(steps: list[dict[str, Any]]) -> Plan:
    listener = ClientPlan([Op(SEND, "listening"), Op(PAUSE, seconds=1.2), Op(CLOSE)])
    return Plan([listener, *chatter(4, messages=12, pause=0.06, start_spread=0.1)], seed=7, name="faults", faults=steps)


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_correct_server_passes_under_every_fault(name: str, tmp_path: Path) -> None:
    outcome = run_plan(reference(), plan(FAULTS[name]), tmp_path / "run")
    r = outcome.result
    assert r.valid is True and r.anomalies == [], f"{name}: {r.summary()}\n" + "\n".join(
        f"  {a.kind}: {a.message}" for a in r.anomalies[:10]
    )
    touched = sum(1 for rec in outcome.records if rec.f == "fault-event" and rec.get("event") != "decision")
    decided = sum(1 for rec in outcome.records if rec.f == "fault-event" and rec.get("applies"))
    assert touched or decided or name.startswith("down"), f"{name}: the fault never acted"
