"""Interactive chat client: stdin lines go to the server; acks and other clients' messages print as they arrive.

Run ``python -m chat.client --help``. Type a line and press Enter to send it; type ``éxito``
(or ``/quit``) to leave, or end stdin (Ctrl+D). Every message carries a client message id, so
with ``--retry N`` a dropped connection is re-established and the unacknowledged messages are
sent again without ever being stored twice.

Exit codes: 0 every message acknowledged; 1 the server could not be reached, the connection
was lost, or some message was not confirmed; 2 bad command line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from chat import protocol as p

EXIT_OK = 0
EXIT_FAILED = 1
RETRYABLE = frozenset({p.E_STORE, p.E_BUSY})


class Outstanding:
    """The messages sent but not yet acknowledged, in send order (no sockets in here)."""

    def __init__(self, session: str | None = None) -> None:
        """Start an empty record; ``session`` prefixes every client message id."""
        self.session = session or secrets.token_hex(8)  # ids are unique per address for ever: make clashes unlikely
        self._seq = 0
        self.unacked: dict[str, str] = {}
        self.acked = 0
        self.failed = 0

    def next_cid(self) -> str:
        """The client message id the next message will carry."""
        return f"{self.session}-{self._seq + 1}"

    def record(self, cid: str, text: str) -> None:
        """Remember a message about to be sent under ``cid`` (from ``next_cid``)."""
        self._seq += 1
        self.unacked[cid] = text

    def acknowledge(self, cid: str | None) -> bool:
        """The server stored ``cid``; False if it was not outstanding."""
        if cid is None or self.unacked.pop(cid, None) is None:
            return False
        self.acked += 1
        return True

    def give_up(self, cid: str | None) -> bool:
        """Stop waiting for ``cid``; False if it was not outstanding."""
        if cid is None or self.unacked.pop(cid, None) is None:
            return False
        self.failed += 1
        return True


def connect(host: str, port: int, retries: int, say: Callable[[str], None], timeout: float = 5.0) -> socket.socket:
    """Connect, retrying ``retries`` times with exponential backoff; raise OSError with a clear message."""
    where = f"{host}:{port}"
    attempt = 0
    while True:
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            if isinstance(exc, ConnectionRefusedError):
                reason = "connection refused (is the server running?)"
            elif isinstance(exc, socket.timeout):
                reason = f"no answer within {timeout:g} s"
            elif isinstance(exc, socket.gaierror):
                reason = f"unknown host ({exc.strerror})"
            else:
                reason = exc.strerror or str(exc)
            if attempt >= retries:
                raise OSError(f"cannot connect to {where}: {reason}") from exc
            delay = min(0.2 * 2**attempt, 5.0)
            attempt += 1
            say(f"cannot connect to {where}: {reason}; retry {attempt}/{retries} in {delay:.1f} s")
            time.sleep(delay)


class ChatClient:
    """One user's session with the server, surviving dropped connections when allowed to retry."""

    def __init__(
        self, host: str, port: int, retries: int = 0, out: TextIO = sys.stdout, err: TextIO = sys.stderr
    ) -> None:
        """Prepare a client; ``open`` connects it."""
        self.host, self.port, self.retries = host, port, retries
        self.out, self.err = out, err
        self.state = Outstanding()
        self.max_line = p.DEFAULT_MAX_LINE
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._lost = threading.Event()
        self._bye = threading.Event()
        self._retry_due: list[tuple[float, str]] = []
        self._parser = p.ServerStreamParser(self.max_line)
        self._recoveries = 0  # reconnections since the last acknowledgement
        self.closed_reason = ""

    def say(self, text: str) -> None:
        """Tell the user something about the session (on stderr)."""
        print(text, file=self.err, flush=True)

    # -- connection ------------------------------------------------------------------

    def open(self) -> None:
        """Connect (with retries) and resend whatever is still unacknowledged."""
        sock = connect(self.host, self.port, self.retries, self.say)
        sock.settimeout(5.0)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._sock = sock
            self._lost.clear()
            self._bye.clear()
            pending = list(self.state.unacked.items())
        self._reader = threading.Thread(target=self._read, args=(sock,), name="chat-client-reader", daemon=True)
        self._reader.start()
        if pending:
            self.say(f"resending {len(pending)} unacknowledged message(s)")
        for cid, text in pending:
            try:
                self._send(p.encode_message(text, cid, self.max_line))
            except ValueError as exc:  # the server now takes shorter lines
                self.say(f"not sent again: {exc}")
                with self._settled:
                    self.state.give_up(cid)

    def close(self) -> None:
        """Close the connection and join the reader."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._reader is not None:
            self._reader.join(5.0)

    def _send(self, data: bytes) -> None:
        with self._lock:
            sock = self._sock
        if sock is None:
            return
        try:
            sock.sendall(data)
        except OSError:
            self._lost.set()  # the reader will notice too; the message stays unacknowledged

    def recover(self) -> bool:
        """After a lost connection: reconnect and resend if retries are allowed; False otherwise."""
        self.close()
        if self._recoveries >= self.retries:  # a server that accepts and drops us must not keep us looping
            return False
        self._recoveries += 1
        self.say(
            f"connection lost ({self.closed_reason or 'closed'}); reconnecting ({self._recoveries}/{self.retries})"
        )
        try:
            self.open()
        except OSError as exc:
            self.say(f"chat-client: {exc}")
            return False
        return True

    # -- sending ---------------------------------------------------------------------

    def send(self, text: str) -> bool:
        """Send one chat message; False (with a message to the user) if it cannot be sent."""
        with self._lock:
            cid = self.state.next_cid()
            try:
                data = p.encode_message(text, cid, self.max_line)
            except ValueError as exc:
                self.say(f"not sent: {exc}")
                return False
            self.state.record(cid, text)
        self._send(data)
        return True

    def resend_due(self) -> None:
        """Send again the messages the server could not store earlier, once their delay is over."""
        now = time.monotonic()
        with self._lock:
            due = [cid for when, cid in self._retry_due if when <= now]
            self._retry_due = [(w, c) for w, c in self._retry_due if w > now]
            texts = [(cid, self.state.unacked[cid]) for cid in due if cid in self.state.unacked]
        for cid, text in texts:
            self._send(p.encode_message(text, cid, self.max_line))

    def wait_settled(self, timeout: float) -> bool:
        """Wait until every message is acknowledged or given up; False on timeout or lost connection."""
        deadline = time.monotonic() + timeout
        with self._settled:
            while self.state.unacked:
                left = deadline - time.monotonic()
                if left <= 0 or self._lost.is_set():
                    return False
                self._settled.wait(min(left, 0.1))
        return True

    def quit(self, timeout: float = 2.0) -> None:
        """Say goodbye and wait for the server's BYE (or the connection to end)."""
        self._send(p.encode_quit())
        deadline = time.monotonic() + timeout
        while not (self._bye.is_set() or self._lost.is_set()) and time.monotonic() < deadline:
            self._lost.wait(0.05)

    @property
    def lost(self) -> bool:
        """Whether the current connection has ended."""
        return self._lost.is_set()

    # -- the reader thread -----------------------------------------------------------

    def _read(self, sock: socket.socket) -> None:
        parser = self._parser = p.ServerStreamParser(self.max_line)
        reason = "closed by the server"
        try:
            while True:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError as exc:
                    reason = exc.strerror or str(exc)
                    break
                if not data:
                    break
                for event in parser.feed(data):
                    self._handle(event)
        finally:
            self.closed_reason = reason if not self._bye.is_set() else "goodbye"
            self._lost.set()
            with self._settled:
                self._settled.notify_all()

    def _handle(self, event: p.ServerEvent) -> None:
        if isinstance(event, p.Ack):
            with self._settled:
                self.state.acknowledge(event.cid)
                self._settled.notify_all()
            self._recoveries = 0
            dup = " (already stored)" if event.duplicate else ""
            self._print(f"{p.ACK_PREFIX} {event.ts} (id {event.row}){dup}")
        elif isinstance(event, p.Relay):
            mark = "(earlier) " if event.history else ""
            self._print(f"{mark}[{event.ts}] {event.sender}: {event.text}")
        elif isinstance(event, p.ServerError):
            if event.cid is not None and event.code in RETRYABLE and self.retries > 0:
                with self._lock:
                    self._retry_due.append((time.monotonic() + 1.0, event.cid))
                self.say(f"server: {event.detail} (will send again)")
                return
            with self._settled:
                self.state.give_up(event.cid)
                self._settled.notify_all()
            if event.code == p.E_SHUTDOWN:
                self.closed_reason = "server shutting down"
            self.say(f"server error ({event.code}): {event.detail}")
        elif isinstance(event, p.Hello):
            self.max_line = event.max_line
            self._parser.resize(event.max_line)
            self.say(f"connected to {self.host}:{self.port} as {event.you}; type messages, 'éxito' to leave")
        elif isinstance(event, p.Bye):
            self._bye.set()
        else:
            self._print(event.line)

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)


