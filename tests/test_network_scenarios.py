"""Network-fault scenarios catch the servers they are meant to catch (the reference passes them all in
test_scenarios)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.plot import windows
from harness.scenario import ScenarioContext
from harness.target import Target, reference
from scenarios.registry import load

BROKEN = Path(__file__).resolve().parent / "broken"


def broken(name: str) -> Target:
    ref = reference()
    return replace(ref, name=name, command=("{python}", str(BROKEN / f"{name}.py"), *ref.command[3:]))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("server", "scenario", "kinds"),
    [
        ("raw_framing", "sliced-stream", {"partial-row", "merged", "phantom", "lost"}),
        ("ignore_ids", "flaky-network", {"duplicate"}),
    ],
)
def test_the_matching_broken_server_is_caught(tmp_path: Path, server: str, scenario: str, kinds: set[str]) -> None:
    result = load()[scenario].run(ScenarioContext(broken(server), tmp_path / scenario, seed=2))
    assert result.verdict is False and result.check is not None
    found = {a.kind for a in result.check.anomalies}
    assert found & kinds, found
    run = result.runs[0]
    shaded = windows(run.records)
    assert shaded and all(w["kind"] == "fault" for w in shaded if w["label"] != "partition")
