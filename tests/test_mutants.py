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
SETTINGS = {"concurrent-burst": {"clients": 150}}  # enough churn, less time than the default 500


def run(name: str, target: object, tmp_path: Path) -> ScenarioResult:
    ctx = ScenarioContext(target, tmp_path / name, seed=2026, **SETTINGS.get(name, {}))  # type: ignore[arg-type]
    return load()[name].run(ctx)


def test_the_zoo_is_complete() -> None:
    assert len(ZOO) >= 14
    registry = load()
    for m in ZOO:
        assert m.defect and m.scenario in registry, m
        assert m.target().name == m.name


@pytest.mark.slow
@pytest.mark.parametrize("m", ZOO, ids=[m.name for m in ZOO])
def test_each_mutant_is_caught_by_its_scenario(m, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run(m.scenario, m.target(), tmp_path)
    why = result.check.summary() if result.check else result.reason
    assert result.verdict is False, f"{m.name} ({m.defect}) passed {m.scenario}: {why}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted({m.scenario for m in ZOO}))
def test_the_reference_passes_the_same_scenarios(name: str, tmp_path: Path) -> None:
    result = run(name, reference(), tmp_path)
    assert result.verdict is True, result.check.summary() if result.check else result.reason