class LineReader:
    """Lines from a file descriptor, with a timeout on every wait (select), decoded as UTF-8."""

    def __init__(self, fd: int) -> None:
        """Read lines from ``fd``."""
        self.fd = fd
        self._buf = b""
        self.eof = False

    def poll(self, timeout: float) -> list[str]:
        """The complete lines that arrive within ``timeout`` (all remaining ones at end of input)."""
        if self.eof:
            return []
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return []
        data = os.read(self.fd, 65536)
        if not data:
            self.eof = True
            rest, self._buf = self._buf, b""
            return [rest.decode("utf-8", errors="replace")] if rest else []
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        return [line.rstrip(b"\r").decode("utf-8", errors="replace") for line in lines]


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    ap = argparse.ArgumentParser(
        prog="chat-client", description="Chat client: type lines to send them; 'éxito' to leave."
    )
    ap.add_argument("--host", default="127.0.0.1", help="server address (default %(default)s)")
    ap.add_argument("--port", type=int, default=5000, help="server port (default %(default)s)")
    ap.add_argument(
        "--retry",
        type=int,
        default=0,
        metavar="N",
        help="on refusal or a dropped connection, reconnect up to N times with backoff and resend",
    )
    ap.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="S",
        help="at end of input, seconds to wait for outstanding acknowledgements (default %(default)s)",
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the client until the exit word or end of input; return the exit code."""
    args = build_parser().parse_args(argv)
    client = ChatClient(args.host, args.port, max(0, args.retry))
    try:
        client.open()
    except OSError as exc:
        print(f"chat-client: {exc}", file=sys.stderr)
        return EXIT_FAILED
    stdin = LineReader(sys.stdin.fileno())
    try:
        while True:
            if client.lost and not client.recover():
                client.say(f"chat-client: connection lost ({client.closed_reason})")
                return EXIT_FAILED
            client.resend_due()
            lines = stdin.poll(0.25)
            for line in lines:
                if p.is_exit_word(line) or line.strip() == p.QUIT_COMMAND:
                    return finish(client, args.wait)
                if line.strip():
                    client.send(line)
            if stdin.eof:
                return finish(client, args.wait)
    except KeyboardInterrupt:
        client.say("interrupted")
        return EXIT_FAILED
    finally:
        client.close()


def finish(client: ChatClient, wait: float) -> int:
    """Wait for outstanding acknowledgements (reconnecting if allowed), then say goodbye."""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0 and not client.wait_settled(min(left, 0.25)):
        if client.lost and not client.recover():
            break
        client.resend_due()
    missing = len(client.state.unacked)
    if not client.lost:
        client.quit()
    if missing or client.state.failed:
        client.say(f"chat-client: {missing} message(s) unconfirmed, {client.state.failed} refused")
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
