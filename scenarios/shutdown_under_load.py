"""shutdown-under-load: stop the server by each method it supports while clients chat."""

from __future__ import annotations

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

STOP_AFTER = 0.8  # seconds into the load


class ShutdownUnderLoad(AnyTarget):
    """For each stop method: chat, stop mid-load, then judge the exit, the log and the port."""

    name = "shutdown-under-load"
    description = "stop by each supported method while clients chat: exit 0 in time, acked rows durable, port free"
    expected_seconds = 15.0

    def not_applicable(self, target: Target) -> str | None:
        """Servers that can only be killed have no clean shutdown to test."""
        if target.stops == ("kill",):
            return 'the target can only be stopped with SIGKILL (stop = "kill")'
        return None

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """One fresh server per method."""
        t0 = self.begin(ctx)
        runs, checks = [], []
        for method in (m for m in ctx.target.stops if m != "kill"):
            # Chatty clients, and a few idle ones that are still connected when the stop comes.
            idle = [
                ClientPlan([Op(SEND, "then quiet"), Op(PAUSE, seconds=STOP_AFTER + 2 * ctx.target.deadline)])
                for _ in range(3)
            ]
            clients = chatter(ctx.n(20), messages=40, pause=0.05, rng=ctx.rng(method)) + idle
            stop = {"at": STOP_AFTER, "action": "stop", "method": method}
            plan = Plan(clients, seed=ctx.seed, name=self.name, nemesis=[stop])
            outcome = run(ctx, plan, method)
            runs.append(outcome)
            stopped = events(outcome, "shutdown")
            checks.append(
                Check(
                    f"stopped by {method} while clients chatted",
                    bool(stopped) or None,
                    "" if stopped else "the clients finished before the stop",
                )
            )
        return conclude(self, ctx, t0, runs, checks)


register(ShutdownUnderLoad())
