"""Every named scenario, as a collectable test against --chat-target (the reference by default).

``pytest -m scenario`` runs just these; ``--chat-target FILE`` points them at another server.
Sizes here are a quick smoke set; ``chat-harness run --all`` uses the scenarios' full defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.scenario import ScenarioResult
from scenarios.registry import load

SMOKE = {"concurrent-burst": {"clients": 100}, "random": {"duration": 5.0}}
ROOT = Path(__file__).resolve().parent.parent


def explain(result: ScenarioResult) -> str:
    lines = [f"{result.name}: {result.check.summary() if result.check else result.reason}"]
    lines += [f"  check {c.name}: {c.ok} {c.detail}" for c in result.checks if c.ok is not True]
    if result.check:
        lines += [f"  {a.kind}: {a.message}" for a in result.check.anomalies[:10]]
    return "\n".join(lines)


@pytest.mark.scenario
@pytest.mark.parametrize("name", sorted(load()))
def test_scenario(chat_scenario: Callable[..., ScenarioResult], name: str) -> None:
    result = chat_scenario(name, **SMOKE.get(name, {}))
    if not result.applicable:
        pytest.skip(f"not applicable: {result.reason}")
    assert result.verdict is True, explain(result)
    assert result.runs and all((run.rundir / "plan.json").exists() for run in result.runs)


@pytest.mark.scenario
@pytest.mark.xdist_group("port-5000")
@pytest.mark.parametrize(("name", "caught"), [("pipelined", True), ("large-message", True), ("exit-word", False)])
@pytest.mark.usefixtures("port_5000")
def test_the_pfo1_example_is_caught_only_by_the_framing_scenarios(tmp_path: Path, name: str, caught: bool) -> None:
    from harness.scenario import ScenarioContext
    from harness.target import can_connect, load_target

    if can_connect("127.0.0.1", 5000):
        pytest.skip("something else listens on port 5000")
    target = load_target(ROOT / "examples" / "pfo1.toml")
    result = load()[name].run(ScenarioContext(target, tmp_path / name, seed=1))
    assert (result.verdict is False) is caught, explain(result)
    if caught:
        assert result.check is not None
        assert {a.kind for a in result.check.anomalies} & {"merged", "partial-row", "phantom", "corrupted"}
