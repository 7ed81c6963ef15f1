"""exit-word: the exit word ends the session politely and is never stored as a message."""

from __future__ import annotations

import subprocess
from dataclasses import replace

from harness.ends import End
from harness.log import LogReader
from harness.plan import EXIT, SEND, ClientPlan, Op, Plan
from harness.runner import LiveServer
from harness.scenario import AnyTarget, Check, ScenarioContext, ScenarioResult, conclude, events, run, run_client
from harness.target import Target
from scenarios.registry import register


class ExitWord(AnyTarget):
    """Clients chat, say the exit word (in every accepted spelling), and the server must let them go."""

    name = "exit-word"
    description = "'éxito' ends the session and is not stored as a chat message"

    def not_applicable(self, target: Target) -> str | None:
        """A word only the server's own client understands can only be tested with that client."""
        if target.protocol == "pfo1" and not target.pfo1.server_sees_exit_word and not target.client:
            return "only the server's own client understands the exit word, and the target declares no 'client'"
        return None

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Every client: two messages (one containing the word inside a sentence), then the exit word."""
        if ctx.target.protocol == "pfo1" and not ctx.target.pfo1.server_sees_exit_word:
            return self.with_own_client(ctx)
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

    def with_own_client(self, ctx: ScenarioContext) -> ScenarioResult:
        """The target's client program: it must end on the exit word, and the word must not reach the log."""
        t0 = self.begin(ctx)
        word = ctx.target.pfo1.exit_word
        live = LiveServer(ctx.target, ctx.rundir / "servers")
        runs, checks = [], []
        try:
            srv = live.ensure()
            try:
                proc = run_client(ctx.target, srv.host, srv.port, f"hola desde el cliente\n{word}\n", timeout=10)
                ended = Check(
                    "the target's own client ends on the exit word",
                    proc.returncode == 0,
                    f"exit code {proc.returncode}",
                )
            except subprocess.TimeoutExpired:
                ended = Check("the target's own client ends on the exit word", False, "still running 10 s after it")
            checks.append(ended)
            rows = LogReader(srv.db_path, ctx.target.log).rows_after(0)
            stored = [r for r in rows if (r.content or "").strip().casefold() == word.casefold()]
            checks.append(
                Check(
                    "and does not send it (it is not stored)",
                    not stored,
                    f"row {stored[0].id} stores {word!r}" if stored else f"{len(rows)} row(s), none of them the word",
                )
            )
            plan = Plan([ClientPlan([Op(SEND, "hola"), Op(EXIT), Op(SEND, "back again")]) for _ in range(ctx.n(3))])
            runs.append(run(ctx, plan, "exit", server=live))  # the simulated clients close instead of saying it
        finally:
            live.close()
        return conclude(self, ctx, t0, runs, checks)


register(ExitWord())
