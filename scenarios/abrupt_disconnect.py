"""abrupt-disconnect: clients that reset, close mid-message or go silent while others keep chatting."""

from __future__ import annotations

from harness.plan import HALF_CLOSE, HALF_RESET, NO_READ, PAUSE, RESET, SEND, ClientPlan, Op, Plan
from harness.scenario import AnyTarget, ScenarioContext, ScenarioResult, chatter, conclude, run
from scenarios.registry import register


class AbruptDisconnect(AnyTarget):
    """Half the clients chat; the other half break their connections in every way, at random points."""

    name = "abrupt-disconnect"
    description = "clients that RST, FIN mid-message or vanish at random points while others keep chatting"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Chatters plus disruptors; then no partial rows, no leak, the others unaffected."""
        t0 = self.begin(ctx)
        rng = ctx.rng(self.name)
        n = ctx.n(40)
        clients = chatter(n // 2, messages=8, pause=0.05, start_spread=0.2, rng=rng)
        half_ok = ctx.target.protocol == "chat" or ctx.target.pfo1.framing != "raw"
        for _ in range(n - n // 2):
            ops: list[Op] = []
            for _ in range(rng.randint(2, 5)):
                ops += [Op(SEND, "before the break") for _ in range(rng.randint(0, 2))]
                ops.append(Op(PAUSE, seconds=round(rng.uniform(0, 0.2), 3)))
                breaks = [Op(RESET), Op(NO_READ, seconds=0.3), Op(SEND, "then gone")]
                if half_ok:
                    breaks += [
                        Op(HALF_RESET, "half then RST " + "é" * rng.randint(1, 40)),
                        Op(HALF_CLOSE, "half then FIN " + "x" * rng.randint(1, 40)),
                    ]
                ops.append(rng.choice(breaks))
                if ops[-1].kind in (NO_READ, SEND):
                    ops.append(Op(RESET))
            clients.append(ClientPlan(ops, start=round(rng.uniform(0, 0.3), 3)))
        rng.shuffle(clients)
        outcome = run(ctx, Plan(clients, seed=ctx.seed, name=self.name), "disconnects")
        return conclude(self, ctx, t0, [outcome])


register(AbruptDisconnect())
