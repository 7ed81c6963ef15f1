"""network-latency: every connection's packets delayed 30 ms (plus or minus 10 ms) each way."""

from __future__ import annotations

from harness.plan import Plan
from harness.scenario import AnyTarget, ScenarioContext, ScenarioResult, chatter, conclude, fault, run
from scenarios.registry import register


class NetworkLatency(AnyTarget):
    """Chat through a slow network: everything must still be acked, stored once, relayed in order."""

    name = "network-latency"
    description = "latency with jitter on every connection, both directions"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """One run through the proxy with a latency fault from the start."""
        t0 = self.begin(ctx)
        steps = fault("latency", "latency", latency=0.03, jitter=0.01)
        plan = Plan(chatter(ctx.n(12), messages=10, pause=0.05, rng=ctx.rng(self.name)), ctx.seed, self.name, steps)
        return conclude(self, ctx, t0, [run(ctx, plan, "latency")])


register(NetworkLatency())
