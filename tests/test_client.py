"""The interactive client as a real process: piped input, server down, retry, resend after a drop."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import PY, Lines, ServerProcess, rows, wait_for

Start = Callable[..., ServerProcess]


def client(port: int, *args: str, stdin: int = subprocess.PIPE, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY, "-m", "chat.client", "--port", str(port), *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
    )


@pytest.fixture
def reserved_port() -> Iterator[socket.socket]:
    """A bound, non-listening socket: its port refuses connections and no one else can take it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    yield s
    s.close()


def test_piped_lines_are_acknowledged_stored_and_the_exit_word_ends_it(server: ServerProcess, tmp_path: Path) -> None:
    proc = client(server.port, cwd=tmp_path)
    out, err = proc.communicate("hola\n¿qué tal? 'x'\n\n/leading slash\néxito\nnot sent\n".encode(), timeout=20)
    assert proc.returncode == 0, err
    assert out.decode().count("Mensaje recibido:") == 3
    assert [r[1] for r in rows(server.db)] == ["hola", "¿qué tal? 'x'", "/leading slash"]


def test_end_of_input_waits_for_the_acks(server: ServerProcess, tmp_path: Path) -> None:
    lines = "".join(f"line {i}\n" for i in range(200))
    proc = client(server.port, cwd=tmp_path)
    _out, err = proc.communicate(lines.encode(), timeout=30)
    assert proc.returncode == 0, err
    assert len(rows(server.db)) == 200


def test_other_clients_messages_are_printed(server: ServerProcess, tmp_path: Path) -> None:
    listener = client(server.port, cwd=tmp_path)
    assert listener.stdout is not None and listener.stderr is not None
    out = Lines(listener.stdout)
    err = Lines(listener.stderr)
    err.wait("connected to")
    talker = client(server.port, cwd=tmp_path)
    talker.communicate(b"buenas\n", timeout=20)
    m = out.wait(r"\] 127\.0\.0\.1:\d+: buenas")
    assert m
    listener.communicate("éxito\n".encode(), timeout=20)
    assert listener.returncode == 0


def test_server_down_is_one_clear_line_and_a_non_zero_exit(reserved_port: socket.socket, tmp_path: Path) -> None:
    port = reserved_port.getsockname()[1]
    proc = client(port, cwd=tmp_path)
    _out, err = proc.communicate(b"hola\n", timeout=20)
    assert proc.returncode == 1
    text = err.decode().strip()
    assert text == f"chat-client: cannot connect to 127.0.0.1:{port}: connection refused (is the server running?)"


def test_retry_waits_for_the_server_to_come_up(
    reserved_port: socket.socket, start_server: Start, tmp_path: Path
) -> None:
    port = reserved_port.getsockname()[1]
    proc = client(port, "--retry", "8", cwd=tmp_path)
    assert proc.stdin is not None and proc.stderr is not None
    err = Lines(proc.stderr)
    err.wait("retry 2/8")
    reserved_port.close()
    server = start_server(port=port)
    proc.stdin.write(b"late but stored\n")
    proc.stdin.close()
    assert proc.wait(30) == 0, err.text()
    assert [r[1] for r in rows(server.db)] == ["late but stored"]


class AckThief:
    """A TCP relay that, on its first connection, swallows the first ack and resets the client.

    The message is committed but the client never learns it: only a resend with the same client
    message id can make the outcome certain without storing it twice.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.stolen = threading.Event()
        self.threads: list[threading.Thread] = []
        self.socks: list[socket.socket] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while True:
            try:
                down, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            up = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
            down.settimeout(10)
            self.socks += [down, up]
            thief = self.connections == 1
            for src, dst, steal in ((down, up, False), (up, down, thief)):
                t = threading.Thread(target=self._pump, args=(src, dst, steal), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, steal: bool) -> None:
        buf = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if not steal:
                    dst.sendall(data)
                    continue
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.startswith(b"Mensaje recibido:"):
                        self.stolen.set()
                        dst.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        dst.shutdown(socket.SHUT_RD)  # wake the other pump, so the close below is the last one
                        dst.close()
                        src.close()
                        return
                    dst.sendall(line + b"\n")
        except OSError:
            return

    def close(self) -> None:
        self.listener.close()
        for s in self.socks:
            s.close()
        self._accept.join(5)
        for t in self.threads:
            t.join(5)


def test_a_lost_ack_is_resent_with_its_id_and_stored_once(server: ServerProcess, tmp_path: Path) -> None:
    thief = AckThief(server.port)
    try:
        proc = client(thief.port, "--retry", "5", cwd=tmp_path)
        out, err = proc.communicate(b"exactly once\n", timeout=30)
        assert proc.returncode == 0, err
        assert thief.stolen.is_set() and thief.connections == 2
        assert b"resending 1 unacknowledged" in err
        assert b"(already stored)" in out
    finally:
        thief.close()
    [row] = rows(server.db)
    assert row[1] == "exactly once"


def test_server_killed_and_restarted_nothing_lost_nothing_duplicated(start_server: Start, tmp_path: Path) -> None:
    server = start_server()
    proc = client(server.port, "--retry", "10", cwd=tmp_path)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    proc.stdin.write(b"".join(f"before {i}\n".encode() for i in range(5)))
    proc.stdin.flush()
    wait_for(lambda: out.text().count("Mensaje recibido:") == 5, what="five acks")
    server.stop("kill")
    proc.stdin.write(b"".join(f"during {i}\n".encode() for i in range(5)))
    proc.stdin.flush()
    err.wait("connection lost|retry")
    again = start_server(port=server.port)
    proc.stdin.close()
    assert proc.wait(30) == 0, err.text()
    texts = sorted(r[1] for r in rows(again.db))
    assert texts == sorted([f"before {i}" for i in range(5)] + [f"during {i}" for i in range(5)])
