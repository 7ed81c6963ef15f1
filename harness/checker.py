"""Invariants over a run's history and the server's log: a verdict, counts, and anomalies with evidence.

The invariants are numbered as in the design brief; each is a small checker registered in
``harness.checks`` and reads one ``RunIndex``:

1. no acked message lost — each acked message is in the log
2. no duplicates — no sent message is stored twice
3. no phantoms — no row no client sent; no empty, partial, merged or split rows
4. integrity — stored content equals sent content (after the target's normalisation)
5. per-connection order — one connection's messages are stored in send order
6. ack consistency — the ack comes after the row is visible; its row id and timestamp match; no ack for nothing
7. delivery (relaying servers) — a member connected throughout receives each message once, in log order
8. liveness — a fresh probe client is still served; no crash; no thread dies
9. clean shutdown — exit 0 in time, acked rows durable, integrity ok, no traceback, port rebindable
10. resources — server threads and descriptors return to baseline after the clients leave
11. answered — on a connection no fault or nemesis touched, every message gets one answer in time

A message sent but never acknowledged is *indeterminate*: stored at most once, never an error by
itself (invariant 11 aside). What a fault or a nemesis could explain is never judged; it is
counted as "not judged". The verdict is ``True`` (valid), ``False`` (an anomaly) or ``None``
(unknown: the harness could not observe enough, e.g. the log was unreadable or a client thread failed).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.checks import INVARIANTS
from harness.checks.base import FAIL, MAX_EVIDENCE, NA, PASS, UNKNOWN, Anomaly, Judgement
from harness.gcpause import collections_held
from harness.history import Record
from harness.index import RunIndex
from harness.log import Row

__all__ = ["INVARIANTS", "MAX_EVIDENCE", "Anomaly", "CheckResult", "Counts", "check", "judge", "merge"]

NAMES = {n: inv.name for n, inv in INVARIANTS.items()}


@dataclass
class Counts:
    """How many messages ended up where."""

    sent: int = 0
    acked: int = 0
    failed: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    indeterminate: int = 0
    rows: int = 0


@dataclass
class CheckResult:
    """The verdict of one run (or of several, merged)."""

    valid: bool | None
    anomalies: list[Anomaly]
    counts: Counts
    invariants: dict[int, str]
    notes: list[str] = field(default_factory=list)
    not_judged: dict[int, dict[str, int]] = field(default_factory=dict)  # invariant -> reason -> how many
    units: dict[int, str] = field(default_factory=dict)  # what invariant N's not-judged numbers count

    def to_dict(self) -> dict[str, Any]:
        """Plain data for report.json."""
        return {
            "valid": self.valid,
            "counts": asdict(self.counts),
            "invariants": {
                str(k): {"name": NAMES.get(k, str(k)), "status": v, **self._skipped(k)}
                for k, v in sorted(self.invariants.items())
            },
            "anomalies": [a.to_dict() for a in self.anomalies],
            "anomaly_kinds": dict(Counter(a.kind for a in self.anomalies).most_common()),
            "notes": self.notes,
        }

    def _skipped(self, k: int) -> dict[str, Any]:
        skipped = self.not_judged.get(k)
        return {"not_judged": dict(skipped), "unit": self.units.get(k, "messages")} if skipped else {}

    def summary(self) -> str:
        """One paragraph for people."""
        verdict = {True: "valid", False: "INVALID", None: "unknown"}[self.valid]
        c = self.counts
        text = (
            f"{verdict}: sent {c.sent}, acked {c.acked}, stored {c.stored}, lost {c.lost}, "
            f"duplicated {c.duplicated}, indeterminate {c.indeterminate}, failed {c.failed}"
        )
        kinds = Counter(a.kind for a in self.anomalies)
        if kinds:
            text += "; anomalies: " + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
        skipped = self.not_judged_text()
        if skipped:
            text += f"; not judged: {skipped}"
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text

    def not_judged_text(self) -> str:
        """``fault 3, client 1 (answers); fault 2 (relays)`` — what could not be judged and why."""
        parts = []
        for k, reasons in sorted(self.not_judged.items()):
            if reasons:
                listed = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
                parts.append(f"{listed} {self.units.get(k, 'messages')} (invariant {k})")
        return "; ".join(parts)


def judge(ix: RunIndex) -> CheckResult:
    """Run every registered invariant over one index."""
    statuses: dict[int, str] = {}
    anomalies: list[Anomaly] = []
    notes: list[str] = []
    not_judged: dict[int, dict[str, int]] = {}
    units: dict[int, str] = {}
    if ix.log_error:
        notes.append(f"log unreadable: {ix.log_error}")
    for number, inv in sorted(INVARIANTS.items()):
        if inv.needs_log and ix.log_error:
            statuses[number] = UNKNOWN
            continue
        j: Judgement = inv.check(ix)
        statuses[number] = FAIL if j.anomalies else j.status
        anomalies.extend(j.anomalies)
        notes.extend(n for n in j.notes if n not in notes)
        if j.not_judged:
            not_judged[number] = dict(j.not_judged)
            units[number] = j.unit
    harness_errors = [r for r in ix.records if r.f in ("client-error", "harness-error")]
    for r in harness_errors[:3]:
        notes.append(f"harness error: {r.get('error')}")
    if not ix.settings:
        notes.append("the history has no run record")
    if anomalies:
        valid: bool | None = False
    elif ix.log_error or harness_errors or not ix.settings:
        valid = None
    else:
        valid = True
    return CheckResult(valid, anomalies, _counts(ix, anomalies), statuses, notes, not_judged, units)


def _counts(ix: RunIndex, anomalies: list[Anomaly]) -> Counts:
    c = Counts(rows=len(ix.rows), sent=len(ix.messages))
    storage = {} if ix.log_error else ix.framing.storage
    acked = failed = stored = 0  # counted in locals: a message each
    for m in ix.messages.values():
        if m.oks:
            acked += 1
        elif m.fails:
            failed += 1
        st = storage.get(m.token)
        if st is not None and (st.whole or st.pieces):  # ``st.stored``, without the call
            stored += 1
    c.acked, c.failed, c.stored = acked, failed, stored
    c.indeterminate = c.sent - acked - failed
    c.lost = sum(a.kind == "lost" for a in anomalies)
    c.duplicated = sum(a.kind == "duplicate" for a in anomalies)
    return c


@collections_held()
def check(records: Iterable[Record], rows: Iterable[Row], log_error: str | None = None) -> CheckResult:
    """Check one run."""
    return judge(RunIndex(records, rows, log_error))


STATUS_RANK = {NA: 0, PASS: 1, UNKNOWN: 2, FAIL: 3}
COUNTED = re.compile(
    r"(\d+) (.*?)(, e\.g\. .*)?", re.S
)  # a note that starts with a count (and may end with an example)


def merge(results: Sequence[CheckResult]) -> CheckResult:
    """One result for several runs: counts summed, anomalies joined, each invariant at its worst."""
    counts = Counts()
    anomalies: list[Anomaly] = []
    notes: list[str] = []
    statuses: dict[int, str] = {}
    not_judged: dict[int, dict[str, int]] = defaultdict(dict)
    units: dict[int, str] = {}
    for r in results:
        for name in vars(counts):
            setattr(counts, name, getattr(counts, name) + getattr(r.counts, name))
        anomalies.extend(r.anomalies)
        notes.extend(r.notes)
        for k, v in r.invariants.items():
            if STATUS_RANK[v] >= STATUS_RANK[statuses.get(k, NA)]:
                statuses[k] = v
        for k, reasons in r.not_judged.items():
            for reason, n in reasons.items():
                not_judged[k][reason] = not_judged[k].get(reason, 0) + n
        units.update(r.units)
    verdicts = [r.valid for r in results]
    valid: bool | None = False if False in verdicts else (None if None in verdicts or not verdicts else True)
    return CheckResult(valid, anomalies, counts, statuses, merge_notes(notes), dict(not_judged), units)


def merge_notes(notes: Sequence[str]) -> list[str]:
    """Each note once; notes that differ only in the count they start with (and their example) become
    one, the counts summed, the first example kept."""
    counted: dict[str, int | None] = {}
    examples: dict[str, str] = {}
    for note in notes:
        m = COUNTED.fullmatch(note)
        if m is None:
            counted.setdefault(note, None)
            continue
        key, example = m.group(2), m.group(3) or ""
        counted[key] = (counted.get(key) or 0) + int(m.group(1))
        examples.setdefault(key, example)
    return [key if n is None else f"{n} {key}{examples[key]}" for key, n in counted.items()]
