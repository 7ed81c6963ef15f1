"""The harness's cost in CPU instructions per message: a figure this machine's drifting speed barely moves.

CPU seconds per message (``bench/harness_scale.py``) move by a third within minutes here, as other
work shares the cores; instructions move by about half a percent (threads that wake on a timer, the
history's flusher and the run's progress, run more often in a slower run). Under valgrind's callgrind, this runs the harness's
rate load (``--clients`` closed-loop clients x ``--messages`` messages against the reference
server, relay off, every message recorded, audited and judged) and counts the instructions the
harness process executes in user space (not the kernel's, not the server's, which runs outside
valgrind). Each figure is the difference of two runs of one program, with and without the work,
so start-up and imports cancel out:

1. a run: the whole of ``run_plan`` (driving, history, audit, judging), per message of the plan;
2. judging alone: ``check()`` on that run's history and log rows, per message.

Two builds compare by running this in each (e.g. a git worktree of the older commit with
``PYTHONPATH`` pointing at it); the same build gives the same figures to within about 0.5 %.

    python bench/instructions.py [--clients 200] [--messages 20]     # needs valgrind (apt-get install valgrind)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import harness
from harness.checker import check
from harness.clients import Options
from harness.history import OK, load
from harness.log import Row
from harness.plan import SEND, ClientPlan, Op, Plan
from harness.runner import LiveServer, RunConfig, RunOutcome, run_plan
from harness.target import reference

TEXT = "message from a simulated client, about as long as load.py's"


def rate_run(clients: int, messages: int, rundir: Path, drive: bool = True) -> RunOutcome | None:
    """One rate run against a fresh reference server (``drive=False``: only start and stop the server,
    what a run's count leaves out)."""
    target = replace(reference().with_args("--no-relay", "--max-clients", str(clients + 100)), relay="none")
    plan = Plan([ClientPlan([Op(SEND, TEXT)] * messages) for _ in range(clients)], 1, "rate")
    live = LiveServer(target, rundir / "server")
    try:
        live.ensure()
        if not drive:
            return None
        config = RunConfig(options=Options(connect_timeout=300.0, ack_timeout=300.0), workers=1, probe=True)
        return run_plan(target, plan, rundir / "run", server=live, config=config)
    finally:
        live.close()


def child(what: str, work: Path, clients: int, messages: int) -> None:
    """What runs under valgrind: ``run`` or ``check`` with ``work`` in it, or the same without (``-0``)."""
    if what.startswith("run"):
        with tempfile.TemporaryDirectory() as tmp:
            ran = rate_run(clients, messages, Path(tmp), drive=what == "run")
            if ran is not None:
                print(ran.result.summary().split(";")[0])
        return
    records = load(work / "history.jsonl")
    rows = [Row(*r) for r in json.loads((work / "rows.json").read_text())]
    if what == "check":
        print(f"valid {check(records, rows).valid}")


def instructions(what: str, work: Path, a: argparse.Namespace) -> tuple[int, str]:
    """User-space instructions of one child program, and what it printed."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    cmd += ["--child", what, "--work", str(work), "--clients", str(a.clients), "--messages", str(a.messages)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1)), done.stdout.strip()


def main() -> int:
    """Count, then print the two figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=200, help="closed-loop clients")
    ap.add_argument("--messages", type=int, default=20, help="messages per client")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.work, a.clients, a.messages)
        return 0
    if shutil.which("valgrind") is None:
        print("bench/instructions.py needs valgrind on PATH (Debian: apt-get install valgrind)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        outcome = rate_run(a.clients, a.messages, work / "native")  # the run judging is counted on
        assert outcome is not None
        rows = outcome.rows  # what the run judged
        shutil.copy(outcome.rundir / "history.jsonl", work / "history.jsonl")
        (work / "rows.json").write_text(json.dumps([[r.id, r.content, r.ts] for r in rows]))
        acked = sum(r.f == "send" and r.type == OK for r in outcome.records)
        base, _ = instructions("run-0", work, a)
        driven, said = instructions("run", work, a)
        print(f"harness from {Path(harness.__file__).parent}; under valgrind: {said}")
        print(
            f"a run (drive, record, audit, judge): {(driven - base) / a.clients / a.messages:,.0f} instructions per message"
        )
        loaded, _ = instructions("check-0", work, a)
        checked, said = instructions("check", work, a)
        print(f"judging alone ({said}): {(checked - loaded) / acked:,.0f} instructions per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
