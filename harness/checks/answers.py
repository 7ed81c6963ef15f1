"""Invariant 11: on a connection no fault or nemesis touched, every message gets exactly one answer in time.

A send with no ack and no error within the ack timeout is an anomaly (``unanswered``), or
``unexpected-reply`` when the server did say something that is neither (unless the run's other
answers came so late that this one may simply have come after the timeout, or the log did not hold
its row yet when the wait ended: then the answer may only be late). It is not judged when a
fault or a nemesis touched the connection meanwhile, when the client broke the connection itself,
when the server dropped the connection saying why (idle, slow, shutdown), or when the message was
stored run together with another or in pieces (a framing defect, reported as such). A bad line
may also be answered by closing the connection. Nor is it when the scenario shortened the clients'
wait below the time the server is held to (``held_to``: black-hole's 1 s makes clients give up and
resend) and the server stored the message within that time, but only after the client stopped waiting.
"""

from __future__ import annotations

from bisect import bisect_left
from functools import cached_property
from itertools import accumulate
from typing import NamedTuple

from harness.checks.base import MAX_EVIDENCE, Judgement, invariant
from harness.ends import End
from harness.history import FAIL, INVOKE, OK, Record, latencies
from harness.index import Connection, Message, RunIndex

DUE = 1.0  # seconds past the ack timeout still counted as "while the client waited"
SYN_RETRY = 0.9  # a loopback connect this slow had its SYN dropped (Linux resends it after 1 s)
BACKLOG = "the server's listen queue was full"
SLOW = 0.5  # of the ack timeout: a run whose answers took this long may have answered after it
LATE = "so this one may have come after it: the server is too slow under this load"
HELD_LATE = "stored, answered late (the clients' wait was shortened)"


@invariant(11, "every message answered")
def every_message_answered(ix: RunIndex) -> Judgement:
    """Every send on an untouched connection is acknowledged or refused within the ack timeout."""
    j = Judgement()
    ev = LateEvidence(ix)  # what the run says of late answers, built once an unanswered message needs it
    for rec in ix.of("send"):
        if rec.type != INVOKE:
            continue
        m = ix.messages.get(rec.value.get("token"))  # type: ignore[arg-type]  # None finds nothing; no call per record
        if m is None or m.partial:
            continue
        oks = m.oks
        if len(oks) == 1 and oks[0].conn == rec.conn and not m.fails and not m.infos:
            continue  # nearly always: acked on its connection (``settled``'s first case, without the call)
        outcome = ix.settled(m.token, rec.conn)
        if outcome is not None and outcome.type in (OK, FAIL):
            continue
        c = ix.conns.get(rec.conn)
        until = outcome.time if outcome is not None else (c.closed_at if c and c.closed_at else ix.end_of_run())
        # The answer was due within the ack timeout (after the last byte, for a trickled message): what
        # touched the connection only later cannot explain its absence.
        trickled = float(rec.get("trickle") or 0.0) * len(m.text.encode("utf-8"))
        until = min(until, rec.time + trickled + ix.ack_timeout + DUE)
        why = _not_judged(ix, m, rec, outcome, c, until)
        if why:
            j.skip(why)
            continue
        if held_late(ev, m, rec):
            j.skip(HELD_LATE)
            continue
        _unanswered(ix, j, m, rec, outcome, until, c, ev)
    _stray_lines(ix, j)
    late = j.not_judged.get(HELD_LATE)
    if late:
        j.notes.append(
            f"{late} message(s) got no answer within the clients' {ix.ack_timeout:g} s wait (this scenario's, "
            f"to make them give up and resend) and were stored only after it: late, not missing, for a server "
            f"held to {ix.held_to:g} s"
        )
    abandoned = ix.of("abandon")
    if abandoned:
        j.notes.append(
            f"{len(abandoned)} client(s) gave up their plan after {abandoned[0].get('unanswered')} unanswered "
            "messages in a row; later waits were shortened"
        )
    return j


