"""The framing analysis builds the bytes on the wire only when a row needs them: the outline it uses
until then says the same as those bytes, and the verdict is the same either way."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.framing import analyse
from harness.history import INFO, INVOKE, OK, History
from harness.index import RunIndex
from harness.log import Row

RUN = "abc123"
BODIES = ["hola", "ñandú 😀", "  spaced  ", "", "x" * 40]
KINDS = ["plain", "resend", "raw", "partial", "trickle", "exit-word", "exit", "no-token"]
WIRES = [{"protocol": "chat"}, {"protocol": "pfo1", "framing": "newline"}, {"protocol": "pfo1", "framing": "raw"}]


@st.composite
def histories(draw: st.DrawFn) -> tuple[History, list[Row]]:
    """A run's send and exit records of every kind, and rows: each message stored whole, cut or merged."""
    wire = draw(st.sampled_from(WIRES))
    h = History(start=0.0)
    h.append(INFO, "run", -1, -1, {"run_id": RUN, "exit_words": ["éxito", "salir"], **wire})
    rows: list[Row] = []
    for i in range(draw(st.integers(1, 12))):
        kind, conn = draw(st.sampled_from(KINDS)), draw(st.integers(0, 3))
        token = f"{RUN}.{conn}.{i}"
        text = f"[{token}] {draw(st.sampled_from(BODIES))}".rstrip()
        if kind == "exit-word":
            h.add(INFO, "exit", conn, conn, word="salir")
            continue
        if kind == "exit":
            h.add(INFO, "exit", conn, conn, word=None)
            continue
        extras: dict[str, dict[str, object]] = {
            "plain": {"resend": False},
            "resend": {"resend": True},
            "raw": {"raw": "ff41"},
            "partial": {"partial": 3},
            "trickle": {"trickle": 0.01},
            "no-token": {},
        }
        extra = extras[kind]
        if kind == "no-token":
            h.add(INVOKE, "send", conn, conn, token=None, text=text)
            continue
        h.append(INVOKE, "send", conn, conn, {"token": token, "text": text, **extra})
        h.add(OK, "send", conn, conn, token=token, row=len(rows) + 1)
        how = draw(st.sampled_from(["whole", "cut", "merged", "none"]))
        if how == "whole":
            rows.append(Row(len(rows) + 1, text))
        elif how == "cut" and len(text) > 4:
            rows += [Row(len(rows) + 1, text[:3]), Row(len(rows) + 2, text[3:])]
        elif how == "merged" and rows:
            rows[-1] = Row(rows[-1].id, (rows[-1].content or "") + text)
    return h, rows


@settings(max_examples=200)
@given(histories())
def test_the_outline_is_the_sends_without_their_bytes(run: tuple[History, list[Row]]) -> None:
    h, rows = run
    ix = RunIndex(h.records, rows)
    assert ix.outline() == [(s.token, s.conn, s.text, s.partial) for s in ix.sends()]


@settings(max_examples=200)
@given(histories())
def test_the_framing_is_the_same_with_the_bytes_made_on_demand(run: tuple[History, list[Row]]) -> None:
    h, rows = run
    ix = RunIndex(h.records, rows)
    eager = analyse(ix.sends(), ix.rows, ix.token_re, ix.foreign_re, ix.normalize, ix.exit_words)
    made: list[int] = []

    def sends():  # type: ignore[no-untyped-def]
        made.append(1)
        return ix.sends()

    lazy = analyse(sends, ix.rows, ix.token_re, ix.foreign_re, ix.normalize, ix.exit_words, outline=ix.outline())
    assert lazy == eager
    if not made:  # skipped only where every row is one whole message (or nothing of ours)
        assert all(info.kind.name in ("EXACT", "EMPTY", "FOREIGN") for info in eager.rows) and not eager.broken_conns


def test_a_log_of_whole_messages_never_needs_the_bytes() -> None:
    h = History(start=0.0)
    h.add(INFO, "run", run_id=RUN, protocol="chat")
    rows = []
    for i in range(50):
        token = f"{RUN}.{i % 3}.{i}"
        h.add(INVOKE, "send", i % 3, i % 3, token=token, text=f"[{token}] hola", resend=False)
        rows.append(Row(i + 1, f"[{token}] hola"))
    ix = RunIndex(h.records, rows)

    def sends():  # type: ignore[no-untyped-def]
        raise AssertionError("the bytes were made")

    fr = analyse(sends, ix.rows, ix.token_re, ix.foreign_re, ix.normalize, ix.exit_words, outline=ix.outline())
    assert [i.kind.name for i in fr.rows] == ["EXACT"] * 50
