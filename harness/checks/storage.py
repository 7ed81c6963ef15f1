"""Invariants 1-4: what the log holds, read through the framing analysis (``harness.framing``)."""

from __future__ import annotations

from collections.abc import Sequence

from harness.checks.base import MAX_EVIDENCE, Judgement, invariant, row_dict
from harness.framing import REPLACEMENT, RowKind, normalise
from harness.index import Message, RunIndex

NO_FRAMING = "the server stores whatever one read returns: its protocol has no message framing"
DROPS_INVALID = "the server silently drops the bytes that are not valid UTF-8"
CUT_DROPPED = "characters cut at the edge of a read were dropped (the server decodes each read on its own)"


def _without_invalid(ix: RunIndex, m_text: str, stored: str) -> bool:
    """Whether ``stored`` is the sent text with its undecodable bytes (shown as U+FFFD) left out."""
    return REPLACEMENT in m_text and normalise(m_text.replace(REPLACEMENT, ""), ix.normalize) == normalise(
        stored, ix.normalize
    )


def _cut_by_fault(ix: RunIndex, m: Message, stored: str) -> str | None:
    """The fault proxy's limit_data fault that let only the start of ``m`` through before it closed the
    connection, if the log holds exactly that start."""
    if m.oks or len(m.invokes) != 1 or not stored.strip():
        return None
    conn = m.invokes[0].conn
    link = ix.conns[conn].link if conn in ix.conns else None
    close = next((r for r in ix.of("fault-event") if r.get("event") == "limit-close" and r.get("link") == link), None)
    if link is None or close is None:
        return None
    name = close.get("fault")
    adds = [r for r in ix.of("fault") if r.get("window") == name and r.get("phase") == "start" and r.time <= close.time]
    fault = adds[-1].get("fault") if adds else None
    if not isinstance(fault, dict) or fault.get("direction", "both") not in ("up", "both"):
        return None  # a limit on the server's replies cuts no message
    limit = fault.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool):
        return None
    before = 0  # bytes the proxy passed upstream on this connection before the message
    for sent in ix.sends_by_conn.get(conn, []):
        if sent.token == m.token:
            break
        before += len(sent.data)
    else:
        return None
    cut, data = limit - before, sent.data
    if not sent.offset < cut < len(data):
        return None
    through = data[sent.offset : cut].decode("utf-8", errors="replace")
    kept = {normalise(through, ix.normalize)}
    if 0x80 <= data[cut] < 0xC0:  # the cut fell inside a character: a server may also leave its start out
        kept.add(normalise(through.removesuffix(REPLACEMENT), ix.normalize))
    if normalise(stored, ix.normalize) not in kept:
        return None  # the server lost or changed some of what got through: not the fault's doing alone
    return f"limit_data '{name}', {limit} bytes upstream"


def _rows(ix: RunIndex, ids: list[int]) -> list[dict[str, object]]:
    return [row_dict(ix.row_by_id[i]) for i in ids[:MAX_EVIDENCE] if i in ix.row_by_id]


def _uncertain(ix: RunIndex, m: Message) -> bool:
    """Whether a message's pieces may have been credited to another connection that sent the same text.

    So they may when no byte is missing from the log, and, for a message all ASCII, when every ASCII
    byte is there (what is missing is bytes of other messages' multibyte characters).
    """
    fr = ix.framing
    if not m.conns & fr.broken_conns:
        return False
    return not fr.missing or (not fr.missing_ascii and m.text.isascii())


@invariant(1, "no acked message lost", needs_log=True)
def no_acked_message_lost(ix: RunIndex) -> Judgement:
    """Each acknowledged message is in the log."""
    j = Judgement()
    storage = ix.framing.storage
    for m in ix.messages.values():
        if not m.oks or m.partial:  # not acked, or half of it sent
            continue
        st = storage.get(m.token)
        if st is not None and (st.whole or st.pieces):  # ``st.stored``, without the call: a message each
            continue
        if _uncertain(ix, m):
            j.skip("framing")  # every byte those connections sent is stored, in pieces
            continue
        j.add(
            "lost",
            1,
            f"message {m.token} was acknowledged but is not in the log",
            **m.about(),
        )
    return j


@invariant(2, "no duplicates", needs_log=True)
def no_duplicates(ix: RunIndex) -> Judgement:
    """No message is stored twice."""
    j = Judgement()
    fr = ix.framing
    for m in ix.messages.values():
        st = fr.storage.get(m.token)
        if st is None or st.copies <= 1:  # nearly always; the count below is never more than this one
            continue
        copies = len(st.whole) if m.conns & fr.broken_conns else st.copies
        if copies > 1:
            j.add(
                "duplicate",
                2,
                f"message {m.token} is stored {copies} times",
                **m.about(),
                rows=_rows(ix, st.rows),
            )
    return j


