"""partition-heal: the network goes down (cutting every connection) for 1.5 s, then heals."""

from __future__ import annotations

from harness.plan import Plan
from harness.scenario import (
    AnyTarget,
    Check,
    ScenarioContext,
    ScenarioResult,
    acked_after,
    chatter,
    conclude,
    run,
)
from scenarios.registry import register

DOWN, UP = 0.5, 2.0


class PartitionHeal(AnyTarget):
    """Clients retry through the partition; after the heal they converge: acked once, nothing lost."""

    name = "partition-heal"
    description = "the network down (connections cut, new ones refused) for 1.5 s, then up: clients converge"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Down at 0.5 s, up at 2 s."""
        t0 = self.begin(ctx)
        steps = [{"at": DOWN, "action": "down", "cut": True}, {"at": UP, "action": "up"}]
        plan = Plan(chatter(ctx.n(12), messages=40, pause=0.07, rng=ctx.rng(self.name)), ctx.seed, self.name, steps)
        outcome = run(ctx, plan, "partition")
        refused = sum(1 for r in outcome.records if r.f == "connect" and r.type == "fail")
        checks = [
            Check("clients were cut off and refused meanwhile", refused > 0 or None, f"{refused} refused connects"),
            acked_after(outcome, UP + 0.5, "the network heals"),
        ]
        return conclude(self, ctx, t0, [outcome], checks)


register(PartitionHeal())
