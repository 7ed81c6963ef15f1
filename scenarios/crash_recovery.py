"""crash-recovery: SIGKILL under load, restart on the same log: every acked message present, service resumes."""

from __future__ import annotations

from harness.history import INFO
from harness.plan import Plan
from harness.runner import NemesisContext, RunOutcome, record_stop
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
from harness.target import TargetError
from scenarios.registry import register


def kill_and_restart(n: NemesisContext, after: float, clean: str | None = None) -> None:
    """After ``after`` seconds, stop the server (SIGKILL, or ``clean`` method) and start it again at once."""
    if not n.wait(after):
        return
    srv = n.live.run
    assert srv is not None
    window = "restart" if clean else "crash"
    n.event(clean or "kill", window=window, phase="start", method=clean or "SIGKILL")
    if clean:
        record_stop(n.history, srv, clean, n.stop_tracebacks)  # a polite stop is judged like any other
    else:
        srv.stop("kill")
        n.history.add(INFO, "integrity", result=srv.integrity(), after="SIGKILL")
    try:
        n.live.restart()
    except TargetError as exc:
        n.history.add(INFO, "server", event="restart-failed", error=str(exc))
        n.server_down = True
        return
    finally:
        n.restarted = True
    n.event("restarted", window=window, phase="end")


class CrashRecovery(AnyTarget):
    """Clients keep chatting (and resending after reconnects) across a SIGKILL and a restart."""

    name = "crash-recovery"
    description = (
        "SIGKILL under load, restart on the same DB: every acked message present, integrity ok, service resumes"
    )

    clean = False  # stop with SIGKILL (Restart stops the target's polite way)

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Stop mid-load, restart at once, finish the load."""
        t0 = self.begin(ctx)
        plan = Plan(chatter(ctx.n(20), messages=40, pause=0.05, rng=ctx.rng(self.name)), seed=ctx.seed, name=self.name)
        how = ctx.target.stop if self.clean else None
        outcome = run(ctx, plan, self.name, nemesis=lambda n: kill_and_restart(n, 0.8, clean=how))
        return conclude(self, ctx, t0, [outcome], restart_checks(outcome))


def restart_checks(outcome: RunOutcome) -> list[Check]:
    """Did the stop happen under load, and did the server come back?"""
    restarted = events(outcome, "nemesis")
    failed = [r for r in events(outcome, "server") if r.get("event") == "restart-failed"]
    return [
        Check("the server was stopped under load", bool(restarted), "" if restarted else "the clients finished first"),
        Check("it started again on the same port and log", not failed, str(failed[0].get("error")) if failed else ""),
    ]


register(CrashRecovery())