@invariant(3, "no phantoms, empty, partial, merged or split rows", needs_log=True)
def rows_are_messages(ix: RunIndex) -> Judgement:
    """Every row is exactly one message some client sent, and every message is in one row."""
    j = Judgement()
    fr = ix.framing
    foreign = 0
    exact = RowKind.EXACT
    for info in fr.rows:
        if info.kind is exact:  # one whole message: nothing to say about the row itself
            continue
        row = info.row
        if info.kind == RowKind.EMPTY:
            j.add("empty-row", 3, f"row {row.id} is empty", rows=[row_dict(row)])
        elif info.kind == RowKind.FOREIGN:
            foreign += 1
        elif info.kind == RowKind.EXIT_WORD:
            j.add(
                "exit-word-stored",
                3,
                f"row {row.id} stores the exit word {row.content!r} as a message",
                rows=[row_dict(row)],
            )
        elif info.kind == RowKind.PHANTOM and info.conn is None:
            j.add("phantom", 3, f"row {row.id} matches nothing any client sent", rows=[row_dict(row)])
        elif info.kind == RowKind.PHANTOM:
            j.add(
                "split",
                3,
                f"row {row.id} holds only protocol bytes that connection {info.conn} sent between messages: {NO_FRAMING}",
                rows=[row_dict(row)],
            )
        elif info.kind == RowKind.MERGED:
            shown = ", ".join(info.tokens[:4])
            j.add(
                "merged",
                3,
                f"row {row.id} holds {len(info.tokens)} messages (or parts of them) run together ({shown}): {NO_FRAMING}",
                token=info.tokens[0],
                rows=[row_dict(row)],
                history=[i for t in info.tokens[:3] if t in ix.messages for i in ix.messages[t].evidence()[:2]],
            )
    if foreign:
        j.notes.append(f"{foreign} row(s) from earlier runs against the same server were ignored")
    for m in ix.messages.values():
        st = fr.storage.get(m.token)
        if st is None or not st.stored:
            continue
        if st.whole and not st.pieces and not m.partial:
            continue  # in one row or more (copies are invariant 2's business), and in no piece
        if st.complete and not st.split and not m.partial and (len(st.pieces) <= 1 or st.whole):
            continue  # the common case, decided before any evidence is gathered
        ev = {**m.about(), "rows": _rows(ix, st.rows)}
        if m.partial:
            j.add(
                "partial-row",
                3,
                f"half of message {m.token} was sent before the client broke the connection, "
                f"yet row(s) {', '.join(map(str, st.rows[:MAX_EVIDENCE]))} store it",
                **ev,
            )
        elif st.split or (len(st.pieces) > 1 and not st.whole and _uncertain(ix, m)):
            j.add("split", 3, _split_message(ix, m.token, m.text, st.pieces), **ev)
        elif not st.complete and st.pieces and not st.whole and _uncertain(ix, m):
            j.skip("framing")  # a piece of it here, the rest credited to another connection that sent the same text
        elif not st.complete:
            stored = "".join(ix.row_by_id[i].content or "" for i in sorted(st.rows) if i in ix.row_by_id)
            why = f": {DROPS_INVALID}" if m.raw and _without_invalid(ix, m.text, stored) else ""
            cut = None if why else _cut_by_fault(ix, m, stored)
            if cut is not None:
                j.add(
                    "partial-row",
                    3,
                    f"message {m.token} was cut off mid-message by a fault ({cut}) that then closed its connection, "
                    f"and row(s) {', '.join(map(str, st.rows[:MAX_EVIDENCE]))} store exactly the part that got through",
                    **ev,
                )
                continue
            if not why and (st.lost_cut_characters or (m.conns & fr.broken_conns and fr.only_cut_characters_missing)):
                why = f": only bytes of multibyte characters are missing: {CUT_DROPPED}"
            j.add("partial-row", 3, f"the log holds only part of message {m.token}{why}", **ev)
    return j


def _split_message(ix: RunIndex, token: str, text: str, pieces: Sequence[int]) -> str:
    rows = ", ".join(map(str, pieces[:MAX_EVIDENCE]))
    if "\r" in text.rstrip("\r") and ix.settings.get("framing") != "raw":
        return (
            f"message {token} was stored as {len(pieces)} rows ({rows}), cut at a carriage return it contains: "
            "the server treats a lone \\r as the end of a message"
        )
    return f"message {token} was delivered by TCP in pieces and stored as {len(pieces)} rows ({rows}): {NO_FRAMING}"


@invariant(4, "stored content equals sent content", needs_log=True)
def content_intact(ix: RunIndex) -> Judgement:
    """A stored message is what was sent (after the target's documented normalisation)."""
    j = Judgement()
    exact = RowKind.EXACT
    for info in ix.framing.rows:
        if info.kind is exact and not info.mangled:  # one whole message, as sent
            continue
        row = info.row
        m = ix.messages.get(info.tokens[0]) if info.tokens else None
        if info.kind == RowKind.CORRUPTED and m is not None:
            sent, stored = normalise(m.text, ix.normalize), normalise(row.content or "", ix.normalize)
            if m.raw and _without_invalid(ix, m.text, row.content or ""):
                kind, why = "partial-row", f"row {row.id} holds {m.token} without some of its bytes: {DROPS_INVALID}"
            elif sent.startswith(stored):
                kind, why = (
                    "partial-row",
                    f"row {row.id} holds only the first {len(stored)} of {len(sent)} characters of {m.token}",
                )
            else:
                kind, why = "corrupted", f"row {row.id} differs from what was sent as {m.token}"
            j.add(
                kind,
                3 if kind == "partial-row" else 4,
                why,
                **m.about(),
                rows=[row_dict(row), {"sent": sent[:300]}],
            )
        elif info.kind == RowKind.EXTRA and m is not None:
            j.add(
                "corrupted",
                4,
                f"row {row.id} holds message {m.token} plus characters it was not sent with (framing bytes?)",
                **m.about(),
                rows=[row_dict(row), {"sent": m.text[:300]}],
            )
        elif info.mangled and REPLACEMENT in (row.content or ""):
            if m is not None and _cut_by_fault(ix, m, row.content or "") is not None:
                continue  # the fault cut that character, and invariant 3 names the cut
            j.add(
                "corrupted",
                4,
                f"row {row.id} holds a character cut at the edge of a read, stored as U+FFFD "
                "(the server decodes each read on its own)",
                token=info.tokens[0] if info.tokens else None,
                rows=[row_dict(row)],
            )
    return j
