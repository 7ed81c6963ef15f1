"""Properties of the sans-IO protocol: framing, round trips, resynchronisation, bounded memory."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from chat import protocol as p

MAX = 64

# Text a user can send: no C0 controls (TAB allowed), no DEL, not blank.
chat_text = st.text(
    st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters=[chr(c) for c in [*range(0, 9), *range(10, 32), *range(127, 160)]],
    ),
    min_size=1,
    max_size=40,
).filter(lambda t: t.strip() != "")
cids = st.from_regex(p.CID_PATTERN, fullmatch=True)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """Split ``data`` at the given offsets."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for c in [*points, len(data)]:
        out.append(data[last:c])
        last = c
    return out


def feed_all(parser: p.ClientStreamParser, chunks: list[bytes]) -> list[p.ClientEvent]:
    events: list[p.ClientEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=30))
def test_any_chunking_yields_the_same_events(data: bytes, cuts: list[int]) -> None:
    whole = p.ClientStreamParser(MAX).feed(data)
    assert feed_all(p.ClientStreamParser(MAX), chunked(data, cuts)) == whole


@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=30))
def test_server_stream_chunking_is_invisible(data: bytes, cuts: list[int]) -> None:
    whole = p.ServerStreamParser(MAX).feed(data)
    parser = p.ServerStreamParser(MAX)
    assert [e for c in chunked(data, cuts) for e in parser.feed(c)] == whole


@given(chat_text, st.one_of(st.none(), cids))
def test_text_that_fits_round_trips(text: str, cid: str | None) -> None:
    line = p.encode_message(text, cid, max_line=4096)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert p.ClientStreamParser(4096).feed(line) == [p.Message(text, cid)]


@given(st.text(max_size=20))
def test_encode_refuses_what_cannot_round_trip(text: str) -> None:
    try:
        line = p.encode_message(text, max_line=4096)
    except ValueError:
        assert p.text_problem(text) is not None or len(text.encode()) > 4096
    else:
        assert p.ClientStreamParser(4096).feed(line) == [p.Message(text)]


def test_message_longer_than_max_is_refused_by_encoder() -> None:
    try:
        p.encode_message("x" * 65, max_line=64)
    except ValueError as exc:
        assert "too long" in str(exc)
    else:
        raise AssertionError("no error")
    assert p.encode_message("x" * 64, max_line=64) == b"x" * 64 + b"\n"


@given(
    st.binary(min_size=MAX + 2, max_size=300).filter(lambda b: b"\n" not in b),
    chat_text,
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_resynchronises_after_an_overlong_line(junk: bytes, text: str, cuts: list[int]) -> None:
    good = p.encode_message(text, max_line=4096)
    assume(len(good) <= MAX + 1)
    events = feed_all(p.ClientStreamParser(MAX), chunked(junk + b"\n" + good, cuts))
    assert events == [p.ProtocolError(p.E_TOO_LONG, f"line longer than {MAX} bytes: nothing stored"), p.Message(text)]


@given(st.binary(min_size=1, max_size=40), chat_text)
def test_resynchronises_after_invalid_utf8(prefix: bytes, text: str) -> None:
    bad = b"\xff" + prefix.replace(b"\n", b"")
    good = p.encode_message(text, max_line=4096)
    events = p.ClientStreamParser(4096).feed(bad + b"\n" + good)
    assert len(events) == 2
    assert isinstance(events[0], p.ProtocolError) and events[0].code == p.E_BAD_UTF8
    assert events[1] == p.Message(text)


@given(st.lists(st.binary(max_size=200), max_size=40))
def test_no_input_raises_or_grows_without_bound(chunks: list[bytes]) -> None:
    client_side = p.ClientStreamParser(MAX)
    server_side = p.ServerStreamParser(MAX)
    for chunk in chunks:
        client_side.feed(chunk)
        server_side.feed(chunk)
        assert client_side.framer.pending <= MAX + 1
        assert server_side.framer.pending <= MAX + p.SERVER_LINE_OVERHEAD + 1


@given(st.binary(max_size=200))
def test_parse_server_line_never_raises(data: bytes) -> None:
    p.parse_server_line(data)


@given(st.integers(min_value=1, max_value=2**62), st.one_of(st.none(), cids), st.booleans())
def test_ack_round_trips(row: int, cid: str | None, dup: bool) -> None:
    ts = "2026-11-28T22:54:01.123+01:00"
    line = p.encode_ack(row, ts, cid, dup)
    assert b"Mensaje recibido: " + ts.encode() in line
    assert p.parse_server_line(line.rstrip(b"\n")) == p.Ack(row, ts, cid, dup)


@given(st.integers(min_value=1, max_value=2**40), chat_text, st.booleans())
def test_relay_round_trips(row: int, text: str, history: bool) -> None:
    line = p.encode_relay(row, "2026-01-01T00:00:00.000+00:00", "127.0.0.1:5000", text, history)
    event = p.ServerStreamParser(4096).feed(line)
    assert event == [p.Relay(row, "2026-01-01T00:00:00.000+00:00", "127.0.0.1:5000", text, history)]


@given(st.one_of(st.none(), cids))
def test_error_round_trips(cid: str | None) -> None:
    line = p.encode_error(p.E_STORE, "write failed; send again", cid)
    assert p.parse_server_line(line.rstrip(b"\n")) == p.ServerError(p.E_STORE, "write failed; send again", cid)


def test_exit_words_and_quit() -> None:
    for line in ["éxito", "exito", "ÉXITO", "  éxito ", "e\u0301xito", "/quit", "/quit  "]:
        assert p.parse_client_line(line.encode()) == p.Quit(), line
    # The exit word can still be sent as a message, literally.
    assert p.ClientStreamParser().feed(p.encode_message("éxito")) == [p.Message("éxito")]
    assert p.ClientStreamParser().feed(p.encode_message("/quit")) == [p.Message("/quit")]


def test_errors_name_the_id_when_the_line_has_one() -> None:
    assert p.parse_client_line("/id k-1 bad\u009bcontrol".encode()) == p.ProtocolError(
        p.E_BAD_CHAR, "control character U+009B not allowed: nothing stored", "k-1"
    )
    assert p.parse_client_line(b"/id k-2    ") == p.ProtocolError(p.E_EMPTY, "empty message: nothing stored", "k-2")


def test_errors_for_bad_lines() -> None:
    parse = p.parse_client_line
    assert isinstance(parse(b"a\x00b"), p.ProtocolError) and parse(b"a\x00b").code == p.E_BAD_CHAR  # type: ignore[union-attr]
    assert parse(b"   ").code == p.E_EMPTY  # type: ignore[union-attr]
    assert parse(b"").code == p.E_EMPTY  # type: ignore[union-attr]
    assert parse(b"/nope x").code == p.E_BAD_COMMAND  # type: ignore[union-attr]
    assert parse(b"/id bad!id text").code == p.E_BAD_ID  # type: ignore[union-attr]
    assert parse(b"/id ok ").code == p.E_EMPTY  # type: ignore[union-attr]
    assert parse(b'it\'s "quoted"; DROP TABLE mensajes;--') == p.Message('it\'s "quoted"; DROP TABLE mensajes;--')


def test_crlf_and_multibyte_split_across_chunks() -> None:
    data = "¡hola, ñandú! 😀\r\n".encode()
    parser = p.ClientStreamParser()
    events = [e for i in range(len(data)) for e in parser.feed(data[i : i + 1])]
    assert events == [p.Message("¡hola, ñandú! 😀")]
