"""concurrent-burst: many clients (default 500) connect and send at the same moment."""

from __future__ import annotations

from harness.plan import Plan
from harness.scenario import AnyTarget, ScenarioContext, ScenarioResult, chatter, conclude, run
from scenarios.registry import register


class ConcurrentBurst(AnyTarget):
    """Every client starts at once and sends a few messages closed-loop; relays fan out to all."""

    name = "concurrent-burst"
    description = "many clients (default 500) connecting and sending at the same moment"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """One burst."""
        t0 = self.begin(ctx)
        n = ctx.n(500)
        plan = Plan(chatter(n, messages=3, pause=0.0), seed=ctx.seed, name=self.name)
        outcome = run(ctx, plan, "burst")
        return conclude(self, ctx, t0, [outcome], clients=n)


register(ConcurrentBurst())
