"""Invariant 6: an ack comes after its row is committed, names the right row, and answers something."""

from __future__ import annotations

from collections import defaultdict

from harness.checks.base import MAX_EVIDENCE, Judgement, invariant, row_dict
from harness.history import OK, Record
from harness.index import Message, RunIndex

UNNAMED = ("empty", "fragment")


@invariant(6, "ack consistency")
def acks_are_consistent(ix: RunIndex) -> Judgement:
    """Acks after commits, with the stored row's id and timestamp; no ack for nothing; no refusal that stored."""
    j = Judgement()
    if not ix.log_error:
        _audits(ix, j)
        _acks_match_rows(ix, j)
        _refused_but_stored(ix, j)
    _stray_acks(ix, j)
    for r in ix.of("audit-error"):
        j.notes.append(f"an audit could not read the log: {r.get('error')}")
    return j


def _audits(ix: RunIndex, j: Judgement) -> None:
    for rec in ix.of("audit"):
        if rec.get("visible") is not False:
            continue
        token = rec.get("token")
        m = ix.messages.get(token)
        st = ix.framing.of(token)
        seen = rec.get("max_id")
        if st.rows and seen is not None and min(st.rows) <= seen:
            continue  # stored in pieces (its token cut), and already committed when audited
        if m is not None and m.conns & ix.framing.broken_conns:
            j.skip("framing")  # the ack may belong to a piece of an earlier message
            continue
        j.add(
            "ack-before-commit",
            6,
            f"{token} was acknowledged at {rec.get('acked_at'):.3f} s but its row was not in the log at "
            f"{rec.get('checked_at'):.3f} s",
            token=token,
            client=rec.client,
            history=([*m.evidence()[:3], rec.index] if m else [rec.index]),
            rows=[row_dict(ix.row_by_id[i]) for i in st.rows[:1] if i in ix.row_by_id],
        )


def _acks_match_rows(ix: RunIndex, j: Judgement) -> None:
    fr, chat = ix.framing, ix.protocol == "chat"
    for m in ix.messages.values():
        st = fr.storage.get(m.token)
        if st is None or len(st.whole) != 1 or (fr.broken_conns and m.conns & fr.broken_conns):
            continue
        row = ix.row_by_id[st.whole[0]]
        for ok in m.oks:
            acked_row = ok.value.get("row")
            if acked_row is not None and acked_row != row.id:
                j.add(
                    "ack-mismatch",
                    6,
                    f"the ack of {m.token} names row {acked_row}, but it is stored as row {row.id}",
                    token=m.token,
                    client=m.client,
                    history=[ok.index, *m.evidence()[:3]],
                    rows=[row_dict(row)],
                )
            ts = ok.value.get("ts")
            if chat and ts is not None and row.ts is not None and ts != row.ts:
                j.add(
                    "ack-mismatch",
                    6,
                    f"the ack of {m.token} says {ts}, row {row.id} says {row.ts}",
                    token=m.token,
                    client=m.client,
                    history=[ok.index],
                    rows=[row_dict(row)],
                )


def _refused_but_stored(ix: RunIndex, j: Judgement) -> None:
    for m in ix.messages.values():
        if not m.failed:  # nearly every message: it was not refused
            continue
        st = ix.framing.of(m.token)
        if len(m.invokes) == 1 and st.stored:  # resent: the row may come from another send
            codes = ", ".join(str(f.get("code")) for f in m.fails)
            j.add(
                "error-but-stored",
                6,
                f"the server refused message {m.token} ({codes}) but row(s) {', '.join(map(str, st.rows[:3]))} store it",
                **m.about(),
                rows=[row_dict(ix.row_by_id[i]) for i in st.rows[:1] if i in ix.row_by_id],
            )


def _stray_acks(ix: RunIndex, j: Judgement) -> None:
    strays: dict[int, list[Record]] = defaultdict(list)
    for rec in ix.of("stray-ack"):
        strays[rec.conn].append(rec)
    if not strays:
        return
    acks: dict[int, int] = defaultdict(int)
    for rec in ix.of("send"):
        if rec.type == OK:
            acks[rec.conn] += 1
    # Rows no connection could be named for (empty reads, bytes of a cut character) were reads too.
    unnamed = 0 if ix.log_error else sum(1 for r in ix.framing.rows if r.conn is None and r.kind.value in UNNAMED)
    halves = _stored_halves(ix)
    for conn, recs in strays.items():
        pieces = ix.framing.pieces(conn) + unnamed if not ix.log_error else 0
        if not ix.log_error and conn in ix.framing.broken_conns and acks[conn] + len(recs) <= pieces:
            j.skip("framing", len(recs))  # one ack per stored piece: the server split messages, it did not invent acks
            continue
        for rec in recs[:MAX_EVIDENCE]:
            half = next((m for m in halves.get(conn, []) if m.invokes[0].index < rec.index), None)
            if half is not None:  # the answer to a half message the server stored: that defect, not a stray
                halves[conn].remove(half)
                why, token = f"the ack of half of message {half.token}, which the log stores", half.token
            else:
                after = f" (after the ack of {rec.get('after')})" if rec.get("after") else ""
                why, token = f"an ack it did not wait for{after}", rec.get("token") or rec.get("after")
            j.add(
                "stray-ack",
                6,
                f"connection {conn} got {why}: {rec.get('line')}",
                token=token,
                client=rec.client,
                history=[rec.index],
            )
        if len(recs) > MAX_EVIDENCE:
            j.notes.append(f"connection {conn}: {len(recs) - MAX_EVIDENCE} more stray acks")


def _stored_halves(ix: RunIndex) -> dict[int, list[Message]]:
    """Per connection, the half messages (sent before the client broke it) that the log stores."""
    halves: dict[int, list[Message]] = defaultdict(list)
    if ix.log_error:
        return halves
    for m in ix.messages.values():
        if m.partial and m.invokes and ix.framing.of(m.token).stored:
            for conn in m.conns:
                halves[conn].append(m)
    return halves
