"""The framing analysis alone (no sockets): however TCP cut and interleaved what clients sent, every
stored piece is attributed, nothing is called lost or phantom, and a piece the server dropped shows."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.framing import RowKind, analyse, sent
from harness.log import Row

RUN = "abc123"
TOKEN = re.compile(rf"\[({RUN}\.\d+\.\d+)\]")
FOREIGN = re.compile(r"^\s*\[[0-9a-f]{6}\.\d+\.\d+\]")
BODIES = ["hola", "x" * 40, "ñandú 😀 " * 4, "  spaced  ", "é" * 25, "'; DROP TABLE mensajes; --"]


@st.composite
def cut_streams(draw: st.DrawFn, max_piece: int = 12) -> tuple[list, list[tuple[int, bytes]]]:  # type: ignore[type-arg]
    """Messages on several connections, each connection's bytes cut into pieces, the pieces interleaved."""
    sends, pieces = [], {}
    for c in range(draw(st.integers(1, 4))):
        data = b""
        for q in range(draw(st.integers(1, 4))):
            token = f"{RUN}.{c}.{q + 1}"
            text = f"[{token}] {draw(st.sampled_from(BODIES))}"
            sends.append(sent(token, c, text, text.encode()))
            data += text.encode()
        cuts: list[bytes] = []
        at = 0
        while at < len(data):
            n = draw(st.integers(1, max_piece))
            while at + n < len(data) and not data[at : at + n].strip():
                n += 1  # a whitespace-only piece would be stored as an empty row: a different defect
            if cuts and not data[at : at + n].strip():
                cuts[-1] += data[at : at + n]
            else:
                cuts.append(data[at : at + n])
            at += n
        pieces[c] = cuts
    order = []
    nxt = dict.fromkeys(pieces, 0)
    while any(nxt[c] < len(p) for c, p in pieces.items()):
        c = draw(st.sampled_from(sorted(c for c, p in pieces.items() if nxt[c] < len(p))))
        order.append((c, pieces[c][nxt[c]]))
        nxt[c] += 1
    return sends, order


def rows_of(order: list[tuple[int, bytes]], strip: bool) -> list[Row]:
    """What a server without framing stores: each read decoded on its own (and maybe stripped)."""
    out = []
    for i, (_, piece) in enumerate(order, 1):
        text = piece.decode("utf-8", errors="replace")
        out.append(Row(i, text.strip() if strip else text))
    return out


@settings(max_examples=300)
@given(cut_streams(), st.booleans())
def test_every_piece_is_attributed_and_nothing_is_lost(streams, strip: bool) -> None:  # type: ignore[no-untyped-def]
    sends, order = streams
    fr = analyse(sends, rows_of(order, strip), TOKEN, FOREIGN, "strip" if strip else "exact")
    assert not [r.row for r in fr.rows if r.kind in (RowKind.PHANTOM, RowKind.CORRUPTED)]
    assert fr.missing == 0
    whole_rows = {p for _, p in order}
    for s in sends:
        st_ = fr.of(s.token)
        assert st_.stored, s.token
        if s.data not in whole_rows:  # TCP cut it: it is reported in pieces, never as one clean row
            assert st_.pieces or st_.merged, s.token
    if all(b < 0x80 for s in sends for b in s.data):  # without multibyte characters every cut is exact
        assert all(fr.of(s.token).complete for s in sends)


