"""max-clients: over the connection limit, newcomers are refused politely and the others are unaffected."""

from __future__ import annotations

from harness.history import FAIL
from harness.plan import PAUSE, SEND, ClientPlan, Op, Plan
from harness.scenario import AnyTarget, Check, ScenarioContext, ScenarioResult, conclude, events, run
from harness.target import Target
from scenarios.registry import register

LIMIT = 5


class MaxClients(AnyTarget):
    """LIMIT long-lived clients, newcomers while they are connected, latecomers after they leave."""

    name = "max-clients"
    description = "the connection limit is enforced politely (an error line, then a close); others unaffected"

    def not_applicable(self, target: Target) -> str | None:
        """Needs a way to set the limit, and a protocol that can say 'full'."""
        if not target.supports("max_clients"):
            return "the target declares no [options] max_clients"
        if target.protocol != "chat":
            return "the pfo1 protocol has no way to say the server is full"
        return None

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Fill the server, knock, leave, knock again."""
        t0 = self.begin(ctx)
        holders = [
            ClientPlan([Op(SEND, "holding a seat"), Op(PAUSE, seconds=1.5), Op(SEND, "still here")])
            for _ in range(LIMIT)
        ]
        newcomers = [ClientPlan([Op(SEND, "let me in")], start=0.5) for _ in range(ctx.n(5))]
        latecomers = [ClientPlan([Op(SEND, "now there is room")], start=2.5) for _ in range(2)]
        plan = Plan(holders + newcomers + latecomers, seed=ctx.seed, name=self.name)
        outcome = run(ctx, plan, "limit", target_options={"max_clients": LIMIT})
        new = range(LIMIT, LIMIT + len(newcomers))
        late = range(LIMIT + len(newcomers), len(plan.clients))
        refusals = [r for r in events(outcome, "connect") if r.type == FAIL and r.client in new]
        polite = [r for r in refusals if "full" in str(r.get("error"))]
        late_acked = {r.client for r in events(outcome, "send") if r.type == "ok" and r.client in late}
        holders_acked = sum(r.type == "ok" for r in events(outcome, "send") if r.client < LIMIT)
        checks = [
            Check(
                "newcomers over the limit are refused with a 'full' error",
                len(polite) == len(newcomers),
                f"{len(polite)} of {len(newcomers)} ({refusals[0].get('error') if refusals else 'none refused'})",
            ),
            Check(
                "the clients already in are unaffected",
                holders_acked == 2 * LIMIT,
                f"{holders_acked}/{2 * LIMIT} acked",
            ),
            Check(
                "once seats are free, newcomers get in", len(late_acked) == len(late), f"{len(late_acked)}/{len(late)}"
            ),
        ]
        return conclude(self, ctx, t0, [outcome], checks, limit=LIMIT)


register(MaxClients())
