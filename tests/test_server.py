"""The reference server as a real process: concurrency, disconnects, shutdown, errors, limits."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from support import PY, LineClient, ServerProcess, rows, wait_for

from chat import protocol as p

Start = Callable[..., ServerProcess]


def test_ack_names_timestamp_and_row_and_matches_the_log(server: ServerProcess) -> None:
    c = LineClient(server.port)
    c.send("¿Qué tal? 😀\n".encode())
    ack = c.next_of(p.Ack)
    c.close()
    [(row_id, text, ts, ip, _cid)] = rows(server.db)
    assert (ack.row, ack.ts) == (row_id, ts)
    assert text == "¿Qué tal? 😀" and ip == "127.0.0.1"


def test_many_concurrent_clients_every_ack_stored_once_relays_complete_in_order(server: ServerProcess) -> None:
    n_clients, per_client = 60, 15
    clients = [LineClient(server.port) for _ in range(n_clients)]
    barrier = threading.Barrier(n_clients)
    acks: dict[str, int] = {}
    relays: dict[int, list[p.Relay]] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    total = n_clients * per_client

    def run(k: int, c: LineClient) -> None:
        try:
            barrier.wait(10)
            c.send(b"".join(p.encode_message(f"c{k} m{i} 'q'", f"c{k}-{i}") for i in range(per_client)))
            got_acks: list[p.Ack] = []
            got_relays: list[p.Relay] = []
            while len(got_acks) < per_client or len(got_relays) < total - per_client:
                ev = c.next()
                if isinstance(ev, p.Ack):
                    got_acks.append(ev)
                elif isinstance(ev, p.Relay):
                    got_relays.append(ev)
                else:
                    raise AssertionError(ev)
            with lock:
                acks.update({a.cid: a.row for a in got_acks})  # type: ignore[misc]
                relays[k] = got_relays
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k, c)) for k, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in clients:
        c.close()
    assert not errors, errors[:3]
    stored = rows(server.db)
    assert len(stored) == total == len(acks)
    by_cid = {r[4]: r for r in stored}
    assert len(by_cid) == total  # exactly once
    for cid, row_id in acks.items():
        who, i = cid.split("-")
        assert by_cid[cid][0] == row_id and by_cid[cid][1] == f"{who} m{i} 'q'"
    for k, got in relays.items():
        ids = [r.row for r in got]
        assert ids == sorted(ids), "relays out of log order"
        assert set(ids) == {r[0] for r in stored if not r[4].startswith(f"c{k}-")}


def test_abrupt_disconnects_store_nothing_partial_and_leak_nothing(server: ServerProcess) -> None:
    probe = LineClient(server.port)
    base_threads, base_fds = server.threads(), server.fds()
    for i in range(20):
        c = LineClient(server.port)
        c.send(f"complete {i}\n".encode())
        c.next_of(p.Ack)
        if i % 3 == 0:
            c.send(b"half a li")
            c.rst()
        elif i % 3 == 1:
            c.send(b"half a line then FIN")
            c.sock.shutdown(socket.SHUT_WR)
            assert c.drain() == []
            c.close()
        else:
            c.rst()
    wait_for(
        lambda: server.threads() == base_threads and server.fds() == base_fds, what="threads and fds back to baseline"
    )
    probe.send(b"still alive\n")
    assert isinstance(probe.next_of(p.Ack), p.Ack)
    texts = [r[1] for r in rows(server.db)]
    assert sorted(texts) == sorted([f"complete {i}" for i in range(20)] + ["still alive"])
    assert server.proc.poll() is None


def test_port_in_use_fails_fast_with_one_clear_line(server: ServerProcess, start_server: Start, tmp_path: Path) -> None:
    second = start_server(port=server.port, db="other.db", ready=False)
    code = second.proc.wait(10)
    second.err.join()
    assert code == 2
    err = second.err.text()
    assert f"127.0.0.1:{server.port}" in err and "already in use" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "other.db").exists()  # it touched nothing
    c = LineClient(server.port)  # the first keeps serving
    c.send(b"hi\n")
    assert isinstance(c.next_of(p.Ack), p.Ack)


def test_immediate_restart_on_the_same_port(server: ServerProcess, start_server: Start) -> None:
    c = LineClient(server.port)
    c.send(b"before\n")
    c.next_of(p.Ack)
    assert server.stop("sigterm")[0] == 0
    c.close()
    again = start_server(port=server.port)
    c2 = LineClient(again.port)
    c2.send(b"after\n")
    c2.next_of(p.Ack)
    assert [r[1] for r in rows(again.db)] == ["before", "after"]


@pytest.mark.parametrize("how", ["enter", "sigint", "sigterm"])
def test_shutdown_with_connected_clients_is_quick_and_clean(server: ServerProcess, how: str) -> None:
    idle = [LineClient(server.port) for _ in range(10)]
    busy = LineClient(server.port)
    busy.send(b"".join(p.encode_message(f"m{i}") for i in range(200)))
    busy.next_of(p.Ack)
    mid_line = LineClient(server.port)
    mid_line.send(b"never finished")
    deaf = LineClient(server.port)  # connected but never reads again
    deaf.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    code, took = server.stop(how)
    assert code == 0 and took < 2.0, (code, took, server.err.text())
    events = busy.drain()
    acked = 1 + sum(isinstance(e, p.Ack) for e in events)
    assert isinstance(events[-1], p.ServerError) and events[-1].code == p.E_SHUTDOWN
    for c in idle:
        got = c.drain()
        assert got[-1] == p.ServerError(p.E_SHUTDOWN, "server shutting down")
        assert all(isinstance(e, p.Relay) for e in got[:-1])
    texts = [r[1] for r in rows(server.db)]
    assert "never finished" not in texts
    assert len(texts) >= acked  # every acknowledged message is durable
    server.err.join()
    assert "Traceback" not in server.err.text()
    with sqlite3.connect(server.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    deaf.close()


def test_closed_stdin_neither_stops_nor_orphans(server: ServerProcess) -> None:
    assert server.proc.stdin is not None
    server.proc.stdin.close()
    c = LineClient(server.port)
    c.send(b"after EOF on stdin\n")
    assert isinstance(c.next_of(p.Ack), p.Ack)
    assert server.proc.poll() is None
    assert server.stop("sigterm")[0] == 0


def test_bad_input_gets_clear_errors_and_the_connection_survives(server: ServerProcess) -> None:
    c = LineClient(server.port)
    c.send(
        b"\xff\xfe bad\n"
        + b"nul\x00byte\n"
        + b"x" * 5000
        + b"\n"
        + b"\n"
        + b"/bogus\n"
        + b'it\'s "fine"; DROP TABLE mensajes; --\n'
    )
    codes = [c.next_of(p.ServerError).code for _ in range(5)]
    assert codes == [p.E_BAD_UTF8, p.E_BAD_CHAR, p.E_TOO_LONG, p.E_EMPTY, p.E_BAD_COMMAND]
    assert isinstance(c.next_of(p.Ack), p.Ack)
    assert [r[1] for r in rows(server.db)] == ['it\'s "fine"; DROP TABLE mensajes; --']


def test_max_line_is_configurable(start_server: Start) -> None:
    server = start_server("--max-line", "10")
    c = LineClient(server.port)
    c.send(b"0123456789\n01234567890\nok\n")
    assert isinstance(c.next_of(p.Ack), p.Ack)
    assert c.next_of(p.ServerError).code == p.E_TOO_LONG
    assert isinstance(c.next_of(p.Ack), p.Ack)


def test_resend_with_a_known_client_id_is_not_stored_twice(server: ServerProcess) -> None:
    a = LineClient(server.port)
    a.send(b"/id k-1 only once\n")
    first = a.next_of(p.Ack)
    a.rst()
    b = LineClient(server.port)
    b.send(b"/id k-1 only once\n")
    second = b.next_of(p.Ack)
    assert (second.row, second.cid, second.duplicate) == (first.row, "k-1", True)
    assert len(rows(server.db)) == 1


def test_exit_word_ends_the_session_and_is_not_stored(server: ServerProcess) -> None:
    c = LineClient(server.port)
    c.send("hola\néxito\nafter\n".encode())
    assert c.drain()[-1] == p.Bye("goodbye")
    assert [r[1] for r in rows(server.db)] == ["hola"]


def test_database_not_accessible_at_start(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 50)
    for db in [tmp_path / "missing" / "chat.db", tmp_path / "junk.db"]:
        proc = subprocess.run(
            [PY, "-m", "chat.server", "--port", "0", "--db", str(db)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert proc.returncode == 3, proc
        assert str(db) in proc.stderr and "Traceback" not in proc.stderr
        assert proc.stdout == ""


def test_write_failure_while_running_errors_without_ack_and_server_lives(start_server: Start) -> None:
    server = start_server("--busy-timeout", "0.2")
    c = LineClient(server.port)
    blocker = sqlite3.connect(server.db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        c.send(b"/id w-1 during the lock\n")
        err = c.next_of(p.ServerError)
        assert (err.code, err.cid) == (p.E_STORE, "w-1")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert rows(server.db) == []
    c.send(b"/id w-1 during the lock\n")
    ack = c.next_of(p.Ack)
    assert not ack.duplicate and len(rows(server.db)) == 1


def test_a_stuck_receiver_never_blocks_the_others(server: ServerProcess) -> None:
    stuck = LineClient(server.port)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sender = LineClient(server.port)
    listener = LineClient(server.port)
    text = "y" * 3000
    n = 1500  # ~4.5 MB of relays: far more than the stuck client's buffers and outbox
    got = 0

    def listen() -> None:
        nonlocal got
        while got < n:
            if isinstance(listener.next(), p.Relay):
                got += 1

    t = threading.Thread(target=listen)
    t.start()
    sender.send(b"".join(p.encode_message(f"{i} {text}") for i in range(n)))
    for _ in range(n):
        sender.next_of(p.Ack)
    t.join(30)
    assert got == n
    server.err.wait(rf"{stuck.name}: (not reading|cannot send).*dropping it", timeout=20)
    sender.send(b"still fine\n")  # the others are still served
    assert isinstance(sender.next_of(p.Ack), p.Ack)
    listener.close()
    sender.close()
    stuck.close()
    wait_for(lambda: server.threads() == 3, timeout=20, what="every session thread gone")


def test_max_clients_refuses_politely_and_others_are_unaffected(start_server: Start) -> None:
    server = start_server("--max-clients", "2")
    a, b = LineClient(server.port), LineClient(server.port)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        data = s.recv(4096)
        assert p.parse_server_line(data.rstrip(b"\n")).code == p.E_FULL  # type: ignore[union-attr]
        assert s.recv(4096) == b""
    a.send(b"a\n")
    b.send(b"b\n")
    assert isinstance(a.next_of(p.Ack), p.Ack) and isinstance(b.next_of(p.Ack), p.Ack)
    a.close()
    wait_for(lambda: _admitted(server.port), what="a free slot after a client leaves")


def _admitted(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return s.recv(4096).startswith(b"HELLO")


def test_idle_clients_are_disconnected_with_a_reason(start_server: Start) -> None:
    server = start_server("--idle-timeout", "0.5")
    c = LineClient(server.port)
    assert c.drain() == [p.ServerError(p.E_IDLE, "idle for 0.5 s; disconnecting")]


def test_history_is_replayed_on_join_in_log_order(start_server: Start) -> None:
    server = start_server("--history", "3")
    a = LineClient(server.port)
    a.send(b"one\ntwo\nthree\nfour\n")
    for _ in range(4):
        a.next_of(p.Ack)
    b = LineClient(server.port)
    got = [b.next() for _ in range(3)]
    assert [(e.text, e.history) for e in got] == [("two", True), ("three", True), ("four", True)]  # type: ignore[union-attr]
    a.send(b"five\n")
    relay = b.next()
    assert isinstance(relay, p.Relay) and (relay.text, relay.history) == ("five", False)


def test_clients_that_leave_before_joining_are_not_kept_as_members(tmp_path: Path) -> None:
    from chat.server import ChatServer, Config, open_listener
    from chat.store import Store

    config = Config(port=0, db=str(tmp_path / "chat.db"))
    listener = open_listener("127.0.0.1", 0, 1024)
    server = ChatServer(config, Store(config.db), listener)
    server.start()
    try:
        port = listener.getsockname()[1]
        for i in range(100):  # connect and close at once: the reader may finish before the writer joins it
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        wait_for(lambda: server.client_count == 0, what="every session to end")
        c = LineClient(port)
        # The count can touch 0 while the listener still has connections to accept; those join and
        # leave after this point, so wait for it: a member kept for good never goes.
        wait_for(lambda: [m for m in server._members if m.name != c.name] == [], what="no member but the last client")
        c.close()
    finally:
        assert server.shutdown()


def test_a_large_history_reaches_a_client_that_reads(start_server: Start) -> None:
    server = start_server("--history", "400")
    a = LineClient(server.port)
    text = "h" * 3000
    a.send(b"".join(p.encode_message(f"{i} {text}") for i in range(400)))
    for _ in range(400):
        a.next_of(p.Ack)
    b = LineClient(server.port)  # 1.2 MB of history in one go: more than the socket takes at once
    got = [b.next() for _ in range(400)]
    assert all(isinstance(e, p.Relay) and e.history for e in got)
    assert [e.text.split()[0] for e in got] == [str(i) for i in range(400)]  # type: ignore[union-attr]


def test_shutdown_stays_quick_while_another_process_locks_the_database(server: ServerProcess) -> None:
    clients = [LineClient(server.port) for _ in range(10)]
    blocker = sqlite3.connect(server.db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        for c in clients:
            c.send(b"".join(p.encode_message(f"m{i}") for i in range(50)))
        code, took = server.stop("sigterm")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert took < 2.5, took  # the commits in flight cannot finish: an unclean (1), but prompt, exit
    assert code in (0, 1)


def test_the_switch_interval_is_set_before_serving_and_a_bad_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from chat import server as srv

    seen: list[float] = []

    def run(chat: srv.ChatServer) -> int:
        seen.append(sys.getswitchinterval())
        chat.listener.close()
        chat.store.close()
        return 0

    monkeypatch.setattr(srv, "run", run)
    before = sys.getswitchinterval()
    try:
        assert srv.main(["--port", "0", "--db", str(tmp_path / "a.db"), "--switch-interval", "0.25"]) == 0
        assert srv.main(["--port", "0", "--db", str(tmp_path / "b.db")]) == 0
    finally:
        sys.setswitchinterval(before)
    assert seen == [0.25, 0.5]
    assert srv.main(["--port", "0", "--db", str(tmp_path / "c.db"), "--switch-interval", "0"]) == srv.EXIT_LISTEN
    assert "--switch-interval must be positive" in capsys.readouterr().err
    for bad in ("nan", "inf", "1e-9", "1e30"):
        assert srv.main(["--port", "0", "--db", str(tmp_path / "c.db"), "--switch-interval", bad]) == srv.EXIT_LISTEN
        assert "--switch-interval must be between 0.0001 and 60 seconds" in capsys.readouterr().err
    assert seen == [0.25, 0.5]
