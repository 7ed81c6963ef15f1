"""db-locked: another process holds a write lock on the log for a while."""

from __future__ import annotations

import select
import subprocess
import sys

from harness.history import FAIL, INVOKE, OK
from harness.plan import Plan
from harness.runner import NemesisContext
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

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""
BUSY = 1.0  # the server's own wait for a lock, when the target lets us set it
PAST = 1.5  # the lock is held this long past the server's wait, so its writes really fail
DEFAULT_BUSY = 5.0  # Python's sqlite3 waits this long for a lock unless told otherwise


def hold_for(target: Target) -> tuple[Target, float]:
    """The target to run (with a short busy timeout when it can be set) and how long to hold the lock."""
    if target.supports("busy_timeout"):
        return target.with_option("busy_timeout", BUSY), BUSY + PAST
    return target, (target.busy_timeout if target.busy_timeout is not None else DEFAULT_BUSY) + PAST


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
        target, hold = hold_for(ctx.target)
        busy = hold - PAST
        window: dict[str, float] = {}

        def nemesis(n: NemesisContext) -> None:
            if not n.wait(0.5):
                return
            srv = n.live.run
            assert srv is not None
            locker = subprocess.Popen(
                [sys.executable, "-c", LOCKER, str(srv.db_path), str(hold)], stdout=subprocess.PIPE
            )
            try:
                assert locker.stdout is not None
                if select.select([locker.stdout], [], [], 10)[0]:
                    locker.stdout.readline()
                window["start"] = n.history.now()
                n.event("lock", window="db-locked", phase="start")
                locker.wait(hold + 10)
                window["end"] = n.history.now()
                n.event("unlock", window="db-locked", phase="end")
            finally:
                locker.kill()
                locker.wait(5)

        n = ctx.n(10)
        messages = int((hold + 3.0) / 0.1)  # chatting before, during and after the lock
        plan = Plan(chatter(n, messages=messages, pause=0.1, rng=ctx.rng(self.name)), seed=ctx.seed, name=self.name)
        outcome = run(ctx, plan, "locked", target=target, nemesis=nemesis)
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
