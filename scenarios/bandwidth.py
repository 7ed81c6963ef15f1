"""bandwidth: half the clients receive through a 16 kB/s pipe while relays pour in."""

from __future__ import annotations

from harness.plan import Plan
from harness.scenario import (
    AnyTarget,
    Check,
    ScenarioContext,
    ScenarioResult,
    ack_within,
    chatter,
    conclude,
    fault,
    run,
)
from scenarios.registry import register

SLOW_ACK = 1.0


class Bandwidth(AnyTarget):
    """Slow links must only slow their own clients: everyone's acks stay fast."""

    name = "bandwidth"
    description = "a narrow downstream link for half the clients: the others' acks stay fast"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Chatty clients; p = 0.5 of the connections get 16 kB/s downstream."""
        t0 = self.begin(ctx)
        steps = fault("narrow", "bandwidth", direction="down", probability=0.5, rate=16_000)
        text = "relleno " * 25 + "{i}"
        plan = Plan(
            chatter(ctx.n(10), messages=20, pause=0.05, rng=ctx.rng(self.name), text=text), ctx.seed, self.name, steps
        )
        outcome = run(ctx, plan, "narrow")
        narrowed = sum(1 for r in outcome.records if r.f == "fault-event" and r.get("applies"))
        checks = [
            Check("some connections were narrowed", narrowed > 0 or None, f"{narrowed} connections"),
            ack_within(outcome, 0.5, SLOW_ACK),
        ]
        return conclude(self, ctx, t0, [outcome], checks)


register(Bandwidth())
