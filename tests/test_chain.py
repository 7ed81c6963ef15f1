"""Plain sends carried by the event loop's read callback record what the general path records.

A scripted chat server on a real socket answers each line it reads as its script says: at once, in
two writes, late, after a stray ack, or not at all; it resets or closes the connection instead of
answering. One simulated client sends through all of it twice, on the short way (where the read
callback judges each answer and sends the next message) and on the general path; the two
histories must match record for record.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from support import count_short_way

from harness import session
from harness.clients import Context, Options, SimClient, execute
from harness.history import History, Record
from harness.plan import CLOSE, SEND, ClientPlan, Op, Plan
from harness.wire import ChatWire

# What the server does with each line it reads, connection by connection (then "ack" for ever).
SCRIPT = [
    ["ack", "split", "ack", "late", "stray", "ack", "ack", "reset"],
    ["ack", "ack", "close"],  # the first line is the resend of the message the reset left unanswered
    ["ack", "ack", "none"],
    [],
]
MESSAGES = 15
OPTIONS = Options(ack_timeout=1.0, poll=0.2, connect_timeout=5, close_timeout=2, give_up_after=0)


def answer(conn: socket.socket, how: str, cid: bytes, n: int) -> bool:
    """Answer one line as ``how`` says; False when the connection is over."""
    ack = b"Mensaje recibido: T id=%d cid=%s\n" % (n, cid)
    if how == "ack":
        conn.sendall(ack)
    elif how == "split":
        conn.sendall(ack[:20])
        time.sleep(0.05)
        conn.sendall(ack[20:])
    elif how == "late":  # past the client's first read (poll), within its ack timeout
        time.sleep(0.5)
        conn.sendall(ack)
    elif how == "stray":
        conn.sendall(b"Mensaje recibido: T id=99 cid=nobody.1.1\n")
        time.sleep(0.05)
        conn.sendall(ack)
    elif how == "reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        return False
    elif how == "close":
        return False
    return True  # "none": read on, answer nothing


def serve(listener: socket.socket, stop: threading.Event) -> None:
    """Serve connections one after another, each by its script."""
    rows = 0
    for script in [*SCRIPT, *([[]] * 5)]:
        while True:  # accept in short waits: closing the listener does not wake an accept
            try:
                conn, _ = listener.accept()
                break
            except TimeoutError:
                if stop.is_set():
                    return
            except OSError:
                return
        with conn:
            conn.settimeout(10)
            conn.sendall(b"HELLO 127.0.0.1:1 4096\n")
            buf, i, going = b"", 0, True
            while going and not stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                while going and b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    rows += 1
                    going = answer(conn, script[i] if i < len(script) else "ack", line.split(b" ", 2)[1], rows)
                    i += 1


def run(tmp_path: Path) -> list[Record]:
    """One client's plain sends against the scripted server; its records."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    server = threading.Thread(target=serve, args=(listener, stop), daemon=True)
    server.start()
    tmp_path.mkdir(parents=True, exist_ok=True)
    history = History(tmp_path / "history.jsonl")
    ops = [Op(SEND, f"m{i}") for i in range(MESSAGES)] + [Op(CLOSE)]
    try:
        ctx = Context("127.0.0.1", listener.getsockname()[1], ChatWire(), history, "chain", OPTIONS)
        assert execute(Plan([ClientPlan(ops)], 1, "chain"), ctx, timeout=60) == []
    finally:
        stop.set()
        listener.close()
        server.join(timeout=15)
        history.close()
    assert not server.is_alive()
    return list(history)


def shape(records: list[Record]) -> list[tuple[object, ...]]:
    """What must not depend on the way taken: each record but its times and waits."""
    out = []
    for r in records:
        value = {k: v for k, v in r.value.items() if k not in ("waited", "hello", "end", "port")}
        out.append((r.type, r.f, r.conn, r.get("end") if r.f == "send" else None, sorted(value.items(), key=str)))
    return out


def test_the_short_way_records_what_the_general_path_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = count_short_way(monkeypatch)
    short = run(tmp_path / "short")
    monkeypatch.setattr(SimClient, "_plain", lambda self: False)
    general = run(tmp_path / "general")
    assert len(sent) >= 10  # the short way carried the plain sends
    assert shape(short) == shape(general)
    ends = {(r.get("end"), r.type) for r in short if r.f == "send" and r.type != "invoke"}
    assert {("reset", "info"), ("server-close", "info"), ("ack-timeout", "info")} <= ends
    assert sum(r.f == "stray-ack" for r in short) == 1
    acked = {r.get("token") for r in short if r.f == "send" and r.type == "ok"}
    assert len(acked) == MESSAGES  # every message acknowledged in the end (resent after each break)


def test_a_harness_error_in_the_read_callback_ends_the_client_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed: list[int] = []
    feed = session.Session.feed

    def failing(self: session.Session, data: bytes) -> None:
        fed.append(1)
        if len(fed) == 3:  # the greeting, the first ack, then the first half of the second (in the callback)
            raise RuntimeError("a bug in the session")
        feed(self, data)

    monkeypatch.setattr(session.Session, "feed", failing)
    started = time.monotonic()
    records = run(tmp_path)
    assert time.monotonic() - started < 10
    errors = [r for r in records if r.f == "client-error"]
    assert len(errors) == 1 and "a bug in the session" in str(errors[0].get("error"))
