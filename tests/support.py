"""Helpers for tests that run real server and client processes over real sockets."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from chat import protocol as p

PY = sys.executable
LISTENING = re.compile(r"listening on (?P<host>\[[^\]]+\]|[^\s:]+):(?P<port>\d+)")


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Lines:
    """Collect a pipe's lines on a thread, so tests can wait for a line without blocking forever."""

    def __init__(self, stream: IO[bytes]) -> None:
        """Start draining ``stream``."""
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.closed = False
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The first line matching ``pattern`` (regex search), waiting up to ``timeout``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise AssertionError(f"no line matching {pattern!r}; got {self.lines[-20:]!r}")
                self._cond.wait(min(left, 0.1))

    def text(self) -> str:
        """Everything read so far."""
        with self._cond:
            return "\n".join(self.lines)

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the stream to end."""
        self._thread.join(timeout)


class ServerProcess:
    """``python -m chat.server`` in a temporary directory, with its stdout and stderr collected."""

    def __init__(
        self, workdir: Path, *args: str, db: str | Path = "chat.db", port: int = 0, stdin: int | None = subprocess.PIPE
    ) -> None:
        """Start the server; ``ready`` waits for its first line."""
        self.workdir = workdir
        self.db = Path(workdir, db)
        self.cmd = [PY, "-m", "chat.server", "--host", "127.0.0.1", "--port", str(port), "--db", str(db), *args]
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=workdir,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = Lines(self.proc.stdout)
        self.err = Lines(self.proc.stderr)
        self.port = 0

    def ready(self, timeout: float = 15.0) -> ServerProcess:
        """Wait for the listening line; remember the port."""
        m = self.out.wait(LISTENING.pattern, timeout)
        self.port = int(m["port"])
        return self

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def stop(self, how: str = "sigterm", timeout: float = 5.0) -> tuple[int, float]:
        """Stop by ``sigterm``, ``sigint``, ``enter`` or ``kill``; return (exit code, seconds taken)."""
        start = time.monotonic()
        if how == "enter":
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"\n")
            self.proc.stdin.flush()
        elif how == "sigint":
            self.proc.send_signal(signal.SIGINT)
        elif how == "sigterm":
            self.proc.send_signal(signal.SIGTERM)
        elif how == "kill":
            self.proc.kill()
        else:
            raise ValueError(how)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - start

    def threads(self) -> int:
        """How many threads the server process has now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise AssertionError("no thread count")

    def fds(self) -> int:
        """How many file descriptors the server process has open now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def close(self) -> None:
        """Make sure the process is gone and its pipes closed."""
        try:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        except ProcessLookupError:
            pass
        finally:
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
            self.out.join()
            self.err.join()


class LineClient:
    """A raw socket client speaking the reference protocol, for tests."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        """Connect and read the HELLO line."""
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.parser = p.ServerStreamParser()
        self.events: list[p.ServerEvent] = []
        self.eof = False
        hello = self.next()
        assert isinstance(hello, p.Hello), hello
        self.name = hello.you

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def next(self) -> p.ServerEvent:
        """The next server event (raises on timeout or end of stream)."""
        while not self.events:
            data = self.sock.recv(65536)
            if not data:
                self.eof = True
                raise EOFError("server closed the connection")
            self.events.extend(self.parser.feed(data))
        return self.events.pop(0)

    def next_of(self, kind: type, skip: Sequence[type] = (p.Relay,)) -> Any:
        """The next event of ``kind``, skipping events of the ``skip`` kinds."""
        while True:
            ev = self.next()
            if isinstance(ev, kind):
                return ev
            assert isinstance(ev, tuple(skip)), ev

    def drain(self) -> list[p.ServerEvent]:
        """Every event until the server closes the connection."""
        out = []
        try:
            while True:
                out.append(self.next())
        except EOFError:
            return out

    def rst(self) -> None:
        """Close abruptly with a TCP reset."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.sock.close()

    def close(self) -> None:
        """Close normally."""
        self.sock.close()


def rows(db: Path) -> list[tuple[Any, ...]]:
    """Every row of ``mensajes`` as (id, contenido, fecha_envio, ip_cliente, id_cliente), by id."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT id, contenido, fecha_envio, ip_cliente, id_cliente FROM mensajes ORDER BY id"
        ).fetchall()


def free_port() -> int:
    """A port that was free a moment ago (bind to port 0 and close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def count_short_way(monkeypatch: Any) -> list[int]:
    """Count the messages simulated clients send the short way (``SimClient._plain_send``); the list grows by one each."""
    from harness.clients import SimClient

    taken: list[int] = []
    plain = SimClient._plain_send

    def counted(self: SimClient, op: Any) -> tuple[str, bytes] | None:
        taken.append(1)
        return plain(self, op)

    monkeypatch.setattr(SimClient, "_plain_send", counted)
    return taken
