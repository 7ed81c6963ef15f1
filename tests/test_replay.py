"""A plan file is the whole experiment: replaying it sets the same client options and target options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.history import load as load_history
from harness.plan import Plan
from harness.runner import RunConfig, run_plan
from harness.scenario import ScenarioContext, run_scenario
from harness.target import reference
from scenarios.registry import load as scenarios

# scenario -> what its plan must carry
CARRIED = {
    "pipelined": {"client": {"options": {"ack_timeout": 3.0, "held_to": 10.0}, "pipelining": True}},
    "black-hole": {"client": {"options": {"ack_timeout": 1.0, "close_timeout": 1.0, "held_to": 10.0}}},
    "max-clients": {"target_options": {"max_clients": 5}},
    "idle-clients": {"target_options": {"idle_timeout": 1.0}},
}


def server_said(history: Path) -> list[str]:
    """The error codes the server sent, in order of clients (what a target option changes)."""
    return sorted(str(r.get("code")) for r in load_history(history) if r.f == "server-error")


def run_record(history: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(history.read_text().splitlines()[0])["value"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(CARRIED))
def test_replaying_a_scenario_plan_is_the_same_experiment(tmp_path: Path, name: str) -> None:
    ctx = ScenarioContext(reference(), tmp_path / "first", 5, None, None, RunConfig())
    result = run_scenario(scenarios()[name], ctx)
    first = result.runs[0]
    plan_file = first.rundir / "plan.json"
    saved = json.loads(plan_file.read_text())
    for key, carried in CARRIED[name].items():
        for field, value in carried.items():
            assert saved[key][field] == value, saved.get(key)
    again = run_plan(reference(), Plan.load(plan_file), tmp_path / "replay", config=RunConfig())
    a, b = run_record(first.rundir / "history.jsonl"), run_record(again.rundir / "history.jsonl")
    assert a["ack_timeout"] == b["ack_timeout"] and a["held_to"] == b["held_to"]
    # The same kinds of refusal: how many is timing (under load an active client's 0.3 s pause can pass the
    # 1 s idle timeout too: CI once saw 3 more "idle" in one of the two runs)
    assert set(server_said(first.rundir / "history.jsonl")) == set(server_said(again.rundir / "history.jsonl"))
    if "target_options" in CARRIED[name]:
        assert server_said(again.rundir / "history.jsonl"), "the option made the server refuse or drop someone"


def test_old_plan_files_without_settings_still_load(tmp_path: Path) -> None:
    old = {
        "version": 1,
        "name": "random",
        "seed": 3,
        "faults": [],
        "clients": [{"ops": [{"kind": "send", "text": "x"}]}],
    }
    (tmp_path / "plan.json").write_text(json.dumps(old))
    plan = Plan.load(tmp_path / "plan.json")
    assert plan.client == {} and plan.target_options == {}


def test_a_plan_with_a_setting_the_harness_does_not_know_is_refused(tmp_path: Path) -> None:
    plan = Plan.from_dict({"clients": [{"ops": [{"kind": "send", "text": "x"}]}], "client": {"options": {"nope": 1}}})
    with pytest.raises(ValueError, match="unknown client setting"):
        run_plan(reference(), plan, tmp_path)


def nemesis_events(history: Path) -> list[str]:
    return [str(r.get("event")) for r in load_history(history) if r.f == "nemesis"]


@pytest.mark.parametrize("name", ["crash-recovery", "restart", "shutdown-under-load", "db-locked"])
def test_replaying_a_plan_does_what_the_nemesis_did(tmp_path: Path, name: str) -> None:
    ctx = ScenarioContext(reference(), tmp_path / "first", 5, None, None, RunConfig())
    first = run_scenario(scenarios()[name], ctx).runs[0]
    saved = json.loads((first.rundir / "plan.json").read_text())
    assert saved["nemesis"], saved
    again = run_plan(reference(), Plan.load(first.rundir / "plan.json"), tmp_path / "replay", config=RunConfig())
    before, after = nemesis_events(first.rundir / "history.jsonl"), nemesis_events(again.rundir / "history.jsonl")
    assert before and before == after
    assert again.result.valid is True  # the reference survives its replay as it survived the scenario


def test_a_plan_with_a_malformed_nemesis_is_refused(tmp_path: Path) -> None:
    data = {"clients": [{"ops": [{"kind": "send", "text": "x"}]}], "nemesis": [{"at": 1, "action": "explode"}]}
    with pytest.raises(ValueError, match="'action' must be one of kill-restart"):
        Plan.from_dict(data)
    data["nemesis"] = [{"at": 1, "action": "stop"}]
    with pytest.raises(ValueError, match="'method'"):
        Plan.from_dict(data)
