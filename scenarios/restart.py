"""restart: a clean stop and an immediate restart on the same port and log, while clients chat."""

from __future__ import annotations

import time

from harness.plan import Plan
from harness.scenario import ScenarioContext, ScenarioResult, chatter, conclude, run, start_marker
from harness.target import Target
from scenarios.crash_recovery import kill_and_restart, restart_checks
from scenarios.registry import register


class Restart:
    """Like crash-recovery, but stopped the polite way: the port must be free at once, nothing lost."""

    name = "restart"
    description = "a clean stop and an immediate restart on the same port and DB while clients chat and reconnect"

    def not_applicable(self, target: Target) -> str | None:
        """Any server."""
        return None

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Stop mid-load, restart at once, finish the load."""
        t0 = time.monotonic()
        start_marker(ctx, self.name)
        plan = Plan(chatter(ctx.n(20), messages=40, pause=0.05, rng=ctx.rng(self.name)), seed=ctx.seed, name=self.name)
        outcome = run(ctx, plan, "restart", nemesis=lambda n: kill_and_restart(n, 0.8, clean=ctx.target.stop))
        return conclude(self, ctx, t0, [outcome], restart_checks(outcome))


register(Restart())