def _not_judged(
    ix: RunIndex, m: Message, rec: Record, outcome: Record | None, c: Connection | None, until: float
) -> str | None:
    """Why this send's missing answer is not held against the server (None when it is)."""
    if c is None or c.end is None:
        return "harness"  # the run ended with the connection open
    end = End.parse(outcome.get("end")) if outcome is not None and outcome.get("end") else c.end
    if end.client_broke or end.harness:
        return "client" if end.client_broke else "harness"
    waited = outcome.get("waited") if outcome is not None else None
    if waited is not None and waited < ix.ack_timeout:
        return "shortened wait"  # another client had already given up on this server: counted there
    if ix.log_error and ix.settings.get("framing") == "raw":
        return "framing unknown (log unreadable)"
    touch = c.touched(rec.time, until)  # also a fault or nemesis that ended it while the answer was due
    if touch is not None:
        return touch.source
    if c.errors:
        return "dropped by the server"
    if not ix.log_error:
        st = ix.framing.of(m.token)
        if st.merged or st.pieces:
            return "framing"  # stored run together or in pieces: one ack per read, reported as framing
    if m.raw and end in (End.SERVER_CLOSE, End.SERVER_ERROR_CLOSE, End.RESET):
        return "bad line answered by a close"
    return None


def _unanswered(
    ix: RunIndex,
    j: Judgement,
    m: Message,
    rec: Record,
    outcome: Record | None,
    until: float,
    c: Connection | None,
    ev: LateEvidence,
) -> None:
    said = [u for u in ix.unexpected.get(rec.conn, []) if rec.time <= u.time <= until + 0.001]
    quote = [said[0].index] if said else []
    how = str(outcome.get("error")) if outcome is not None else "the run ended first"
    evidence = {
        "token": m.token,
        "client": m.client,
        "history": [rec.index, *quote] + ([outcome.index] if outcome else []),
    }
    late = _late(ev) if said else ""
    if said and late:  # text the target does not describe (a broadcast, say) and an answer that came too late
        j.add(
            "unanswered",
            11,
            f"message {m.token} got no ack and no error on connection {rec.conn} ({how}); meanwhile the server "
            f"sent only text the target file describes as neither, e.g. {said[0].get('line')!r}{late}",
            **evidence,
        )
    elif said:
        j.add(
            "unexpected-reply",
            11,
            f"message {m.token} got the reply {said[0].get('line')!r}, which is neither an ack nor an error "
            f"the target file describes ({how})",
            **evidence,
        )
    else:
        slow = c.connect_seconds if c is not None and c.link is None else None
        queue = (
            f"; opening the connection took {slow:.1f} s (its SYN was dropped and resent: {BACKLOG}), so the "
            "server probably never accepted it in time"
            if slow is not None and slow >= SYN_RETRY
            else _late(ev) or _stored_late(ev, m, rec)
        )
        j.add(
            "unanswered",
            11,
            f"message {m.token} got no answer (no ack, no error) on connection {rec.conn}, which no fault or "
            f"nemesis touched: {how}{queue}",
            **evidence,
        )


class Reads(NamedTuple):
    """The auditor's reads of the log's largest id, by that id (integer ids only)."""

    ids: list[int]  # sorted
    latest: list[float]  # latest[k]: the latest read whose largest id was ids[k] or smaller
    earliest: list[float]  # earliest[k]: the earliest read whose largest id was ids[k] or larger


class LateEvidence:
    """What one run says of late answers, each part built on first use (once per check)."""

    def __init__(self, ix: RunIndex) -> None:
        """Gather from ``ix`` when asked."""
        self.ix = ix

    @cached_property
    def slowest(self) -> float:
        """The run's slowest answer, in seconds from its send."""
        return max((w for _, w, _ in latencies(self.ix.records, refusals=True)), default=0.0)

    @cached_property
    def reads(self) -> Reads:
        """The auditor's reads of the log's largest id."""
        seen = sorted(
            (int(a.value["max_id"]), float(a.value["max_id_at"]))
            for a in (*self.ix.of("audit"), *self.ix.of("log-read"))
            # 0 is also what a log whose ids are not integers reads: such a read says nothing
            if isinstance(a.get("max_id"), int) and a.value["max_id"] > 0 and isinstance(a.get("max_id_at"), float)
        )
        times = [t for _, t in seen]
        return Reads([i for i, _ in seen], list(accumulate(times, max)), list(accumulate(reversed(times), min))[::-1])


