"""The simulated client's session with no sockets: bytes in, history records out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.ends import End
from harness.history import FAIL, INFO, OK, History
from harness.session import ClientState, Session
from harness.wire import ChatWire, Pfo1Wire


def session(wire: object, clock: list[float] | None = None) -> tuple[Session, History]:
    h = History(start=0.0)
    now = (lambda: clock[0]) if clock is not None else h.now
    s = Session(wire, ClientState(0, "ab12cd"), 0, h.append, now, link="0.1")  # type: ignore[arg-type]
    s.connecting()
    s.connected(40000)
    return s, h


def fed(s: Session, stream: bytes, cuts: list[int]) -> None:
    last = 0
    for c in [*sorted(x % (len(stream) + 1) for x in cuts), len(stream)]:
        s.feed(stream[last:c])
        last = c


def kinds(h: History) -> list[tuple[str, str]]:
    return [(r.f, r.type) for r in h.records if r.f not in ("connect",)]


@given(st.lists(st.integers(min_value=0, max_value=500), max_size=12))
def test_chat_replies_mean_the_same_however_the_stream_is_cut(cuts: list[int]) -> None:
    s, h = session(ChatWire())
    data = s.send([("ab12cd.0.1", "[ab12cd.0.1] hola"), ("ab12cd.0.2", "[ab12cd.0.2] chau")])
    assert data == b"/id ab12cd.0.1 [ab12cd.0.1] hola\n/id ab12cd.0.2 [ab12cd.0.2] chau\n"
    stream = (
        "HELLO 127.0.0.1:40000 4096\n"
        "Mensaje recibido: 2026-11-29T10:00:00.000-03:00 id=5 cid=ab12cd.0.1\n"
        "MSG 6 2026-11-29T10:00:00.100-03:00 127.0.0.1:40001 [zz.1.1] ñandú\n"
        "ERROR store cid=ab12cd.0.2 database is locked\n"
        "esto no es del protocolo\n"
        "ERROR idle idle for 1 s; disconnecting\n"
    ).encode()
    fed(s, stream, cuts)
    recs = [r for r in h.records if r.f != "connect"]
    assert [(r.f, r.type) for r in recs[2:]] == [
        ("send", OK),
        ("send", FAIL),
        ("unexpected-reply", INFO),
        ("server-error", INFO),
    ]
    assert recs[2].get("row") == 5 and recs[3].get("code") == "store"
    assert s.relays[0][0] == 6 and s.relays[0][2] == "zz.1.1"
    assert s.conn_errors == ["idle"] and not s.outstanding
    s.eof()
    assert s.server_end() == End.SERVER_ERROR_CLOSE


def test_a_polite_close_that_meets_a_connection_error_is_a_drop_by_the_server() -> None:
    s, h = session(ChatWire())
    s.feed(b"ERROR slow you are not reading fast enough; disconnecting\n")
    s.eof()
    s.end(End.CLIENT_CLOSE)
    end = h.records[-1]
    assert end.f == "conn-end" and end.get("reason") == End.SERVER_ERROR_CLOSE.value
    assert end.get("errors") == ["slow"] and end.get("link") == "0.1"


def test_what_is_outstanding_at_the_end_is_settled_with_the_end_reason() -> None:
    s, h = session(ChatWire())
    s.send([("ab12cd.0.1", "[ab12cd.0.1] hola")])
    s.end(End.RESET, "Connection reset by peer")
    info = next(r for r in h.records if r.f == "send" and r.type == INFO)
    assert info.get("end") == "reset" and info.get("error") == "Connection reset by peer"


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_pfo1_acks_are_matched_on_complete_replies(cuts: list[int]) -> None:
    wire = Pfo1Wire(r"Mensaje recibido: (?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", "éxito", "raw", error=r"^Error:")
    s, h = session(wire)
    s.send([("ab12cd.0.1", "[ab12cd.0.1] uno")])
    s.send([("ab12cd.0.2", "[ab12cd.0.2] dos")])
    fed(s, b"Mensaje recibido: 2026-11-29 10:12:33", cuts)
    s.quiet()  # no more bytes for a moment: what was held is complete
    fed(s, b"\nError: mensaje vac\xc3\xado\n", cuts)
    acks = [r for r in h.records if r.f == "send" and r.type == OK]
    assert [a.get("ts") for a in acks] == ["2026-11-29 10:12:33"]  # never half a timestamp
    refused = [r for r in h.records if r.f == "send" and r.type == FAIL]
    assert [r.get("token") for r in refused] == ["ab12cd.0.2"]


def test_pfo1_text_that_is_no_reply_is_reported_when_a_send_is_given_up() -> None:
    s, h = session(Pfo1Wire("Mensaje recibido", "éxito", "newline"))
    s.send([("ab12cd.0.1", "[ab12cd.0.1] hola")])
    s.feed(b"Guardado!\n")
    s.give_up("ab12cd.0.1")
    said = [r for r in h.records if r.f == "unexpected-reply"]
    assert said and said[0].get("line") == "Guardado!\n" and said[0].get("waiting") == ["ab12cd.0.1"]
    assert h.records[-1].get("end") == End.ACK_TIMEOUT.value


def test_without_framing_extra_acks_are_credited_to_the_message_they_follow() -> None:
    clock = [0.0]
    s, h = session(Pfo1Wire("Mensaje recibido", "éxito", "raw"), clock)
    s.send([("ab12cd.0.1", "[ab12cd.0.1] " + "x" * 3000)])
    s.feed(b"Mensaje recibido")
    assert s.settle_until == 0.05  # the next send waits until the acks stop coming
    clock[0] = 0.01
    s.feed(b"Mensaje recibido" * 2)
    strays = [r for r in h.records if r.f == "stray-ack"]
    assert len(strays) == 2 and all(r.get("after") == "ab12cd.0.1" for r in strays)
    assert s.settle_until == 0.01 + 0.05


def test_one_message_per_connection_servers_and_client_only_exit_words() -> None:
    s, _ = session(Pfo1Wire("ok", "éxito", "newline", per_connection=1, server_sees_exit_word=False))
    assert not s.full
    s.send([("ab12cd.0.1", "[ab12cd.0.1] hola")])
    assert s.full  # the next message needs a new connection
    assert not s.wire.server_sees_exit_word


def test_end_reasons_parse_old_and_new_records() -> None:
    assert End.parse("client-close") is End.CLIENT_CLOSE and End.CLIENT_CLOSE.polite
    assert End.parse("close") is End.CLIENT_CLOSE and End.parse("exit") is End.EXIT_WORD
    assert End.parse("connection closed by the server") is End.SERVER_CLOSE and End.SERVER_CLOSE.by_server
    assert End.parse("half-reset").client_broke and End.STOPPED.harness
    assert End.SERVER_CLOSE == "server-close"  # a str enum: equal to the value written in the history


def test_a_reply_owns_the_rest_of_its_line_so_it_is_never_blamed_on_the_next_message() -> None:
    wire = Pfo1Wire("Mensaje recibido", "éxito", "newline", error="^Error:")
    s, h = session(wire)
    s.send([("ab12cd.0.1", "[ab12cd.0.1] " + "x" * 600)])
    s.feed(b"Error: el mensaje supera")
    s.feed(b" los 500 caracteres\n")
    s.send([("ab12cd.0.2", "[ab12cd.0.2] hola")])
    s.feed(b"Mensaje recibido: 10:12")
    s.feed(b":33\n")
    s.send([("ab12cd.0.3", "[ab12cd.0.3] chau")])
    s.give_up("ab12cd.0.3")
    [refused] = [r for r in h.records if r.f == "send" and r.type == FAIL]
    assert refused.get("error").startswith("Error: el mensaje supera")
    assert [r.get("token") for r in h.records if r.f == "send" and r.type == OK] == ["ab12cd.0.2"]
    assert not [r for r in h.records if r.f == "unexpected-reply"]  # the tails were their replies' own
