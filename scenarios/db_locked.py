"""db-locked: another process holds a write lock on the log for a while."""

from __future__ import annotations

from harness.history import FAIL, INVOKE, OK
from harness.plan import Plan
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

BUSY = 1.0  # the server's own wait for a lock, when the target lets us set it
PAST = 1.5  # the lock is held this long past the server's wait, so its writes really fail
DEFAULT_BUSY = 5.0  # Python's sqlite3 waits this long for a lock unless told otherwise


def hold_for(target: Target) -> tuple[dict[str, float], float]:
    """The target options to run with (a short busy timeout when it can be set) and how long to hold the lock."""
    if target.supports("busy_timeout"):
        return {"busy_timeout": BUSY}, BUSY + PAST
    return {}, (target.busy_timeout if target.busy_timeout is not None else DEFAULT_BUSY) + PAST


class DbLocked(AnyTarget):
    """A second process takes the write lock mid-load and keeps it for a while."""

    name = "db-locked"
    description = "another process holds a write lock on the DB: no ack without a row, clear errors or delayed acks"
    expected_seconds = 9.0

    def not_applicable(self, target: Target) -> str | None:
        """Any server with a log file."""
        return None

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Lock for HOLD seconds, then check answers during and acks after."""
        t0 = self.begin(ctx)
        options, hold = hold_for(ctx.target)
        busy = hold - PAST
        n = ctx.n(10)
        messages = int((hold + 3.0) / 0.1)  # chatting before, during and after the lock
        clients = chatter(n, messages=messages, pause=0.1, rng=ctx.rng(self.name))
        plan = Plan(clients, seed=ctx.seed, name=self.name, nemesis=[{"at": 0.5, "action": "lock", "seconds": hold}])
        outcome = run(ctx, plan, "locked", target_options=options)
        window = {r.get("event"): r.time for r in events(outcome, "nemesis") if r.get("event") in ("lock", "unlock")}
        window = {"start": window["lock"], "end": window["unlock"]} if "unlock" in window else {}
        sends = events(outcome, "send")
        settled = {r.get("token") for r in sends if r.type in (OK, FAIL)}
        acked = {r.get("token") for r in sends if r.type == OK}
        invoked = [r for r in sends if r.type == INVOKE and r.client < n]
        after = [r for r in invoked if "end" in window and r.time > window["end"] + busy]
        checks = [
            Check("the lock was taken while clients chatted", "end" in window or None),
            Check(
                "every message gets an answer (ack or error)",
                all(r.get("token") in settled for r in invoked),
                f"{sum(r.get('token') not in settled for r in invoked)} unanswered",
            ),
            Check(
                "messages sent after the lock is released are acknowledged",
                all(r.get("token") in acked for r in after) if after else None,
                f"{sum(r.get('token') in acked for r in after)}/{len(after)}",
            ),
        ]
        return conclude(self, ctx, t0, [outcome], checks, hold=hold)


register(DbLocked())
