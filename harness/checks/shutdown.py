"""Invariant 9: a stop is clean — exit 0 in time, the log intact, no traceback, the port free at once,
and the server really stops serving."""

from __future__ import annotations

import signal

from harness.checks.base import FAIL, NA, PASS, Judgement, invariant
from harness.history import Record
from harness.index import RunIndex

STOPPING = 1.0  # seconds a stopping server may still answer what was already on its way


@invariant(9, "clean shutdown")
def clean_shutdown(ix: RunIndex) -> Judgement:
    """Every stop the run made (and every crash's log) is judged."""
    j = Judgement(status=NA)
    for rec in ix.of("integrity"):
        if rec.get("result") == "ok":
            j.status = PASS if j.status == NA else j.status
        else:
            j.add(
                "corrupt-log", 9, f"integrity_check after {rec.get('after')}: {rec.get('result')}", history=[rec.index]
            )
    for rec in ix.of("shutdown"):
        if j.status != FAIL:
            j.status = PASS
        for problem in _problems(rec):
            j.add("unclean-shutdown", 9, f"server {problem}", history=[rec.index])
        if harmless := [tb for tb in rec.get("tracebacks") or [] if tb.get("harmless")]:
            j.notes.append(
                f"not counted: at its {rec.get('method')} stop asyncio printed {len(harmless)} traceback(s) of its "
                f"own machinery, not the server's code ({harmless[0].get('exception')}: a peer's reset the server "
                "handled, or a client coroutine cancelled at exit)"
            )
        served = _served_after(ix, rec)
        if served:
            j.add(
                "serves-after-stop",
                9,
                f"after {rec.get('method')} the server kept answering: {served} message(s) sent {STOPPING:g} s or more "
                "after the signal were acknowledged (the signal ended one thread, not the server?)",
                history=[rec.index],
            )
    return j


def _signal_name(code: object) -> str:
    """`` (killed by SIGSEGV)`` for a negative exit code: a signal ended the process."""
    if not isinstance(code, int) or code >= 0:
        return ""
    try:
        return f" (killed by {signal.Signals(-code).name})"
    except ValueError:
        return ""


def _problems(rec: Record) -> list[str]:
    code, seconds, deadline, method = rec.get("exit_code"), rec.get("seconds"), rec.get("deadline"), rec.get("method")
    problems = []
    if rec.get("forced"):
        problems.append(f"did not exit within {rec.get('timeout')} s of {method} and was killed")
    elif code not in (rec.get("exit_codes") or (0,)):
        problems.append(f"exited with code {code}{_signal_name(code)} after {method}")
    if left := rec.get("left_running"):
        problems.append(
            f"exited after {method} but left {left} process(es) of its own running (children it started and did not"
            " stop or wait for; the harness killed them)"
        )
    if deadline is not None and seconds is not None and seconds > deadline and not rec.get("forced"):
        problems.append(f"took {seconds:.2f} s to stop after {method}, more than {deadline} s")
    if rec.get("integrity") not in (None, "ok"):
        problems.append(f"left the log failing integrity_check: {rec.get('integrity')}")
    for tb in rec.get("tracebacks") or []:
        if tb.get("harmless") or (tb.get("late") and tb.get("in_thread")):  # noise; a client's death judged by 8
            continue
        if tb.get("interrupt"):
            problems.append(f"printed an unhandled KeyboardInterrupt traceback on {method} (Ctrl+C is not handled)")
        else:
            problems.append(f"printed a traceback while stopping ({tb.get('thread')}): {tb.get('exception')}")
    if not rec.get("tracebacks") and rec.get("traceback"):  # records written before tracebacks were parsed
        problems.append("printed a traceback: " + str(rec.get("traceback"))[:200])
    if rec.get("rebind") is False:
        problems.append("left its port unusable: it could not be bound again right after the stop")
    return problems


def _served_after(ix: RunIndex, rec: Record) -> int:
    """Messages sent well after a stop began that were still acknowledged: the stop did not stop the server."""
    began = rec.get("began")
    if began is None:
        return 0
    late = float(began) + STOPPING
    return sum(1 for m in ix.messages.values() if m.oks and m.invokes and late < m.invokes[0].time < rec.time)
