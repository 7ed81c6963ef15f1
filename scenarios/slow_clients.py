"""slow-clients: senders that trickle a message byte by byte, receivers that never read, and users who pause."""

from __future__ import annotations

from harness.ends import End
from harness.history import FAIL, INVOKE, OK
from harness.plan import NO_READ, PAUSE, RESET, SEND, TRICKLE, ClientPlan, Op, Plan
from harness.runner import RunOutcome
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

THINK = 10.0  # seconds a user may take to type the next message; the server must keep the connection
IMMEDIATE = 0.5  # s: a close sooner after the last answer ends a session (un_mensaje: 7 ms at most), not a timeout
SILENT = f"clients silent for {THINK:g} s between messages stay connected"  # the check's name
SLOW_ACK = 1.0  # seconds: an ack slower than this means a slow client held others up


class SlowClients(AnyTarget):
    """Tricklers, non-readers and users who pause among normal chatters, who must not notice them."""

    name = "slow-clients"
    description = (
        "senders that trickle a message byte by byte, receivers that never read, and users silent "
        f"for {THINK:g} s between messages; the others unaffected, the silent ones still connected"
    )

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Chatters' acks must stay fast while slow clients linger; pausing users must keep their connections."""
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
        thinkers = [
            ClientPlan([Op(SEND, "let me think"), Op(PAUSE, seconds=THINK), Op(SEND, "back again")]) for _ in range(2)
        ]
        plan = Plan(chatters + tricklers + deaf + thinkers, seed=ctx.seed, name=self.name)
        outcome = run(ctx, plan, "slow")
        normal = range(n)
        sent = sum(1 for r in events(outcome, "send") if r.type == INVOKE and r.client in normal)
        answered = sum(1 for r in events(outcome, "send") if r.type in (OK, FAIL) and r.client in normal)
        checks = [
            Check(
                "every normal client's message is answered (acked, or refused)", answered == sent, f"{answered}/{sent}"
            ),
            ack_within(outcome, 0.99, SLOW_ACK, normal),
            kept_while_silent(outcome, range(len(plan.clients) - len(thinkers), len(plan.clients))),
        ]
        return conclude(self, ctx, t0, [outcome], checks)


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


register(SlowClients())
