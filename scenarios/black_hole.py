"""black-hole: half the connections stop forwarding anything for 1.5 s, then everything flows again."""

from __future__ import annotations

from harness.clients import Options
from harness.plan import Plan
from harness.scenario import (
    AnyTarget,
    ScenarioContext,
    ScenarioResult,
    acked_after,
    chatter,
    conclude,
    fault,
    run,
)
from scenarios.registry import register

START, UNTIL = 0.5, 2.0


class BlackHole(AnyTarget):
    """Held data arrives late, after clients gave up and resent: no duplicate, no loss, service resumes."""

    name = "black-hole"
    description = "a black hole on half the connections for 1.5 s: late data, timeouts, resends"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Clients wait 1 s for an ack before they give up on a connection: the server is still held to the usual wait."""
        t0 = self.begin(ctx)
        steps = fault("hole", "timeout", at=START, until=UNTIL, probability=0.5)
        plan = Plan(chatter(ctx.n(12), messages=40, pause=0.07, rng=ctx.rng(self.name)), ctx.seed, self.name, steps)
        options = Options(ack_timeout=1.0, close_timeout=1.0, held_to=ctx.config.options.ack_timeout)
        outcome = run(ctx, plan, "black-hole", options=options)
        return conclude(self, ctx, t0, [outcome], [acked_after(outcome, UNTIL + 1.5, "the hole closes")])


register(BlackHole())
