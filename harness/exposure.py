"""Which connections a network fault or a nemesis touched, and when: the one place that decides it.

A fault touches a connection while it is in force and the proxy decided it applies to that
connection's link (decisions are seeded per link and recorded); a reset, a close, a cut or a
limit that the proxy caused on a link touches it from then on and ended it. A nemesis (a stop, a
kill and restart, a lock on the log) touches every connection open during its window. Invariants
about what a connection should have received or been answered judge only what no touch can
explain; everything else is counted as "not judged".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from harness.history import INVOKE, Record

EARLY = 0.05  # a fault acts a moment before its record is written
FAULT_AFTERMATH = 1.0  # held or delayed data still arrives this long after a fault is removed
NEMESIS_AFTERMATH = 2.0  # answers delayed by a lock or a restart still arrive this long after it
BACKLOG = 0.3  # a connection opened this long before a partition may still wait in the proxy's backlog
FINAL_EVENTS = frozenset({"reset", "timeout-close", "limit-close", "cut", "refused", "upstream-refused"})


@dataclass(frozen=True)
class Touch:
    """A fault or a nemesis acting on one connection from ``start`` to ``end`` (history seconds)."""

    start: float
    end: float
    source: str  # "fault" or "nemesis"
    what: str
    final: bool = False  # it ended the connection

    def overlaps(self, t0: float, t1: float) -> bool:
        """Whether it acted at any moment of ``t0..t1``."""
        return self.start < t1 and self.end > t0


def _windows(records: list[Record], f: str) -> dict[str, list[tuple[float, float, Record]]]:
    """Open/close pairs of ``f`` records (``phase`` start/end), by window name."""
    open_: dict[str, tuple[float, Record]] = {}
    out: dict[str, list[tuple[float, float, Record]]] = defaultdict(list)
    for r in records:
        if r.f != f or r.get("window") is None:
            continue
        name = str(r.get("window"))
        if r.get("phase") == "start":
            open_[name] = (r.time, r)
        elif r.get("phase") == "end" and name in open_:
            start, first = open_.pop(name)
            out[name].append((start, r.time, first))
    for name, (start, first) in open_.items():
        out[name].append((start, math.inf, first))
    return out


def _fault_label(rec: Record) -> str:
    fault = rec.get("fault") or {}
    kind = str(fault.get("kind", rec.get("label", "fault")))
    direction = fault.get("direction", "both")
    return f"{kind} ({direction})" if direction != "both" else kind


_READ = frozenset(("connect", "conn-end", "fault-event", "fault", "nemesis"))  # the records ``touches`` reads


def touches(records: Iterable[Record]) -> dict[int, list[Touch]]:
    """Every touch of every connection, by connection number."""
    records = [r for r in records if r.f in _READ]  # one pass over a run's history instead of five
    links: dict[str, int] = {}
    life: dict[int, tuple[float, float]] = {}
    opened: dict[int, float] = {}
    for r in records:
        if r.f == "connect" and r.type == INVOKE:
            opened[r.conn] = r.time
        if r.f == "connect" and r.get("link"):
            links[str(r.get("link"))] = r.conn
        if r.f == "conn-end":
            life[r.conn] = (opened.get(r.conn, 0.0), r.time)
    for conn, t in opened.items():
        life.setdefault(conn, (t, math.inf))
    out: dict[int, list[Touch]] = defaultdict(list)
    applies = {(str(r.get("link")), str(r.get("fault"))) for r in records if r.f == "fault-event" and r.get("applies")}
    for name, spans in _windows(records, "fault").items():
        if name == "down":
            # A partition refuses new connections (a cut is recorded per link); one that was still in the
            # proxy's backlog when it began is reset, and is recorded unless it arrived in the last instant.
            for start, end, _ in spans:
                for conn, (begin, _) in life.items():
                    if start - BACKLOG <= begin <= end:
                        out[conn].append(Touch(begin, end + FAULT_AFTERMATH, "fault", "partition (connecting)"))
            continue
        for start, end, rec in spans:
            label = _fault_label(rec)
            for link, conn in links.items():
                if (link, name) not in applies:
                    continue
                begin, finish = life[conn]
                if start < finish and end > begin:
                    out[conn].append(
                        Touch(max(start, begin) - EARLY, end + FAULT_AFTERMATH, "fault", f"{label} fault '{name}'")
                    )
    for r in records:
        if r.f == "fault-event" and r.get("event") in FINAL_EVENTS:
            hit = links.get(str(r.get("link")))
            if hit is not None:
                what = "partition cut" if r.get("event") == "cut" else f"{r.get('kind')} {r.get('event')}"
                out[hit].append(Touch(r.time - EARLY, math.inf, "fault", what, final=True))
    for name, spans in _windows(records, "nemesis").items():
        for start, end, rec in spans:
            what = str(rec.get("method") or rec.get("event") or name)
            final = name in ("shutdown", "crash", "restart")
            for conn, (begin, finish) in life.items():
                if start < finish and end > begin:
                    stop = math.inf if final else end + NEMESIS_AFTERMATH
                    out[conn].append(Touch(max(start, begin) - EARLY, stop, "nemesis", f"{name}: {what}", final))
    return dict(out)


def first_touch(touched: list[Touch]) -> Touch | None:
    """The earliest touch, if any."""
    return min(touched, key=lambda t: t.start) if touched else None


def touched_during(touched: list[Touch], t0: float, t1: float) -> Touch | None:
    """A touch acting at some moment of ``t0..t1`` (the earliest), if any."""
    hits = [t for t in touched if t.overlaps(t0, t1)]
    return first_touch(hits)
