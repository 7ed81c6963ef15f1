"""Invariant 11: on a connection no fault or nemesis touched, every message gets exactly one answer in time.

A send with no ack and no error within the ack timeout is an anomaly (``unanswered``), or
``unexpected-reply`` when the server did say something that is neither (unless the run's other
answers came so late that this one may simply have come after the timeout, or the log did not hold
its row yet when the wait ended: then the answer may only be late). It is not judged when a
fault or a nemesis touched the connection meanwhile, when the client broke the connection itself,
when the server dropped the connection saying why (idle, slow, shutdown), or when the message was
stored run together with another or in pieces (a framing defect, reported as such). A bad line
may also be answered by closing the connection.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate

from harness.checks.base import MAX_EVIDENCE, Judgement, invariant
from harness.ends import End
from harness.history import FAIL, INVOKE, OK, Record, latencies
from harness.index import Connection, Message, RunIndex

DUE = 1.0  # seconds past the ack timeout still counted as "while the client waited"
SYN_RETRY = 0.9  # a loopback connect this slow had its SYN dropped (Linux resends it after 1 s)
BACKLOG = "the server's listen queue was full"
SLOW = 0.5  # of the ack timeout: a run whose answers took this long may have answered after it
LATE = "so this one may have come after it: the server is too slow under this load"


@invariant(11, "every message answered")
def every_message_answered(ix: RunIndex) -> Judgement:
    """Every send on an untouched connection is acknowledged or refused within the ack timeout."""
    j = Judgement()
    slowest: list[float] = []  # the run's slowest answer, once an unanswered message needs it
    reads: list[tuple[list[int], list[float]]] = []  # the auditor's reads of the log's largest id, likewise
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
        _unanswered(ix, j, m, rec, outcome, until, c, slowest, reads)
    _stray_lines(ix, j)
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
    slowest: list[float],
    reads: list[tuple[list[int], list[float]]],
) -> None:
    said = [u for u in ix.unexpected.get(rec.conn, []) if rec.time <= u.time <= until + 0.001]
    quote = [said[0].index] if said else []
    how = str(outcome.get("error")) if outcome is not None else "the run ended first"
    ev = {"token": m.token, "client": m.client, "history": [rec.index, *quote] + ([outcome.index] if outcome else [])}
    late = _late(ix, slowest) if said else ""
    if said and late:  # text the target does not describe (a broadcast, say) and an answer that came too late
        j.add(
            "unanswered",
            11,
            f"message {m.token} got no ack and no error on connection {rec.conn} ({how}); meanwhile the server "
            f"sent only text the target file describes as neither, e.g. {said[0].get('line')!r}{late}",
            **ev,
        )
    elif said:
        j.add(
            "unexpected-reply",
            11,
            f"message {m.token} got the reply {said[0].get('line')!r}, which is neither an ack nor an error "
            f"the target file describes ({how})",
            **ev,
        )
    else:
        slow = c.connect_seconds if c is not None and c.link is None else None
        queue = (
            f"; opening the connection took {slow:.1f} s (its SYN was dropped and resent: {BACKLOG}), so the "
            "server probably never accepted it in time"
            if slow is not None and slow >= SYN_RETRY
            else _late(ix, slowest) or _stored_late(ix, m, rec, reads)
        )
        j.add(
            "unanswered",
            11,
            f"message {m.token} got no answer (no ack, no error) on connection {rec.conn}, which no fault or "
            f"nemesis touched: {how}{queue}",
            **ev,
        )


def _late(ix: RunIndex, slowest: list[float]) -> str:
    """Why a missing answer may only be late: other answers of the run came near the ack timeout ("" if none did)."""
    if not slowest:
        slowest.append(max((w for _, w, _ in latencies(ix.records, refusals=True)), default=0.0))
    if slowest[0] < SLOW * ix.ack_timeout:
        return ""
    return f"; other answers in this run took up to {slowest[0]:.1f} s of the {ix.ack_timeout:g} s ack timeout, {LATE}"


def _stored_late(ix: RunIndex, m: Message, rec: Record, reads: list[tuple[list[int], list[float]]]) -> str:
    """Why a missing answer may only be late: its row was not in the log yet when the wait ended ("" if unknown).

    The auditor's reads of the log's largest id say when a row was not committed yet (an id larger
    than every one in the log is not in it); one read at or after the end of the wait that still did
    not find this message's row means the server stored it only after the client had stopped waiting.
    """
    if ix.log_error:
        return ""
    st = ix.framing.of(m.token)
    if len(st.whole) != 1 or st.pieces:
        return ""
    row = st.whole[0]
    due = rec.time + float(rec.get("trickle") or 0.0) * len(m.text.encode("utf-8")) + ix.ack_timeout
    if not reads:  # once per check: the reads by largest id, and the latest time each id or a smaller one was read
        seen = sorted(
            (int(a.value["max_id"]), float(a.value["max_id_at"]))
            for a in ix.of("audit")
            # 0 is also what a log whose ids are not integers reads: such a read says nothing
            if isinstance(a.get("max_id"), int) and a.value["max_id"] > 0 and isinstance(a.get("max_id_at"), float)
        )
        reads.append(([i for i, _ in seen], list(accumulate((t for _, t in seen), max))))
    ids, latest = reads[0]
    n = bisect_left(ids, row)  # the reads whose largest id is below the row's
    if not n or latest[n - 1] < due:
        return ""
    return (
        f"; the server stored it only after the client had stopped waiting (row {row} was not in the log yet "
        f"{latest[n - 1] - rec.time:.2f} s after the message was sent, past the {ix.ack_timeout:g} s ack timeout), {LATE}"
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
