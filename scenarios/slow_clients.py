"""slow-clients: senders that trickle a message byte by byte and receivers that never read."""

from __future__ import annotations

from harness.history import FAIL, INVOKE, OK
from harness.plan import NO_READ, RESET, SEND, TRICKLE, ClientPlan, Op, Plan
from harness.scenario import (
    AnyTarget,
    Check,
    ScenarioContext,
    ScenarioResult,
    ack_within,
    conclude,
    events,
    run,
)
from scenarios.registry import register

SLOW_ACK = 1.0  # seconds: an ack slower than this means a slow client held others up


class SlowClients(AnyTarget):
    """Tricklers and non-readers among normal chatters, who must not notice them."""

    name = "slow-clients"
    description = "senders that trickle a message byte by byte and receivers that never read; the others unaffected"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Chatters' acks must stay fast while slow clients linger."""
        t0 = self.begin(ctx)
        n = ctx.n(8)
        # Enough traffic (bursts of large messages, about 5 MB relayed to each client) that what piles up
        # for a client that stops reading outgrows the kernel's socket buffers (about 4 MB here).
        size = min(3500, ctx.target.max_line - 100) if ctx.target.protocol == "chat" else 400  # pfo1: no relays to fill
        pipelined = ctx.target.protocol == "chat"
        chatters = [
            ClientPlan([Op(SEND, "x" * size + f" {i}", pipelined=pipelined and i % 5 != 4) for i in range(200)])
            for _ in range(n)
        ]
        # Trickling needs framing: without it (raw pfo1) every byte is a message by definition.
        framed = ctx.target.protocol == "chat" or ctx.target.pfo1.framing != "raw"
        tricklers = [
            ClientPlan([Op(TRICKLE, "despacito ñandú 😀", seconds=0.02), Op(SEND, "after the trickle")])
            for _ in range(3 if framed else 0)
        ]
        deaf = [ClientPlan([Op(SEND, "I stop reading now"), Op(NO_READ, seconds=4.0), Op(RESET)]) for _ in range(3)]
        plan = Plan(chatters + tricklers + deaf, seed=ctx.seed, name=self.name)
        outcome = run(ctx, plan, "slow")
        normal = range(n)
        sent = sum(1 for r in events(outcome, "send") if r.type == INVOKE and r.client in normal)
        answered = sum(1 for r in events(outcome, "send") if r.type in (OK, FAIL) and r.client in normal)
        checks = [
            Check(
                "every normal client's message is answered (acked, or refused)", answered == sent, f"{answered}/{sent}"
            ),
            ack_within(outcome, 0.99, SLOW_ACK, normal),
        ]
        return conclude(self, ctx, t0, [outcome], checks)


register(SlowClients())
