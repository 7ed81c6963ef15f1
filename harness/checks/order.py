"""Invariant 5: one connection's messages are stored in the order they were sent."""

from __future__ import annotations

from collections import defaultdict

from harness.checks.base import Judgement, invariant, row_dict
from harness.history import INVOKE, Record
from harness.index import RunIndex


@invariant(5, "per-connection order", needs_log=True)
def per_connection_order(ix: RunIndex) -> Judgement:
    """Messages sent on one connection (and only there) are stored in send order."""
    j = Judgement()
    by_conn: dict[int, list[Record]] = defaultdict(list)
    messages, fr = ix.messages, ix.framing
    for rec in ix.of("send"):
        if rec.type != INVOKE:
            continue
        m = messages.get(rec.value.get("token"))  # type: ignore[arg-type]  # None finds nothing; no call per record
        if m is not None and not m.partial and (len(m.invokes) == 1 or m.one_conn):  # nearly always sent once
            by_conn[rec.conn].append(rec)  # a resent message may have been stored from either send
    for conn, invokes in by_conn.items():
        if conn in fr.broken_conns:
            j.skip("framing", len(invokes))  # pieces, not messages: order is the framing defect's business
            continue
        last_id, last_rec = -1, None
        for rec in invokes:
            st = fr.storage.get(rec.value.get("token"))  # type: ignore[arg-type]
            if st is None or len(st.whole) != 1:
                continue
            whole = st.whole
            rid = whole[0]
            if rid < last_id and last_rec is not None:
                j.add(
                    "reordered",
                    5,
                    f"on connection {conn}, {rec.get('token')} (row {rid}) was sent after "
                    f"{last_rec.get('token')} (row {last_id}) but stored before it",
                    token=rec.get("token"),
                    client=rec.client,
                    history=[last_rec.index, rec.index],
                    rows=[row_dict(ix.row_by_id[rid]), row_dict(ix.row_by_id[last_id])],
                )
            if rid > last_id:
                last_id, last_rec = rid, rec
    return j
