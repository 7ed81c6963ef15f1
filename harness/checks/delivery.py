"""Invariant 7 (servers that relay): every member connected throughout receives each message once, in log order."""

from __future__ import annotations

import operator
import zlib
from collections import defaultdict
from itertools import repeat
from operator import itemgetter

from harness.checks.base import MAX_EVIDENCE, NA, Judgement, invariant, row_dict
from harness.ends import End
from harness.index import Connection, Message, RunIndex


@invariant(7, "relay delivery", needs_log=True)
def relay_delivery(ix: RunIndex) -> Judgement:
    """What was relayed is right; a member that left politely and untouched missed nothing committed meanwhile."""
    j = Judgement(unit="connections")
    if ix.relay == "none":
        j.status = NA
        return j
    crc = {r.id: zlib.crc32((r.content or "").encode("utf-8")) for r in ix.rows}
    baseline = int(ix.settings.get("baseline_id", 0))
    # The connection each message was sent on, when only one: it alone must not get the message back.
    sender = {t: next(iter(cs)) for t, m in ix.messages.items() if len(cs := m.conns) == 1}
    committed = _committed(ix)
    everything = _Committed(committed)
    others = ix.relay == "others"
    judged = 0
    for c in ix.conns.values():
        if c.record is None:
            continue
        seen = _clean_receipts(c, crc, baseline, sender, others)
        if seen is None:
            seen = _received(ix, c, crc, baseline, sender, j)
        why = _not_judged(c)
        if why:
            j.skip(why)
            continue
        judged += 1
        if not everything.none_missed(c, seen, others):
            _missed(ix, c, seen, committed, j)
    if not judged and j.status != "fail":
        j.status = NA  # no connection ended politely and untouched: nothing to judge
    return j


def _not_judged(c: Connection) -> str | None:
    """Why a connection's deliveries cannot be judged (None when they can)."""
    cause = c.cause
    if cause is None or c.hello is None or c.end_at is None:
        return "incomplete"
    if cause in (End.FAULT, End.NEMESIS):
        return str(cause.value)
    touch = c.touched(c.hello, c.end_at)
    if touch is not None:
        return touch.source
    if c.errors:
        return "dropped by the server"  # idle, slow, shutdown: the server said why and let go
    if not cause.polite:
        return "client" if cause.client_broke else "broken"
    return None


_ABSENT = object()  # equal to no checksum


def _clean_receipts(
    c: Connection, crc: dict[int, int], baseline: int, sender: dict[str, int], others: bool
) -> set[int] | None:
    """The rows ``c`` received when ``_received`` would find nothing wrong with them, else None.

    The same conditions, checked a whole connection at a time in C (a burst of N clients has N^2
    relays): rows newer than the baseline, strictly increasing (no duplicate, none out of order),
    each with the stored text's checksum, and none of them a message this connection sent.
    """
    rows = list(map(int, map(itemgetter(0), c.relays)))
    if rows and min(rows) <= baseline:
        return None
    seen = set(rows)
    if len(seen) != len(rows) or rows != sorted(rows):
        return None
    if not all(map(operator.eq, map(crc.get, rows, repeat(_ABSENT)), map(itemgetter(1), c.relays))):
        return None
    if others and c.conn in map(sender.get, filter(None, map(itemgetter(2), c.relays))):
        return None
    return seen


def _received(
    ix: RunIndex, c: Connection, crc: dict[int, int], baseline: int, sender: dict[str, int], j: Judgement
) -> set[int]:
    """Check what ``c`` received (twice, out of order, not in the log, other text, its own); return the row ids."""
    seen: set[int] = set()
    last = -1
    ev = {"client": c.client, "history": [c.record.index] if c.record else []}
    others = ix.relay == "others"
    for row_id, checksum, token in ((int(x[0]), x[1], x[2]) for x in c.relays):
        if row_id <= baseline:
            continue
        if row_id in seen:
            j.add("duplicate-relay", 7, f"connection {c.conn} received row {row_id} twice", **ev)
        if row_id < last:
            j.add("relay-order", 7, f"connection {c.conn} received row {row_id} after row {last}", **ev)
        seen.add(row_id)
        last = max(last, row_id)
        if row_id not in crc:
            j.add("phantom-relay", 7, f"connection {c.conn} received row {row_id}, which is not in the log", **ev)
        elif checksum != crc[row_id]:
            j.add(
                "relay-mismatch",
                7,
                f"connection {c.conn} received row {row_id} with other text than stored",
                rows=[row_dict(ix.row_by_id[row_id])],
                **ev,
            )
        # Only the connection that stored a message must not get it back; a message resent on
        # several connections may legitimately reach any of the others.
        if others and token and sender.get(token) == c.conn:
            j.add("relay-to-sender", 7, f"connection {c.conn} received its own message {token}", token=token, **ev)
    return seen


def _committed(ix: RunIndex) -> list[tuple[float, float, int, int, Message]]:
    """Acked messages stored once, whole: (first send, first ack, row, client, message)."""
    out = []
    for m in ix.messages.values():
        if not m.oks or not m.invokes:
            continue
        whole = ix.framing.of(m.token).whole
        if len(whole) == 1:
            out.append((m.invokes[0].time, m.oks[0].time, whole[0], m.client, m))
    return out


class _Committed:
    """The committed messages at once, for connections present from before the first send to after the last ack."""

    def __init__(self, committed: list[tuple[float, float, int, int, Message]]) -> None:
        """Index ``committed`` (see ``_committed``)."""
        self.first_sent = min((x[0] for x in committed), default=0.0)
        self.last_acked = max((x[1] for x in committed), default=0.0)
        self.rows = {x[2] for x in committed}
        self.by_client: dict[int, set[int]] = defaultdict(set)
        for _, _, row, client, _ in committed:
            self.by_client[client].add(row)

    def none_missed(self, c: Connection, seen: set[int], others: bool) -> bool:
        """True when ``_missed`` would find nothing: ``c`` spans every commit and received every row but its own."""
        assert c.hello is not None and c.end_at is not None
        if not (self.first_sent > c.hello and self.last_acked < c.end_at):
            return False
        missing = self.rows - seen
        if others and missing:
            missing -= self.by_client.get(c.client, set())
        return not missing


def _missed(
    ix: RunIndex, c: Connection, seen: set[int], committed: list[tuple[float, float, int, int, Message]], j: Judgement
) -> None:
    assert c.hello is not None and c.end_at is not None
    hello, end_at, own = c.hello, c.end_at, c.client if ix.relay == "others" else None
    missed = [
        (m, row)
        for sent_at, acked_at, row, client, m in committed
        if sent_at > hello and acked_at < end_at and row not in seen and client != own
    ]
    if missed:
        m, row = missed[0]
        j.add(
            "missed-relay",
            7,
            f"connection {c.conn} (client {c.client}) was connected from {c.hello:.3f} s to {c.end_at:.3f} s, "
            f"untouched by faults, and left politely, but did not receive {len(missed)} message(s) committed "
            f"meanwhile, e.g. {m.token} (row {row})",
            token=m.token,
            client=c.client,
            history=[c.record.index if c.record else -1, *m.evidence()[:2]],
            rows=[row_dict(ix.row_by_id[r]) for _, r in missed[:MAX_EVIDENCE]],
        )