def held_late(ev: LateEvidence, m: Message, rec: Record) -> bool:
    """Whether a missing answer may only have come after a wait shorter than the server is held to.

    Only when the scenario shortened the clients' wait (``held_to`` longer than the ack timeout),
    and the server stored the message whole within ``held_to`` of its sending but only after the
    wait had ended (a read of the log's largest id after it did not count its row): it was still
    busy storing it, so its answer could only come later. A message stored in time but not
    answered stays unanswered.
    """
    ix = ev.ix
    row = _whole_row(ix, m)
    if ix.held_to <= ix.ack_timeout or row is None or not _stored_late(ev, m, rec):
        return False
    r = ev.reads
    k = bisect_left(r.ids, row)  # the first read that found the row, else the end of the run
    return (r.earliest[k] if k < len(r.ids) else ix.end_of_run()) <= rec.time + ix.held_to


def _late(ev: LateEvidence) -> str:
    """Why a missing answer may only be late: other answers of the run came near the ack timeout ("" if none did)."""
    ix = ev.ix
    if ev.slowest < SLOW * ix.ack_timeout:
        return ""
    return f"; other answers in this run took up to {ev.slowest:.1f} s of the {ix.ack_timeout:g} s ack timeout, {LATE}"


def _whole_row(ix: RunIndex, m: Message) -> int | None:
    """The one row that holds ``m`` whole (None when the log is unreadable or it is stored otherwise)."""
    if ix.log_error:
        return None
    st = ix.framing.of(m.token)
    return st.whole[0] if len(st.whole) == 1 and not st.pieces else None


def _due(ix: RunIndex, m: Message, rec: Record) -> float:
    """When the answer to ``rec``'s message was due: the ack timeout after its last byte."""
    return rec.time + float(rec.get("trickle") or 0.0) * len(m.text.encode("utf-8")) + ix.ack_timeout


def _stored_late(ev: LateEvidence, m: Message, rec: Record) -> str:
    """Why a missing answer may only be late: its row was not in the log yet when the wait ended ("" if unknown).

    The auditor's reads of the log's largest id say when a row was not committed yet (an id larger
    than every one in the log is not in it); one read at or after the end of the wait that still did
    not find this message's row means the server stored it only after the client had stopped waiting.
    """
    ix = ev.ix
    row = _whole_row(ix, m)
    if row is None:
        return ""
    r = ev.reads
    n = bisect_left(r.ids, row)  # the reads whose largest id is below the row's
    if not n or r.latest[n - 1] < _due(ix, m, rec):
        return ""
    return (
        f"; the server stored it only after the client had stopped waiting (row {row} was not in the log yet "
        f"{r.latest[n - 1] - rec.time:.2f} s after the message was sent, past the {ix.ack_timeout:g} s ack timeout), {LATE}"
    )


def _stray_lines(ix: RunIndex, j: Judgement) -> None:
    """Reference protocol: a line the client cannot parse is a protocol violation even when nothing waited."""
    if ix.protocol != "chat":
        n = sum(len(v) for v in ix.unexpected.values())
        if n:
            first = next(iter(ix.unexpected.values()))[0]
            j.notes.append(
                f"{n} piece(s) of server text matched neither the ack nor the error pattern, e.g. {first.get('line')!r}"
            )
        return
    reported = 0
    quoted = {i for a in j.anomalies for i in a.history}
    for conn, recs in ix.unexpected.items():
        loose = [u for u in recs if u.index not in quoted]
        if loose and reported < MAX_EVIDENCE:
            reported += 1
            j.add(
                "unexpected-reply",
                11,
                f"connection {conn} got {len(loose)} line(s) outside the protocol, e.g. {loose[0].get('line')!r}",
                client=loose[0].client,
                history=[u.index for u in loose[:MAX_EVIDENCE]],
            )
