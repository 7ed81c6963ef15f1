"""`random` draws nemesis steps (a crash, a clean stop and restart, a lock on the log) like fault steps.

Two-sided: the reference stays valid while drawn steps really land, and a server whose defect only a
restart shows (it empties its log at start) is found, shrunk to a plan with the step in it, and is
not found when the same search draws no nemesis.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from mutants.zoo import mutant

import harness.pbt
from harness.pbt import search
from harness.plan import plans
from harness.scenario import nemesis_for, shape_for
from harness.target import load_target, reference

# A fixed number of drawn plans, with time to spare under load. Which plans a seed draws is not fixed:
# Hypothesis also draws from the literals of the local modules imported so far in the process, so
# one more module loaded (test_mutants calls scenarios.registry.load()) or a source edit changes them.
EXAMPLES = 30
WINDOW = {"kill-restart": "crash", "stop-restart": "restart", "stop": "shutdown", "lock": "db-locked"}
BUDGET = 150.0


def performed(runs: list) -> set[str]:  # type: ignore[type-arg]
    """The nemesis actions that started in ``runs`` (by their recorded window)."""
    return {str(r.get("window")) for o in runs for r in o.records if r.f == "nemesis" and r.get("phase") == "start"}


def test_which_steps_each_kind_of_target_draws() -> None:
    assert nemesis_for(reference()) == ("kill-restart", "stop-restart", "lock")
    pfo1 = load_target(Path(__file__).parents[1] / "examples" / "pfo1_newline.toml")
    assert nemesis_for(pfo1) == ("lock",)  # fixed port, usually no SO_REUSEADDR: restarts are their own scenarios


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_reference_stays_valid_while_drawn_crashes_stops_and_locks_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only plans with a step (one in three otherwise): each of the three kinds is then drawn in 30 plans
    # whatever the seed's draws are in this process (missing one: about 3 * (2/3)**30, 2e-5).
    monkeypatch.setattr(harness.pbt, "plans", lambda shape: plans(shape).filter(lambda p: p.nemesis))
    target = reference()
    out = search(target, tmp_path, shape_for(target, max_clients=20), seed=5, max_examples=EXAMPLES, budget=BUDGET)
    assert out.valid is True, out.minimal.result.summary() if out.minimal else out.errors
    assert out.examples == EXAMPLES
    drawn = {WINDOW[s["action"]] for o in out.runs for s in o.plan.nemesis}
    assert drawn == {"crash", "restart", "db-locked"}
    assert performed(out.runs) == drawn  # every kind drawn also landed


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_defect_only_a_restart_shows_is_found_through_a_drawn_step(tmp_path: Path) -> None:
    target = mutant("fresh_start").target()
    shape = shape_for(target, max_clients=20)
    out = search(
        target, tmp_path / "with", shape, seed=1, max_examples=EXAMPLES, budget=BUDGET, shrink_budget=60, reruns=3
    )
    assert out.valid is False
    assert out.minimal is not None and "lost" in {a.kind for a in out.minimal.result.anomalies}
    small = out.minimal.plan
    assert [s["action"] for s in small.nemesis] in (["kill-restart"], ["stop-restart"])
    assert len(small.clients) <= 2 and sum(len(c.ops) for c in small.clients) <= 4
    assert out.reproduced >= 2

    without = search(
        target, tmp_path / "without", replace(shape, nemesis=()), seed=1, max_examples=EXAMPLES, budget=BUDGET
    )
    assert without.valid is True and without.examples == EXAMPLES  # the drawn step is what finds it
    assert not performed(without.runs)
