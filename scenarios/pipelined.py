"""pipelined: back-to-back sends without waiting for acks, so framing must split and join correctly."""

from __future__ import annotations

from dataclasses import replace

from harness.plan import SEND, ClientPlan, Op, Plan
from harness.scenario import AnyTarget, ScenarioContext, ScenarioResult, conclude, run
from harness.target import Target
from scenarios.registry import register


class Pipelined(AnyTarget):
    """Bursts of messages in one write each (merged in one read) and one message split over writes."""

    name = "pipelined"
    description = "back-to-back sends without waiting for acks: merged and split messages (framing)"

    def not_applicable(self, target: Target) -> str | None:
        """Any server that takes several messages per connection: without framing, this is where it shows."""
        if target.protocol == "pfo1" and target.pfo1.messages_per_connection == 1:
            return "the server takes one message per connection: nothing to send back to back"
        return None

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Each client sends bursts of five messages in one write, three times."""
        t0 = self.begin(ctx)
        clients = []
        for c in range(ctx.n(10)):
            ops = []
            for burst in range(3):
                ops += [Op(SEND, f"burst {burst} message {i} «{c}»", pipelined=True) for i in range(4)]
                ops.append(Op(SEND, f"burst {burst} message 4 «{c}»"))
            clients.append(ClientPlan(ops, start=round(0.01 * c, 3)))
        # A merged pair leaves its second message unanswered forever: do not wait 10 s for each.
        options = replace(ctx.config.options, ack_timeout=3.0, held_to=ctx.config.options.ack_timeout)
        outcome = run(ctx, Plan(clients, seed=ctx.seed, name=self.name), "bursts", pipelining=True, options=options)
        return conclude(self, ctx, t0, [outcome])


register(Pipelined())
