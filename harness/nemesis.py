"""The nemesis: what is done to the server while clients run — as steps in the plan, so a replay does it too.

A plan's ``nemesis`` is a list of steps like its fault schedule (``harness/plan.py`` checks their
shape), each at a time from the start of the run:

* ``{"at": 0.8, "action": "kill-restart"}`` — SIGKILL, then start again on the same port and log;
* ``{"at": 0.8, "action": "stop-restart", "method": "sigint"}`` — a clean stop (judged like any
  stop), then an immediate restart on the same port;
* ``{"at": 0.8, "action": "stop", "method": "sigterm"}`` — a clean stop; the server stays down;
* ``{"at": 0.5, "action": "lock", "seconds": 2.5}`` — another process holds a write lock on the log.

Every step records its window in the history (shown shaded on the report's plots).
"""

from __future__ import annotations

import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from harness.history import INFO
from harness.runner import NemesisContext, record_stop
from harness.target import PortTaken, TargetError, listening, port_free

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def schedule(steps: list[dict[str, Any]]) -> Callable[[NemesisContext], None]:
    """The nemesis that performs ``steps`` at their times (from the start of the run)."""
    ordered = sorted(steps, key=lambda s: float(s["at"]))

    def nemesis(n: NemesisContext) -> None:
        started = time.monotonic()
        for step in ordered:
            # At its time even if the clients finished first: the plan says when, and a shrunk plan
            # then needs no idle client to hold the run open until the step.
            time.sleep(max(0.0, float(step["at"]) - (time.monotonic() - started)))
            action = step["action"]
            if action == "kill-restart":
                kill_and_restart(n)
            elif action == "stop-restart":
                kill_and_restart(n, clean=str(step["method"]))
            elif action == "stop":
                stop_and_record(n, str(step["method"]))
            elif action == "lock":
                lock(n, float(step["seconds"]))
            if n.server_down:
                return

    return nemesis


def stop_and_record(n: NemesisContext, method: str) -> None:
    """Stop the server by ``method`` and record everything invariant 9 needs."""
    srv = n.live.run
    assert srv is not None
    n.event("stop", window="shutdown", phase="start", method=method)
    n.live.held = True  # a single-session target must stay down, not start for the next session
    record_stop(n.history, srv, method, n.stop_tracebacks)
    n.event("stop", window="shutdown", phase="end", method=method)
    n.server_down = True


def kill_and_restart(n: NemesisContext, clean: str | None = None) -> None:
    """Stop the server (SIGKILL, or ``clean`` method) and start it again.

    A clean stop is followed by an *immediate* restart (that is what ``restart`` tests); when it fails
    because the port is still in TIME_WAIT, that is recorded and the server stays down (waiting a minute for
    the port would add nothing to the finding).
    """
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


def lock(n: NemesisContext, seconds: float) -> None:
    """Another process takes the log's write lock and holds it ``seconds``; "lock" and "unlock" mark the window."""
    srv = n.live.run
    assert srv is not None
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(srv.db_path), str(seconds)], stdout=subprocess.PIPE)
    try:
        assert locker.stdout is not None
        if select.select([locker.stdout], [], [], 10)[0]:
            locker.stdout.readline()
        n.event("lock", window="db-locked", phase="start")
        locker.wait(seconds + 10)
        n.event("unlock", window="db-locked", phase="end")
    finally:
        locker.kill()
        locker.wait(5)
