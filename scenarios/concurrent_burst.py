"""concurrent-burst: many clients (default 500) connect and send at the same moment."""

from __future__ import annotations

import time

from harness.plan import Plan
from harness.scenario import ScenarioContext, ScenarioResult, chatter, conclude, run, start_marker
from harness.target import Target
from scenarios.registry import register


class ConcurrentBurst:
    """Every client starts at once and sends a few messages closed-loop; relays fan out to all."""

    name = "concurrent-burst"
    description = "many clients (default 500) connecting and sending at the same moment"

    def not_applicable(self, target: Target) -> str | None:
        """Any server."""
        return None

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """One burst."""
        t0 = time.monotonic()
        start_marker(ctx, self.name)
        n = ctx.n(500)
        plan = Plan(chatter(n, messages=3, pause=0.0), seed=ctx.seed, name=self.name)
        outcome = run(ctx, plan, "burst")
        return conclude(self, ctx, t0, [outcome], clients=n)


register(ConcurrentBurst())
