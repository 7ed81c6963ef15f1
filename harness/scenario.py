"""What a named scenario is given and what it returns (the scenarios themselves live in ``scenarios``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.checker import CheckResult
from harness.pbt import SearchOutcome
from harness.plan import Shape
from harness.runner import RunConfig, RunOutcome
from harness.target import Target


@dataclass
class ScenarioContext:
    """What a scenario is given to run."""

    target: Target
    rundir: Path
    seed: int
    clients: int | None = None
    duration: float | None = None
    config: RunConfig = field(default_factory=RunConfig)
    say: Callable[[str], None] = lambda text: None


@dataclass
class ScenarioResult:
    """What a scenario found."""

    name: str
    description: str
    verdict: bool | None
    applicable: bool = True
    reason: str = ""
    check: CheckResult | None = None
    runs: list[RunOutcome] = field(default_factory=list)
    search: SearchOutcome | None = None
    seconds: float = 0.0
    replay: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Scenario(Protocol):
    """A named way to attack a server."""

    name: str
    description: str

    def not_applicable(self, target: Target) -> str | None:
        """Why this scenario cannot run against ``target`` (None when it can)."""

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Run against ``ctx.target`` and judge the outcome."""


def shape_for(target: Target, max_clients: int = 8, max_ops: int = 8) -> Shape:
    """Plan bounds that fit a target: message sizes within its line limit, no pipelining for pfo1."""
    if target.protocol == "pfo1":
        return Shape(
            max_clients=max_clients,
            max_ops=max_ops,
            max_text=200,
            pipelining=False,
            ack_safe=True,
            half_messages=target.pfo1.framing != "raw",
        )
    return Shape(max_clients=max_clients, max_ops=max_ops, max_text=max(16, target.max_line - 64))
