"""Invariant 8: the server keeps serving — a fresh probe is answered, nothing crashed, no thread died."""

from __future__ import annotations

from collections import Counter

from harness.checks.base import FAIL, NA, PASS, Judgement, invariant
from harness.history import OK
from harness.index import RunIndex


@invariant(8, "liveness")
def liveness(ix: RunIndex) -> Judgement:
    """A probe after the run is served; the process did not die; no client's thread died with a traceback."""
    j = Judgement(status=NA)
    for rec in ix.of("probe"):
        if rec.type == OK:
            j.status = PASS if j.status != FAIL else FAIL
        elif rec.type == "fail":
            j.add("not-live", 8, f"a fresh probe client was not served: {rec.get('error')}", history=[rec.index])
    for rec in ix.of("server"):
        if rec.get("event") == "crashed":
            why = rec.get("exception") or rec.get("stderr", "")
            j.add(
                "server-crashed",
                8,
                f"the server process died during the run (exit code {rec.get('exit_code')}): {why}",
                history=[rec.index],
            )
    crashed: Counter[str] = Counter()
    first: dict[str, tuple[int, dict[str, object], bool]] = {}
    for rec in [*ix.of("server-output"), *ix.of("shutdown")]:
        for tb in rec.get("tracebacks") or []:
            if tb.get("interrupt") or not tb.get("in_thread", tb.get("thread") not in ("main", "ignored")):
                continue
            if rec.f == "shutdown" and not tb.get("late"):  # a death asyncio reports only when it frees the task
                continue
            key = str(tb.get("exception"))
            crashed[key] += 1
            first.setdefault(key, (rec.index, tb, rec.f == "shutdown"))
    for exception, n in crashed.items():
        index, tb, at_stop = first[exception]
        times = f" ({n} times)" if n > 1 else ""
        who, which = _died(tb, at_stop)
        j.add("thread-crash", 8, f"{who} died with a traceback{times}{which}: {exception}", history=[index])
    return j


def _died(tb: dict[str, object], at_stop: bool) -> tuple[str, str]:
    """Who died (a server thread, a client's coroutine or protocol, a task of the server), and which one."""
    thread = str(tb.get("thread"))
    if not tb.get("asyncio"):
        return "a thread of the server", f", dropping its client: {thread}"
    if tb.get("died") == "client":
        return f"a client's {'asyncio protocol' if thread.startswith('asyncio protocol') else 'coroutine'}", (
            f", dropping its client: {thread}"
        )
    when = ", printed only when Python freed it, at the stop: it may have died then" if at_stop else ""
    return "a task of the server", f" ({thread}{when})"