@settings(max_examples=100)
@given(cut_streams(max_piece=6), st.booleans(), st.data())
def test_a_piece_the_server_dropped_is_missing(streams, strip: bool, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    sends, order = streams
    visible = [i for i, (_, p) in enumerate(order) if re.search(rb"[!-~]", p)]
    victim = data.draw(st.sampled_from(visible))
    kept = [p for i, p in enumerate(order) if i != victim]
    fr = analyse(sends, rows_of(kept, strip), TOKEN, FOREIGN, "strip" if strip else "exact")
    assert fr.missing > 0 or not all(fr.of(s.token).complete for s in sends)


def test_whole_rows_need_no_search_and_merged_rows_name_both_messages() -> None:
    a, b = f"[{RUN}.0.1] hola", f"[{RUN}.0.2] chau"
    sends = [sent(f"{RUN}.0.1", 0, a, a.encode()), sent(f"{RUN}.0.2", 0, b, b.encode())]
    fr = analyse(sends, [Row(1, a), Row(2, b)], TOKEN, FOREIGN)
    assert [r.kind for r in fr.rows] == [RowKind.EXACT, RowKind.EXACT] and not fr.broken_conns
    fr = analyse(sends, [Row(1, a + b)], TOKEN, FOREIGN)
    assert fr.rows[0].kind == RowKind.MERGED and fr.rows[0].tokens == [f"{RUN}.0.1", f"{RUN}.0.2"]
    assert fr.of(f"{RUN}.0.1").merged and fr.broken_conns == {0}


def test_a_token_cut_across_rows_is_found_by_position() -> None:
    text = f"[{RUN}.3.7] " + "x" * 2000
    rows = [Row(1, text[:5]), Row(2, text[5:1024]), Row(3, text[1024:])]
    fr = analyse([sent(f"{RUN}.3.7", 9, text, text.encode())], rows, TOKEN, FOREIGN)
    st_ = fr.of(f"{RUN}.3.7")
    assert st_.split and st_.complete and st_.pieces == [1, 2, 3] and fr.missing == 0


def test_phantoms_exit_words_empty_and_foreign_rows() -> None:
    a = f"[{RUN}.0.1] hola"
    rows = [Row(1, a), Row(2, "nobody sent this"), Row(3, " "), Row(4, "éxito"), Row(5, "[0a1b2c.1.1] old")]
    fr = analyse([sent(f"{RUN}.0.1", 0, a, a.encode())], rows, TOKEN, FOREIGN, exit_words=["éxito"])
    kinds = [r.kind for r in fr.rows]
    assert kinds == [RowKind.EXACT, RowKind.PHANTOM, RowKind.EMPTY, RowKind.EXIT_WORD, RowKind.FOREIGN]


def test_a_dropped_cut_character_is_told_from_a_truncated_tail() -> None:
    text = f"[{RUN}.0.1] " + "€" * 1500
    data = text.encode()
    at = 1025  # inside a "€": each read decoded on its own with errors="ignore" drops that character
    ignored = [Row(1, data[:at].decode(errors="ignore")), Row(2, data[at:].decode(errors="ignore"))]
    fr = analyse([sent(f"{RUN}.0.1", 0, text, data)], ignored, TOKEN, FOREIGN)
    st_ = fr.of(f"{RUN}.0.1")
    assert not st_.complete and st_.lost_cut_characters and fr.only_cut_characters_missing
    truncated = [Row(1, data[:1024].decode())]  # one recv(1024), the rest of the message never read
    fr = analyse([sent(f"{RUN}.0.1", 0, text, data)], truncated, TOKEN, FOREIGN)
    st_ = fr.of(f"{RUN}.0.1")
    assert not st_.complete and not st_.lost_cut_characters and not fr.only_cut_characters_missing


def test_a_piece_that_is_only_the_rest_of_a_cut_character_is_placed() -> None:
    text = f"[{RUN}.0.1] dú hola"
    data = text.encode()
    at = data.index("ú".encode()) + 1  # a read ends after the first byte of "ú": the next row is one lone byte
    pieces = [data[:at], data[at : at + 1], data[at + 1 :]]
    rows = [Row(i, p.decode("utf-8", errors="replace")) for i, p in enumerate(pieces, 1)]
    assert rows[1].content == "\ufffd"
    fr = analyse([sent(f"{RUN}.0.1", 0, text, data)], rows, TOKEN, FOREIGN)
    assert [r.kind for r in fr.rows] == [RowKind.FRAGMENT] * 3 and [r.conn for r in fr.rows] == [0, 0, 0]
    assert fr.of(f"{RUN}.0.1").complete and fr.missing == 0


def test_choices_that_meet_again_in_a_dead_state_are_not_explored_twice() -> None:
    # Connection 1's "b" comes after all its "a"s, but the first fit puts each "a" on connection 0:
    # only placing all 18 on connection 1 works, the last of 2**18 orders. Orders that put as many
    # "a"s on each connection reach the same state, so a search that remembers dead states needs
    # 171 steps back where one that does not runs out of its 20,000.
    n = 18
    texts = {0: f"[{RUN}.0.1] " + "a" * n, 1: f"[{RUN}.1.1] " + "a" * n + "b"}
    sends = [sent(f"{RUN}.{c}.1", c, t, t.encode()) for c, t in texts.items()]
    head = len(f"[{RUN}.0.1] ")
    contents = [texts[0][:head], texts[1][:head], *["a"] * n, "b", *["a"] * n]
    fr = analyse(sends, [Row(i, c) for i, c in enumerate(contents, 1)], TOKEN, FOREIGN)
    assert [r.conn for r in fr.rows] == [0, 1, *[1] * n, 1, *[0] * n]
    assert fr.of(f"{RUN}.0.1").complete and fr.of(f"{RUN}.1.1").complete and fr.missing == 0
