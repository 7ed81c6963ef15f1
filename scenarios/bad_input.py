"""bad-input: invalid UTF-8, NUL bytes, control characters, overlong lines and SQL quotes."""

from __future__ import annotations

from harness.history import FAIL, INVOKE, OK
from harness.plan import RAW, SEND, ClientPlan, Op, Plan
from harness.scenario import AnyTarget, Check, ScenarioContext, ScenarioResult, conclude, events, run
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
        clients = [ClientPlan(list(ops), start=0.02 * i) for i in range(ctx.n(3))]
        outcome = run(ctx, Plan(clients, seed=ctx.seed, name=self.name), "bad-lines")
        sends = events(outcome, "send")
        raw_tokens = {r.get("token") for r in sends if r.type == INVOKE and r.get("raw") is not None}
        answered = {r.get("token"): r.type for r in sends if r.type in (OK, FAIL)}
        unanswered = [t for t in raw_tokens if t not in answered and not _closed_after(outcome, t)]
        checks = [
            Check(
                "every bad line gets an answer or a clean close",
                not unanswered,
                f"{len(unanswered)} of {len(raw_tokens)} bad lines got neither an answer nor a close"
                if unanswered
                else "",
            )
        ]
        if ctx.target.protocol == "chat":
            accepted = [t for t in raw_tokens if answered.get(t) == OK]
            checks.append(
                Check(
                    "bad lines are refused with an ERROR", not accepted, f"{len(accepted)} accepted" if accepted else ""
                )
            )
        return conclude(self, ctx, t0, [outcome], checks)


def _closed_after(outcome: object, token: str) -> bool:
    """Whether the server closed the connection a bad line was sent on (a clean way to refuse it)."""
    records = outcome.records  # type: ignore[attr-defined]
    conn = next(r.conn for r in records if r.f == "send" and r.get("token") == token)
    return any(r.f == "conn-end" and r.conn == conn and "closed by the server" in str(r.get("reason")) for r in records)


register(BadInput())
