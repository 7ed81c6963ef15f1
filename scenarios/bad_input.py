"""bad-input: invalid UTF-8, NUL bytes, control characters, overlong lines and SQL quotes."""

from __future__ import annotations

from harness.ends import End
from harness.index import Message, RunIndex
from harness.plan import RAW, SEND, ClientPlan, Op, Plan
from harness.scenario import AnyTarget, Check, ScenarioContext, ScenarioResult, conclude, run
from scenarios.registry import register

BAD = {
    "invalid UTF-8": b"caf\xe9 \xff\xfe",
    "a truncated multibyte character": b"precio 5" + "€".encode()[:2],
    "NUL bytes": b"nul\x00in the middle",
    "control characters": b"bell\x07 escape\x1b[31m red",
    "a lone carriage return": b"carriage\rreturn",
}
GOOD = ["'; DROP TABLE mensajes; --", "comillas \"dobles\" y 'simples'", "%s %d {0} \\x00 as text", "emoji 😀 y ñ"]


class BadInput(AnyTarget):
    """Every kind of bad line, each followed by a good one on the same connection."""

    name = "bad-input"
    description = (
        "invalid UTF-8, NUL bytes, overlong lines, control characters, SQL quotes: clear answers, nothing partial"
    )

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Send the bad lines; judge the answers and the log."""
        t0 = self.begin(ctx)
        bad = dict(BAD)
        if ctx.target.protocol == "chat":
            bad["an overlong line"] = b"y" * (ctx.target.max_line + 100)
        ops: list[Op] = []
        for data in bad.values():
            ops += [Op(RAW, data=data.hex()), Op(SEND, "still here after bad input")]
        ops += [Op(SEND, text) for text in GOOD]
        # A long line of multibyte characters, under the line limit (and under one 1024-byte read).
        longest = (ctx.target.max_line - 100) if ctx.target.protocol == "chat" else 700
        ops.append(Op(SEND, "ñandú 😀 " * (longest // len("ñandú 😀 ".encode()))))
        clients = [ClientPlan(list(ops), start=0.02 * i) for i in range(ctx.n(3))]
        outcome = run(ctx, Plan(clients, seed=ctx.seed, name=self.name), "bad-lines")
        ix = outcome.ix
        bad_sends = [m for m in ix.messages.values() if m.raw]
        good_sends = [m for m in ix.messages.values() if not m.raw and m.client < len(clients)]
        unanswered = [m.token for m in bad_sends if not _answered_or_closed(ix, m)]
        refused_good = [m.token for m in good_sends if not m.acked]
        checks = [
            Check(
                "every bad line gets an answer or a clean close",
                not unanswered,
                f"{len(unanswered)} of {len(bad_sends)} bad lines got neither an answer nor a close"
                if unanswered
                else "",
            ),
            Check(
                "good lines (quotes, emoji, after bad input) are acknowledged",
                not refused_good if good_sends else None,
                f"{len(good_sends) - len(refused_good)}/{len(good_sends)} acked"
                + (f", e.g. {ix.messages[refused_good[0]].text[:60]!r} was not" if refused_good else ""),
            ),
        ]
        if ctx.target.protocol == "chat":
            accepted = [m.token for m in bad_sends if m.acked]
            checks.append(
                Check(
                    "bad lines are refused with an ERROR", not accepted, f"{len(accepted)} accepted" if accepted else ""
                )
            )
        return conclude(self, ctx, t0, [outcome], checks)


def _answered_or_closed(ix: RunIndex, m: Message) -> bool:
    """A bad line is answered (ack or error) or the server closed its connection right after it."""
    if m.oks or m.fails:
        return True
    return any(
        (r.get("end") in CLOSED_BY_SERVER) or (ix.conns.get(r.conn) and ix.conns[r.conn].end in CLOSED_BY_SERVER)
        for r in m.infos
    )


CLOSED_BY_SERVER = {End.SERVER_CLOSE, End.SERVER_ERROR_CLOSE, End.RESET}  # str enum: equal to the recorded values


register(BadInput())
