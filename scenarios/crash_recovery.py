"""crash-recovery: SIGKILL under load, restart on the same log: every acked message present, service resumes."""

from __future__ import annotations

from dataclasses import replace

from harness.checks import scenario_check
from harness.history import INFO
from harness.plan import PAUSE, SEND, ClientPlan, Op, Plan
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
from harness.target import PortTaken, TargetError, listening, port_free
from scenarios.registry import register


def kill_and_restart(n: NemesisContext, after: float, clean: str | None = None) -> None:
    """After ``after`` seconds, stop the server (SIGKILL, or ``clean`` method) and start it again.

    A clean stop is followed by an *immediate* restart (that is what ``restart`` tests); when it fails
    because the port is still in TIME_WAIT, that is recorded and the server stays down (waiting a minute for
    the port would add nothing to the finding).
    """
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
    n.restarted = True
    try:
        n.live.restart(wait_port=not clean)
    except PortTaken as exc:  # another program took the port: no verdict about the server from here on
        n.history.add(INFO, "harness-error", error=str(exc))
        n.live.held = True
        n.server_down = True
        return
    except TargetError as exc:
        lingering = not port_free(srv.host, srv.port) and not listening(srv.host, srv.port)
        n.history.add(INFO, "server", event="restart-failed", error=str(exc), time_wait=lingering)
        n.live.held = True
        n.server_down = True
        return
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
        clients = chatter(ctx.n(20), messages=40, pause=0.05, rng=ctx.rng(self.name))
        if self.clean:  # clients still connected and silent at the stop: the server must close them itself
            clients += [
                ClientPlan([Op(SEND, "then quiet"), Op(PAUSE, seconds=2.0 + ctx.target.deadline)]) for _ in range(3)
            ]
        plan = Plan(clients, seed=ctx.seed, name=self.name)
        how = ctx.target.stop if self.clean else None
        # Testing an immediate restart: clients close as ordinary clients do, whatever TIME_WAIT that leaves.
        options = replace(ctx.config.options, reset_after_server_close=False) if self.clean else ctx.config.options
        outcome = run(ctx, plan, self.name, nemesis=lambda n: kill_and_restart(n, 0.8, clean=how), options=options)
        return conclude(self, ctx, t0, [outcome], restart_checks(outcome, immediate=self.clean))


@scenario_check("restarted")
def restart_checks(outcome: RunOutcome, immediate: bool = False) -> list[Check]:
    """Did the stop happen under load, and did the server come back (at once, when that is tested)?"""
    restarted = events(outcome, "nemesis")
    failed = [r for r in events(outcome, "server") if r.get("event") == "restart-failed"]
    checks = [
        Check(
            "the server was stopped under load",
            bool(restarted) or None,
            "" if restarted else "the clients finished first",
        )
    ]
    if immediate:
        why = ""
        if failed:
            why = str(failed[0].get("error"))[:300]
            if failed[0].get("time_wait"):
                why = (
                    "the port was still in TIME_WAIT from the connections it had just closed and the server "
                    f"does not set SO_REUSEADDR: {why}"
                )
        checks.append(Check("it started again on the same port and log at once", not failed, why))
    elif failed:
        checks.append(Check("it started again on the same port and log", False, str(failed[-1].get("error"))[:300]))
    else:
        checks.append(Check("it started again on the same port and log", True))
    return checks


register(CrashRecovery())
