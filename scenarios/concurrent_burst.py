"""concurrent-burst: many clients (default 1000) connect and send at the same moment.

First, a smaller question that a burst can hide: is a second client served while the first one is
connected and idle? A server that serves one client at a time answers the burst slowly (its
clients queue) but never answers B while A sits connected: that is the check that names it.
"""

from __future__ import annotations

from dataclasses import replace

from harness.checks import scenario_check
from harness.ends import End
from harness.plan import CLOSE, PAUSE, RECONNECT, SEND, ClientPlan, Op, Plan
from harness.runner import RunOutcome
from harness.scenario import AnyTarget, Check, ScenarioContext, ScenarioResult, chatter, conclude, run
from scenarios.registry import register

IDLE = 3.0  # seconds the first client stays connected and silent
PATIENCE = 2.0  # seconds the second client waits for its answer meanwhile
# Where the reference saturates on 2 cores (bench/burst.py): every message is relayed to every other
# member, N^2 lines; at 1000 clients it still answers each within the ack timeout, at 2000 not always.
BURST = 1000


class ConcurrentBurst(AnyTarget):
    """Two clients (one idle), then every client at once, sending a few messages closed-loop."""

    name = "concurrent-burst"
    description = "a second client is served while a first one idles; then many clients (default 1000) at once"
    expected_seconds = 10.0

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """The concurrency question, then one burst."""
        t0 = self.begin(ctx)
        runs, checks = [], []
        if not ctx.target.single_session:  # one session at a time is what such a target declares
            pair = Plan(
                [
                    ClientPlan([Op(RECONNECT), Op(PAUSE, seconds=IDLE), Op(CLOSE)]),  # connects, says nothing
                    ClientPlan([Op(SEND, "second, while the first idles")], start=0.5),
                ],
                seed=ctx.seed,
                name=self.name,
            )
            options = replace(ctx.config.options, ack_timeout=PATIENCE)
            runs.append(run(ctx, pair, "two-clients", options=options, probe=False))
            checks.append(served_side_by_side(runs[0]))
        n = ctx.n(BURST)
        runs.append(run(ctx, Plan(chatter(n, messages=3, pause=0.0), seed=ctx.seed, name=self.name), "burst"))
        return conclude(self, ctx, t0, runs, checks, clients=n)


@scenario_check("served-side-by-side")
def served_side_by_side(outcome: RunOutcome) -> Check:
    """Client 1's message is acknowledged while client 0 is still connected (and idle)."""
    ix = outcome.ix
    first = [c for c in ix.conns.values() if c.client == 0 and not c.failed]
    second = next((m for m in ix.messages.values() if m.client == 1), None)
    name = "a second client is answered while the first is connected and idle"
    if not first or second is None:
        return Check(name, None, "the clients did not get that far")
    a = first[0]
    a_left = a.closed_at if a.end is not None else ix.end_of_run()
    if a.end is not None and a.end != End.CLIENT_CLOSE:
        return Check(name, None, f"the first client did not stay connected ({a.end.value})")
    if second.acked and second.oks[0].time < (a_left or 0):
        return Check(name, True, f"answered in {second.oks[0].time - second.invokes[0].time:.3f} s")
    if second.acked:
        return Check(
            name, False, "it was answered only after the first client left: the server serves one client at a time"
        )
    ended = "" if a.end is None else f" (the first client's connection: {End(a.end).value})"
    return Check(
        name,
        False,
        f"no answer within {PATIENCE:g} s while the first client sat connected: the server serves one client at a time"
        + ended,
    )


register(ConcurrentBurst())
