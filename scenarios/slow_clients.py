"""slow-clients: senders that trickle a message byte by byte and receivers that never read."""

from __future__ import annotations

import time

from harness.history import INVOKE, OK
from harness.plan import NO_READ, RESET, SEND, TRICKLE, ClientPlan, Op, Plan
from harness.report import percentile
from harness.scenario import Check, ScenarioContext, ScenarioResult, chatter, conclude, events, run, start_marker
from harness.target import Target
from scenarios.registry import register

SLOW_ACK = 1.0  # seconds: an ack slower than this means a slow client held others up


class SlowClients:
    """Tricklers and non-readers among normal chatters, who must not notice them."""

    name = "slow-clients"
    description = "senders that trickle a message byte by byte and receivers that never read; the others unaffected"

    def not_applicable(self, target: Target) -> str | None:
        """Any server."""
        return None

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Chatters' acks must stay fast while slow clients linger."""
        t0 = time.monotonic()
        start_marker(ctx, self.name)
        n = ctx.n(12)
        chatters = chatter(n, messages=15, pause=0.1, rng=ctx.rng(self.name))
        # Trickling needs framing: without it (raw pfo1) every byte is a message by definition.
        framed = ctx.target.protocol == "chat" or ctx.target.pfo1.framing != "raw"
        tricklers = [
            ClientPlan([Op(TRICKLE, "despacito ñandú 😀", seconds=0.02), Op(SEND, "after the trickle")])
            for _ in range(3 if framed else 0)
        ]
        deaf = [ClientPlan([Op(SEND, "I stop reading now"), Op(NO_READ, seconds=2.5), Op(RESET)]) for _ in range(3)]
        plan = Plan(chatters + tricklers + deaf, seed=ctx.seed, name=self.name)
        outcome = run(ctx, plan, "slow")
        invoked, latencies = {}, []
        for r in events(outcome, "send"):
            if r.client < n:
                if r.type == INVOKE:
                    invoked[r.get("token")] = r.time
                elif r.type == OK and r.get("token") in invoked:
                    latencies.append(r.time - invoked[r.get("token")])
        latencies.sort()
        sent = len(invoked)
        p99 = percentile(latencies, 0.99)
        checks = [
            Check("every normal client's message is acknowledged", len(latencies) == sent, f"{len(latencies)}/{sent}"),
            Check(
                f"normal clients' p99 ack latency stays under {SLOW_ACK:g} s",
                p99 is not None and p99 < SLOW_ACK,
                f"p99 {p99 * 1000:.1f} ms" if p99 is not None else "no acks",
            ),
        ]
        return conclude(self, ctx, t0, [outcome], checks)


register(SlowClients())
