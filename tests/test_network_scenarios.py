"""Network-fault scenarios catch the servers they are meant to catch (the reference passes them all in
test_scenarios)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutants.zoo import mutant

from harness.plot import windows
from harness.scenario import ScenarioContext
from harness.target import Target
from scenarios.registry import load


def broken(name: str) -> Target:
    return mutant(name).target()


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
