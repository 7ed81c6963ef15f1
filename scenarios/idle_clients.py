"""idle-clients: silent clients are disconnected after the idle timeout, with a reason; chatty ones are not."""

from __future__ import annotations

from harness.history import OK
from harness.plan import PAUSE, SEND, ClientPlan, Op, Plan
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
from harness.target import Target
from scenarios.registry import register

TIMEOUT = 1.0


class IdleClients(AnyTarget):
    """Clients that say one thing and then nothing, among clients that talk every 0.3 s."""

    name = "idle-clients"
    description = "the idle timeout is enforced politely (an error line, then a close); active clients unaffected"

    def not_applicable(self, target: Target) -> str | None:
        """Needs a way to set the idle timeout."""
        if not target.supports("idle_timeout"):
            return "the target declares no [options] idle_timeout"
        return None

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Idle clients wait 2.5 s; they must be let go after about TIMEOUT seconds."""
        t0 = self.begin(ctx)
        n = ctx.n(4)
        idle = [ClientPlan([Op(SEND, "hello, then silence"), Op(PAUSE, seconds=2.5 * TIMEOUT)]) for _ in range(n)]
        active = chatter(n, messages=8, pause=0.3 * TIMEOUT, rng=ctx.rng(self.name))
        outcome = run(
            ctx, Plan(idle + active, seed=ctx.seed, name=self.name), "idle", target_options={"idle_timeout": TIMEOUT}
        )
        last_ack = {r.client: r.time for r in events(outcome, "send") if r.type == OK}
        told = {r.client for r in events(outcome, "server-error") if r.get("code") == "idle"}
        ends = {c.client: c for c in outcome.ix.conns.values() if c.end is not None}
        waited = [end - last_ack[c] for c in range(n) if c in ends and c in last_ack and (end := ends[c].end_at)]
        active_cut = [c for c in range(n, 2 * n) if c in ends and not ends[c].end.polite]  # type: ignore[union-attr]
        checks = [
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
        return conclude(self, ctx, t0, [outcome], checks, timeout=TIMEOUT)


register(IdleClients())
