"""random: Hypothesis-drawn plans mixing every client behaviour; a failure shrinks to a minimal plan."""

from __future__ import annotations

import time

from harness.checker import merge
from harness.pbt import search
from harness.scenario import AnyTarget, ScenarioContext, ScenarioResult, shape_for
from scenarios.registry import register


class Random(AnyTarget):
    """Draw whole plans from the seed, run each against the live target, shrink the first failure."""

    name = "random"
    description = "Hypothesis plans mixing sends, pipelining, pauses, closes, resets, half messages and exit words"
    expected_seconds = 31.0  # its search budget

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Search for a failing plan within the duration."""
        t0 = time.monotonic()
        budget = ctx.duration if ctx.duration is not None else 30.0
        shape = shape_for(ctx.target, max_clients=ctx.clients or 20)

        def progress(i: int, outcome: object) -> None:
            ctx.say(f"random: example {i + 1} done")

        found = search(
            ctx.target,
            ctx.rundir,
            shape,
            ctx.seed,
            max_examples=1000,
            budget=budget,
            shrink_budget=max(60.0, 2 * budget),
            config=ctx.config,
            on_example=progress,
        )
        runs = [found.minimal] if found.minimal else found.runs
        result = ScenarioResult(
            self.name,
            self.description,
            found.valid,
            search=found,
            seconds=time.monotonic() - t0,
            check=merge([r.result for r in runs]) if runs else None,
            runs=runs,
        )
        if found.minimal is not None:
            result.replay = str(ctx.rundir / "minimal" / "plan.json")
        result.extra = {"examples": found.examples}
        if found.errors:
            result.reason = "; ".join(found.errors)
        return result


register(Random())
