"""exit-word: the exit word ends the session politely and is never stored as a message."""

from __future__ import annotations

from dataclasses import replace

from harness.ends import End
from harness.plan import EXIT, SEND, ClientPlan, Op, Plan
from harness.scenario import AnyTarget, Check, ScenarioContext, ScenarioResult, conclude, events, run
from scenarios.registry import register


class ExitWord(AnyTarget):
    """Clients chat, say the exit word (in every accepted spelling), and the server must let them go."""

    name = "exit-word"
    description = "'éxito' ends the session and is not stored as a chat message"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Every client: two messages (one containing the word inside a sentence), then the exit word."""
        t0 = self.begin(ctx)
        spellings = ["", "exito", "ÉXITO", "  éxito  ", "/quit"] if ctx.target.protocol == "chat" else [""]
        clients = [
            ClientPlan(
                [
                    Op(SEND, "hola"),
                    Op(SEND, "fue un éxito total"),
                    Op(EXIT, spellings[i % len(spellings)]),
                    Op(SEND, "back again"),
                    Op(EXIT),
                ]
            )
            for i in range(ctx.n(6))
        ]
        options = replace(ctx.config.options, close_timeout=2.0)  # a server that ignores the word keeps us waiting
        outcome = run(ctx, Plan(clients, seed=ctx.seed, name=self.name), "exit", options=options)
        exits = len(events(outcome, "exit"))
        ignored = sum(c.end == End.CLOSE_TIMEOUT for c in outcome.ix.conns.values())
        polite = sum(c.end == End.EXIT_WORD for c in outcome.ix.conns.values())
        checks = [
            Check(
                "the server ends the session after the exit word",
                exits > 0 and ignored == 0 and polite == exits,
                f"{polite} of {exits} sessions ended by the server, {ignored} ignored the word",
            )
        ]
        return conclude(self, ctx, t0, [outcome], checks)


register(ExitWord())
