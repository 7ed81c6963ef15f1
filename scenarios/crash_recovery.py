"""crash-recovery: SIGKILL under load, restart on the same log: every acked message present, service resumes."""

from __future__ import annotations

from dataclasses import replace

from harness.checks import scenario_check
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
        how = ctx.target.stop if self.clean else None
        step = {"at": 0.8, "action": "stop-restart", "method": how} if how else {"at": 0.8, "action": "kill-restart"}
        plan = Plan(clients, seed=ctx.seed, name=self.name, nemesis=[step])
        # Testing an immediate restart: clients close as ordinary clients do, whatever TIME_WAIT that leaves.
        options = replace(ctx.config.options, reset_after_server_close=False) if self.clean else ctx.config.options
        outcome = run(ctx, plan, self.name, options=options)
        return conclude(self, ctx, t0, [outcome], restart_checks(outcome, immediate=self.clean))


@scenario_check("restarted")
def restart_checks(outcome: RunOutcome, immediate: bool = False) -> list[Check]:
    """Did the stop happen under load, and did the server come back (at once, when that is tested)?"""
    stops = [r.time for r in events(outcome, "nemesis") if r.get("phase") == "start"]
    last_end = max((r.time for r in events(outcome, "conn-end")), default=0.0)
    under_load = bool(stops) and min(stops) < last_end
    failed = [r for r in events(outcome, "server") if r.get("event") == "restart-failed"]
    checks = [
        Check(
            "the server was stopped under load",
            under_load or None,
            "" if under_load else "the clients finished first",
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
