"""Detection power: every mutant in the zoo is caught by the scenario its defect belongs to, and the
reference passes those scenarios with the same settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutants.zoo import mutants

from harness.scenario import ScenarioContext, ScenarioResult
from harness.target import reference
from scenarios.registry import load

ZOO = mutants()
SETTINGS = {"concurrent-burst": {"clients": 150}}  # enough churn, less time than the default 1000


SEEDS = (2026, 2027, 2028)  # a defect that shows only under some timings gets this many tries to show


def run(name: str, target: object, tmp_path: Path, seed: int = SEEDS[0]) -> ScenarioResult:
    ctx = ScenarioContext(target, tmp_path / f"{name}-{seed}", seed=seed, **SETTINGS.get(name, {}))  # type: ignore[arg-type]
    return load()[name].run(ctx)


def findings(result: ScenarioResult) -> set[str]:
    """What a scenario reported: anomaly kinds, and ``check:NAME`` for every failed check."""
    kinds = {a.kind for a in result.check.anomalies} if result.check else set()
    return kinds | {f"check:{c.name}" for c in result.checks if c.ok is False}


def reported(expected: str, found: set[str]) -> bool:
    """``expected`` (a kind, or ``check:`` and part of a check's name) is among ``found``."""
    if expected.startswith("check:"):
        return any(f.startswith("check:") and expected[6:] in f for f in found)
    return expected in found


def test_the_zoo_is_complete() -> None:
    assert len(ZOO) >= 20
    registry = load()
    for m in ZOO:
        assert m.defect and m.scenario in registry, m
        assert m.target().name == m.name
    assert any(not m.caught_by for m in ZOO), "a correct variant keeps the zoo honest"


@pytest.mark.slow
@pytest.mark.parametrize("m", ZOO, ids=[m.name for m in ZOO])
def test_each_mutant_is_caught_by_its_scenario_with_the_right_anomaly(m, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run(m.scenario, m.target(), tmp_path)
    why = result.check.summary() if result.check else result.reason
    failed = [f"{c.name}: {c.detail}" for c in result.checks if c.ok is False]
    if not m.caught_by:  # a correct variant: it must pass the first time
        assert result.verdict is True, f"{m.name} ({m.defect}) failed {m.scenario}: {why}; {failed}"
        return
    for seed in SEEDS[1:]:  # timing decides whether e.g. a reset lands between a commit and its ack
        if result.verdict is not True:
            break
        result = run(m.scenario, m.target(), tmp_path, seed)
    why = result.check.summary() if result.check else result.reason
    assert result.verdict is False, f"{m.name} ({m.defect}) passed {m.scenario} with seeds {SEEDS}: {why}"
    found = findings(result)
    assert any(reported(k, found) for k in m.caught_by), f"{m.name}: expected {m.caught_by}, got {sorted(found)}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted({m.scenario for m in ZOO}))
def test_the_reference_passes_the_same_scenarios(name: str, tmp_path: Path) -> None:
    result = run(name, reference(), tmp_path)
    assert result.verdict is True, result.check.summary() if result.check else result.reason
