"""idle-clients: a declared idle timeout is enforced politely; users who pause to type keep their connections."""

from __future__ import annotations

from harness.ends import End
from harness.history import FAIL, INVOKE, OK
from harness.plan import PAUSE, SEND, ClientPlan, Op, Plan
from harness.runner import RunOutcome
from harness.scenario import (
    AnyTarget,
    Check,
    ScenarioContext,
    ScenarioResult,
    chatter,
    conclude,
    events,
    run,
)
from scenarios.registry import register

TIMEOUT = 1.0
THINK = 10.0  # seconds a user may take to type the next message; the server must keep the connection
PATIENT = 6 * THINK  # the idle timeout set, where the target declares how, while users think
IMMEDIATE = 0.5  # s: a close sooner after the last answer ends a session (un_mensaje: 7 ms at most), not a timeout
SILENT = f"clients silent for {THINK:g} s between messages stay connected"  # the check's name


class IdleClients(AnyTarget):
    """Clients that say one thing and then nothing, among clients that talk."""

    name = "idle-clients"
    description = (
        "a declared idle timeout is enforced politely (an error line, then a close), active clients unaffected; "
        f"users silent for {THINK:g} s between two messages keep their connections"
    )

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Where the timeout can be set: idle clients let go after about TIMEOUT seconds; always: thinkers kept."""
        t0 = self.begin(ctx)
        declared = ctx.target.supports("idle_timeout")
        runs: list[RunOutcome] = []
        checks: list[Check] = []
        if declared:
            outcome = self._polite(ctx)
            runs.append(outcome)
            checks += self._polite_checks(outcome, ctx.n(4))
        n = ctx.n(2)
        thinkers = [
            ClientPlan([Op(SEND, "let me think"), Op(PAUSE, seconds=THINK), Op(SEND, "back again")]) for _ in range(n)
        ]
        talkers = chatter(n, messages=8, pause=THINK / 8, rng=ctx.rng(self.name))
        outcome = run(
            ctx,
            Plan(thinkers + talkers, seed=ctx.seed, name=self.name),
            "think",
            target_options={"idle_timeout": PATIENT} if declared else None,
        )
        runs.append(outcome)
        checks.append(kept_while_silent(outcome, range(n)))
        return conclude(self, ctx, t0, runs, checks, **({"timeout": TIMEOUT} if declared else {}))

    def _polite(self, ctx: ScenarioContext) -> RunOutcome:
        """Idle clients wait 2.5 s among clients that talk every 0.3 s; the timeout is TIMEOUT."""
        n = ctx.n(4)
        idle = [ClientPlan([Op(SEND, "hello, then silence"), Op(PAUSE, seconds=2.5 * TIMEOUT)]) for _ in range(n)]
        active = chatter(n, messages=8, pause=0.3 * TIMEOUT, rng=ctx.rng(self.name))
        return run(
            ctx, Plan(idle + active, seed=ctx.seed, name=self.name), "idle", target_options={"idle_timeout": TIMEOUT}
        )

    @staticmethod
    def _polite_checks(outcome: RunOutcome, n: int) -> list[Check]:
        """Idle clients told why and let go after about TIMEOUT seconds; active ones not cut."""
        last_ack = {r.client: r.time for r in events(outcome, "send") if r.type == OK}
        told = {r.client for r in events(outcome, "server-error") if r.get("code") == "idle"}
        ends = {c.client: c for c in outcome.ix.conns.values() if c.end is not None}
        waited = [end - last_ack[c] for c in range(n) if c in ends and c in last_ack and (end := ends[c].end_at)]
        active_cut = [c for c in range(n, 2 * n) if c in ends and not ends[c].end.polite]  # type: ignore[union-attr]
        return [
            Check("idle clients are told why", len(told & set(range(n))) == n, f"{len(told & set(range(n)))}/{n}"),
            Check(
                f"and disconnected after about {TIMEOUT:g} s of silence",
                len(waited) == n and all(0.8 * TIMEOUT <= w <= 2.2 * TIMEOUT for w in waited),
                ", ".join(f"{w:.2f} s" for w in waited),
            ),
            Check(
                "active clients are not disconnected", not active_cut, f"{len(active_cut)} cut" if active_cut else ""
            ),
        ]


def kept_while_silent(outcome: RunOutcome, silent: range) -> Check:
    """A check that the server did not hang up on the ``silent`` clients while they paused between messages."""
    answered: dict[int, float] = {}  # connection -> when its last answer came
    sent: dict[int, float] = {}  # connection -> when its last message went out
    for r in events(outcome, "send"):
        if r.client in silent and r.conn is not None:
            seen = answered if r.type in (OK, FAIL) else sent if r.type == INVOKE else {}
            seen[r.conn] = max(seen.get(r.conn, r.time), r.time)
    cut: list[tuple[float, End]] = []
    for c in outcome.ix.conns.values():
        last = answered.get(c.conn)
        cause = c.cause
        if c.client not in silent or last is None or cause is None or c.end_at is None or sent.get(c.conn, 0.0) > last:
            continue  # not ended, or ended while a message of its was waiting for an answer (not in a silence)
        if (cause.by_server or cause is End.RESET) and c.end_at - last >= IMMEDIATE:
            cut.append((c.end_at - last, cause))
    words = {End.SERVER_CLOSE: "without a word", End.SERVER_ERROR_CLOSE: "after an error line", End.RESET: "reset"}
    detail = (
        f"the server hung up on {len(cut)} of {len(silent)} clients silent between two messages: "
        + ", ".join(f"{s:.1f} s after their last answer ({words[e]})" for s, e in sorted(cut))
        if cut
        else f"{len(silent)} clients silent for {THINK:g} s between two messages kept their connections"
    )
    return Check(SILENT, not cut, detail)


register(IdleClients())
