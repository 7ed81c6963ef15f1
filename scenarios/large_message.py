"""large-message: sizes around the line limit and the usual read sizes, with multibyte characters on the edges."""

from __future__ import annotations

from harness.history import FAIL, INVOKE, OK
from harness.plan import SEND, ClientPlan, Op, Plan
from harness.runner import RUN_ID_LEN
from harness.scenario import AnyTarget, Check, ScenarioContext, ScenarioResult, conclude, events, run
from harness.wire import Wire, for_target
from scenarios.registry import register

READ_SIZES = (1024, 4096, 8192)
CHARS = ("x", "é", "€", "😀")  # 1, 2, 3 and 4 bytes in UTF-8


def body_for(size: int, overhead: int, char: str) -> str:
    """A body whose line is exactly ``size`` bytes, with ``char`` straddling the last byte when it can."""
    want = max(0, size - overhead)
    width = len(char.encode())
    n = want // width
    return char * n + "x" * (want - n * width)


def overhead(wire: Wire, client: int, seq: int) -> int:
    """Bytes a line spends beyond the body: framing, the id and the ``[token] `` prefix."""
    token = f"{'0' * RUN_ID_LEN}.{client}.{seq}"
    return len(wire.encode(f"[{token}] ", token)) - len(wire.frame(b""))


class LargeMessage(AnyTarget):
    """Messages whose encoded line lands just under, on and just over each interesting size."""

    name = "large-message"
    description = "sizes around the maximum line length and 1024/4096-byte reads, multibyte characters on the edges"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Each size and character kind once, closed-loop; over the limit must be refused, not cut."""
        t0 = self.begin(ctx)
        limit = ctx.target.max_line if ctx.target.protocol == "chat" else None
        sizes = sorted({s + d for s in READ_SIZES + ((limit,) if limit else ()) for d in (-1, 0, 1)})
        if limit:
            sizes = [s for s in sizes if s <= limit + 1]
        wire = for_target(ctx.target)
        clients = []
        for c, char in enumerate(CHARS):
            ops = [Op(SEND, body_for(size, overhead(wire, c, i + 1), char)) for i, size in enumerate(sizes)]
            clients.append(ClientPlan(ops))
        outcome = run(ctx, Plan(clients, seed=ctx.seed, name=self.name), "sizes")
        answers = {r.get("token"): r.type for r in events(outcome, "send") if r.type in (OK, FAIL)}
        within: list[tuple[int, str | None]] = []
        over: list[tuple[int, str | None]] = []
        for r in events(outcome, "send"):
            if r.type == INVOKE and r.client < len(clients):
                size = len(wire.encode(r.get("text"), r.get("token"))) - 1
                (over if limit and size > limit else within).append((size, answers.get(r.get("token"))))
        # A pfo1 server states no limit the harness could test; refusing a long message (with its error
        # reply) is a fair answer — cutting it is not, and that the invariants judge.
        fair = (OK, FAIL) if ctx.target.protocol == "pfo1" and ctx.target.pfo1.error else (OK,)
        name = "every message within the limit is acknowledged" if limit else "every message is acknowledged"
        if fair != (OK,):
            name = "every message is acknowledged, or refused with an error reply"
        checks = [
            Check(
                name,
                all(a in fair for _, a in within),
                ", ".join(f"{size} bytes: {a or 'no answer'}" for size, a in within if a not in fair)
                or f"{sum(a == OK for _, a in within)} acked, {sum(a == FAIL for _, a in within)} refused",
            )
        ]
        if limit:
            checks.append(
                Check(
                    f"lines over {limit} bytes are refused, not cut or stored",
                    all(a == FAIL for _, a in over) if over else None,
                    ", ".join(f"{size} bytes: {a or 'no answer'}" for size, a in over),
                )
            )
        return conclude(self, ctx, t0, [outcome], checks, sizes=sizes)


register(LargeMessage())
