"""An answer queued behind replies the harness has not read yet is not the server's silence.

A scripted server on a real socket: it greets, reads one message, then either streams relays far
faster than a client can parse them before it acknowledges (the harness falls behind, as in a big
burst) or lines its target cannot describe (a PFO1 server's broadcast), says nothing, or streams
bytes with no line end. Only the first two may extend the wait.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.clients import LAG_GRACE, Context, Options, SimClient, execute
from harness.history import INFO, OK, History
from harness.plan import SEND, ClientPlan, Op, Plan
from harness.wire import ChatWire, Pfo1Wire

ACK_TIMEOUT = 0.4
STREAM = 1.2  # seconds of streaming before the ack: three ack timeouts


def relays(seconds: float) -> Callable[[socket.socket], None]:
    """Relay lines as fast as the socket takes them, for ``seconds``."""
    chunk = b"".join(
        b"MSG %d T 127.0.0.1:1 [other.1.%d] a relayed message of some length\n" % (i, i) for i in range(8000)
    )

    def stream(conn: socket.socket) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            conn.sendall(chunk)

    return stream


def junk(seconds: float) -> Callable[[socket.socket], None]:
    """Bytes that are no reply (no newline), as fast as the socket takes them."""

    def stream(conn: socket.socket) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            conn.sendall(b"x" * 65536)

    return stream


def broadcast(seconds: float, lines: int = 8000, pause: float = 0.0) -> Callable[[socket.socket], None]:
    """A PFO1 server's forwarded messages (``[ip] text``, a line its target file cannot describe), for ``seconds``.

    In chunks of ``lines`` lines, ``pause`` seconds apart (a paced stream the client keeps up with).
    """
    chunk = b"".join(b"[127.0.0.1] a message another client sent, number %d\n" % i for i in range(lines))

    def stream(conn: socket.socket) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            conn.sendall(chunk)
            if pause:
                time.sleep(pause)  # the server's pacing, not a wait for anything

    return stream


def serve(
    listener: socket.socket, before_ack: Callable[[socket.socket], None] | None, ack: bool, pfo1: bool = False
) -> None:
    """Greet one client, read its message, do ``before_ack``, acknowledge it (if ``ack``), wait for the close."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)
        if not pfo1:
            conn.sendall(b"HELLO 127.0.0.1:1 4096\n")
        data = b""
        while b"\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return  # the client left before sending its message
            data += chunk
        cid = data.split(b" ", 2)[1] if not pfo1 else b""
        try:
            if before_ack is not None:
                before_ack(conn)
            if ack:
                conn.sendall(b"Mensaje recibido: T id=1 cid=" + cid + b"\n" if not pfo1 else b"Mensaje recibido\n")
            while conn.recv(65536):
                pass
        except OSError:
            pass  # the client gave up and left


def run_against(
    tmp_path: Path, before_ack: Callable[[socket.socket], None] | None, ack: bool, pfo1: bool = False
) -> History:
    """One client, one message, against the scripted server; its history."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    server = threading.Thread(target=serve, args=(listener, before_ack, ack, pfo1), daemon=True)
    server.start()
    history = History(tmp_path / "history.jsonl")
    try:
        ctx = Context(
            "127.0.0.1",
            listener.getsockname()[1],
            ChatWire() if not pfo1 else Pfo1Wire("Mensaje recibido", "éxito", "newline"),
            history,
            "lag",
            Options(ack_timeout=ACK_TIMEOUT, connect_timeout=5, close_timeout=2, give_up_after=0),
        )
        assert execute(Plan([ClientPlan([Op(SEND, "hola")])], 1, "lag"), ctx, timeout=30) == []
    finally:
        server.join(timeout=15)
        listener.close()
        history.close()
    assert not server.is_alive()
    return history


def sends(history: History) -> list[tuple[str, float | None]]:
    """(type, waited) of each answer record of the message."""
    return [(r.type, r.get("waited")) for r in history if r.f == "send" and r.type in (OK, INFO)]


def test_an_ack_behind_unread_relays_is_waited_for(tmp_path: Path) -> None:
    assert STREAM < ACK_TIMEOUT * (1 + LAG_GRACE)
    h = run_against(tmp_path, relays(STREAM), ack=True)
    assert sends(h) == [(OK, None)]
    assert sum(len(r.get("relays") or []) for r in h if r.f == "conn-end") > 10_000


def test_an_ack_behind_unread_lines_the_target_cannot_describe_is_waited_for(tmp_path: Path) -> None:
    h = run_against(tmp_path, broadcast(STREAM), ack=True, pfo1=True)
    assert sends(h) == [(OK, None)]  # a PFO1 server forwarding the others' messages before it answers


def test_an_ack_behind_a_stream_the_client_keeps_up_with_is_waited_for(tmp_path: Path) -> None:
    h = run_against(tmp_path, broadcast(STREAM, lines=50, pause=0.02), ack=True, pfo1=True)
    assert sends(h) == [(OK, None)]  # the stream was still arriving when a wait ended, not over


@pytest.mark.parametrize("before_ack", [None, junk(STREAM)], ids=["silent", "bytes-that-are-no-reply"])
def test_a_server_that_does_not_answer_is_judged_after_one_ack_timeout(
    tmp_path: Path, before_ack: Callable[[socket.socket], None] | None
) -> None:
    h = run_against(tmp_path, before_ack, ack=False)
    [(kind, waited)] = sends(h)
    assert kind == INFO and waited is not None
    assert ACK_TIMEOUT <= waited < 2 * ACK_TIMEOUT  # not extended


def answer_late(conn: socket.socket, gave_up: threading.Event) -> None:
    """Acknowledge the first message at once and the second 1.5 s late; another client abandons meanwhile."""
    data = b""
    abandon = threading.Timer(0.5, gave_up.set)  # the shorter waits start while the second one runs
    try:
        for n in (1, 2):
            while b"\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            line, data = data.split(b"\n", 1)
            if n == 2:
                abandon.start()
                time.sleep(1.5)  # the late answer itself, not a wait for anything
            conn.sendall(b"Mensaje recibido: T id=%d cid=" % n + line.split(b" ", 2)[1] + b"\n")
    finally:
        if abandon.is_alive():
            abandon.join(5)


@pytest.mark.parametrize("short_way", [True, False], ids=["short-way", "general-path"])
def test_a_wait_under_way_keeps_its_ack_timeout_when_another_client_gives_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short_way: bool
) -> None:
    if not short_way:
        monkeypatch.setattr(SimClient, "_plain", lambda self: False)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    history = History(tmp_path / "history.jsonl")
    opts = Options(ack_timeout=5, short_ack_timeout=0.5, poll=1.0, give_up_after=0, close_timeout=2)
    ctx = Context("127.0.0.1", listener.getsockname()[1], ChatWire(), history, "lag", opts)

    def server() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            conn.sendall(b"HELLO 127.0.0.1:1 4096\n")
            try:
                answer_late(conn, ctx.gave_up)
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    thread = threading.Thread(target=server, daemon=True)
    thread.start()
    try:
        plan = Plan([ClientPlan([Op(SEND, "first"), Op(SEND, "second")])], 1, "lag")
        assert execute(plan, ctx, timeout=30) == []
    finally:
        thread.join(timeout=15)
        listener.close()
        history.close()
    assert not thread.is_alive()
    assert ctx.gave_up.is_set()
    assert sends(history) == [(OK, None), (OK, None)]  # the second was answered 1.5 s in: within its 5 s
