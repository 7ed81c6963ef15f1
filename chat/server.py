"""Reference threaded TCP chat server: one thread per client, every message committed to SQLite.

Run ``python -m chat.server --help``. The first line on stdout names the address actually
bound (``chat-server listening on HOST:PORT ...``). Press Enter (when stdin is a terminal or a
pipe), Ctrl+C or send SIGTERM to stop: the server stops accepting, finishes the commits in
flight, acknowledges them, tells every client, closes the sockets, joins its threads and exits 0.

Threads: the main thread waits for a stop request; one accept thread; one writer thread owns the
database (see ``chat.store.Writer``); per client, one reader thread (parses lines, submits
messages). Answers and relays are written to a client without blocking; only if a client falls
behind is a sender thread started for it, to drain its bounded outbox, so a client that does not
read can only ever block itself.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import select
import signal
import socket
import sqlite3
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from chat import protocol as p
from chat.store import NewMessage, Outcome, Store, Stored, StoreError, Writer

log = logging.getLogger("chat.server")

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_LISTEN = 2
EXIT_DATABASE = 3
SWITCH_INTERVALS = (1e-4, 60.0)  # seconds: outside, CPython rounds the interval to 0 or it is pointless


@dataclass
class Config:
    """Everything the server can be told on its command line."""

    host: str = "127.0.0.1"
    port: int = 5000
    db: str = "chat.db"
    max_clients: int = 1024
    idle_timeout: float = 600.0
    max_line: int = p.DEFAULT_MAX_LINE
    history: int = 0
    relay: bool = True
    busy_timeout: float = 5.0
    backlog: int = 1024
    send_timeout: float = 5.0
    outbox_bytes: int = 4 << 20
    ack_wait: float = 10.0
    shutdown_budget: float = 1.5
    switch_interval: float = 0.5


class ListenError(Exception):
    """The listening socket cannot be set up (port in use, no permission, bad address)."""


def format_address(host: str, port: int) -> str:
    """``host:port``, with IPv6 hosts in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def open_listener(host: str, port: int, backlog: int) -> socket.socket:
    """Bind and listen on ``host:port`` (SO_REUSEADDR on); raise ListenError with a clear reason."""
    where = format_address(host, port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {where}: unknown host ({exc.strerror})") from exc
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason = "address already in use (is another server running on that port?)"
        elif exc.errno == errno.EACCES:
            reason = "permission denied (ports below 1024 need privileges)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            reason = "address not available on this machine"
        else:
            reason = exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {where}: {reason}") from exc
    return sock


class Outbox:
    """The bytes waiting to be sent to one client, bounded in size.

    ``post`` first writes straight to the socket without blocking: the usual case, a client
    that keeps up, needs no other thread. Whatever does not fit is queued, and the first time
    that happens ``on_backlog`` is called to start the session's sender thread, the only one
    that ever blocks on this client (and only up to the send timeout). Everything posted is
    whole lines, and the stream stays line-aligned even when a lagging client is dropped.
    """

    def __init__(self, sock: socket.socket, limit: int, on_backlog: Callable[[], None]) -> None:
        """Queue for ``sock`` (which must have a timeout, so its descriptor is non-blocking)."""
        assert sock.gettimeout(), "the fast path needs a non-blocking descriptor"
        self._fd = sock.fileno()
        self.limit = limit
        self._on_backlog = on_backlog
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._sending = False  # the sender thread is writing chunks it took
        self._mid_line = False  # the first queued chunk starts in the middle of a line
        self.sender_requested = False  # on_backlog was called
        self._closed = False

    def _write_now(self, data: bytes) -> bytes:
        """Write what the socket takes without waiting (lock held, nothing queued); return the rest."""
        try:
            sent = os.write(self._fd, data)
        except BlockingIOError:
            return data
        except OSError:
            return b""  # connection broken: the reader will see it and end the session
        if 0 < sent < len(data):
            self._mid_line = data[sent - 1 : sent] != b"\n"
        return data[sent:]

    def _queue(self, data: bytes) -> bool:
        """Queue ``data`` (lock held); whether the sender thread must be started now."""
        self._chunks.append(data)
        self._size += len(data)
        self._cond.notify()
        start, self.sender_requested = not self.sender_requested, True
        return start

    def post(self, data: bytes) -> bool:
        """Send or queue ``data``; False if the client is already behind by more than the limit.

        One post is always accepted when nothing is queued (a large history or relay batch for a
        client that keeps up); posts after ``close`` are dropped.
        """
        with self._cond:
            if self._closed:
                return True
            if not self._chunks and not self._sending:
                data = self._write_now(data)
                if not data:
                    return True
            elif self._size + len(data) > self.limit:
                return False
            start = self._queue(data)
        if start:
            self._on_backlog()
        return True

    def close(self, final: bytes = b"", discard: bool = False) -> None:
        """Accept nothing more; ``final`` is sent last (``discard`` drops what is queued, keeping lines whole)."""
        start = False
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if discard:
                head = self._chunks[0] if self._chunks and self._mid_line else b""
                self._chunks.clear()
                self._size = 0
                if head:  # finish the line already half sent, so the final line stands on its own
                    self._chunks.append(head[: head.find(b"\n") + 1] or head)
                    self._size = len(self._chunks[0])
            if final and not self._chunks and not self._sending:
                final = self._write_now(final)
            if final:
                start = self._queue(final)
            self._cond.notify()
        if start:
            self._on_backlog()

    def take(self, timeout: float, max_bytes: int = 256 * 1024) -> bytes | None:
        """For the sender: up to about ``max_bytes`` of queued chunks; b"" on timeout; None when closed and drained.

        Call ``sent`` once the returned bytes are written.
        """
        with self._cond:
            if not self._chunks and not self._closed:
                self._cond.wait(timeout)
            if not self._chunks:
                return None if self._closed else b""
            out = [self._chunks.popleft()]
            size = len(out[0])
            while self._chunks and size + len(self._chunks[0]) <= max_bytes:
                out.append(self._chunks.popleft())
                size += len(out[-1])
            self._size -= size
            self._sending = True
            self._mid_line = False
            return b"".join(out)

    def sent(self) -> None:
        """The sender finished writing what it took."""
        with self._cond:
            self._sending = False


class Session:
    """One connected client: its socket, its outbox, its reader thread (and a sender thread when it lags)."""

    RECV_SIZE = 65536

    def __init__(self, server: ChatServer, sock: socket.socket, addr: tuple[str, int]) -> None:
        """Wrap an accepted connection; ``start`` launches its reader."""
        self.server = server
        self.sock = sock
        self.ip, self.port = addr[0], addr[1]
        self.name = format_address(self.ip, self.port)
        self.outbox = Outbox(sock, server.config.outbox_bytes, self._start_sender)
        self._pending = 0  # messages submitted whose answer is not queued yet
        self._pending_lock = threading.Lock()
        self._all_answered: threading.Event | None = None  # set up only when the reader waits
        self._final: bytes = b""
        self.reader = threading.Thread(target=self._read, name=f"read {self.name}", daemon=True)
        self.sender: threading.Thread | None = None
        self._sender_ready = threading.Event()  # set once a requested sender has started (or failed to)
        self.left = False  # no longer a relay member (guarded by the server's lock)

    def start(self) -> None:
        """Start serving the client."""
        self.reader.start()

    def _start_sender(self) -> None:
        sender = threading.Thread(target=self._send, name=f"send {self.name}", daemon=True)
        try:
            sender.start()
        except RuntimeError:  # no more threads: this client cannot be served
            log.warning("%s: cannot start a sender thread; dropping it", self.name)
            self.outbox.close(discard=True)
            self.interrupt()
        else:
            self.sender = sender
        finally:
            self._sender_ready.set()

    def threads(self) -> list[threading.Thread]:
        """The session's threads."""
        return [self.reader] if self.sender is None else [self.reader, self.sender]

    # -- called from other threads -------------------------------------------------

    def post(self, data: bytes) -> None:
        """Send or queue bytes for the client; a client whose outbox overflows is dropped."""
        if not self.outbox.post(data):
            log.warning("%s: not reading, outbox full: dropping it", self.name)
            self.outbox.close(p.encode_error(p.E_SLOW, "you are not reading fast enough; disconnecting"), discard=True)
            self.interrupt()

    def settled(self) -> None:
        """One submitted message has its outcome (ack or error) queued."""
        with self._pending_lock:
            self._pending -= 1
            if self._pending == 0 and self._all_answered is not None:
                self._all_answered.set()

    def interrupt(self) -> None:
        """Stop reading from the client (its reader sees end of stream)."""
        with contextlib.suppress(OSError):  # already disconnected
            self.sock.shutdown(socket.SHUT_RD)

    def abort(self) -> None:
        """Cut the connection in both directions (used when a shutdown runs out of time)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    # -- the reader thread -----------------------------------------------------------

    def _read(self) -> None:
        server = self.server
        cfg = server.config
        reset = False
        try:
            if not server.writer.call(partial(server.join, self), timeout=cfg.ack_wait):
                self._final = p.encode_error(p.E_BUSY, "server overloaded, try again later")
                return
            parser = p.ClientStreamParser(cfg.max_line)
            last = time.monotonic()
            while True:
                try:
                    data = self.sock.recv(self.RECV_SIZE)
                except TimeoutError:
                    if time.monotonic() - last >= cfg.idle_timeout:
                        self._final = p.encode_error(p.E_IDLE, f"idle for {cfg.idle_timeout:g} s; disconnecting")
                        return
                    continue
                except OSError:  # reset by peer, or cut by abort()
                    reset = True
                    return
                if not data:
                    dropped = parser.framer.discard_partial()
                    if dropped:
                        log.info("%s: closed mid-line, %d bytes dropped", self.name, dropped)
                    return
                last = time.monotonic()
                for event in parser.feed(data):
                    if isinstance(event, p.Message):
                        self._submit(event)
                    elif isinstance(event, p.Quit):
                        self._final = p.encode_bye("goodbye")
                        return
                    else:
                        self._answer_in_order(p.encode_error(event.code, event.detail, event.cid))
        finally:
            self._finish(reset)

    def _submit(self, event: p.Message) -> None:
        with self._pending_lock:
            self._pending += 1
        message = NewMessage(event.text, self.ip, self.port, self.name, event.cid)
        if not self.server.writer.submit(self, message, timeout=self.server.config.ack_wait):
            self.settled()
            self.post(p.encode_error(p.E_BUSY, "server overloaded: not stored, send again", event.cid))

    def _answer_in_order(self, line: bytes) -> None:
        """Queue an error behind the acks of earlier lines, so answers keep the order of the lines."""
        with self._pending_lock:
            self._pending += 1

        def answer(_store: Store) -> None:
            self.post(line)
            self.settled()

        if not self.server.writer.call(answer, timeout=self.server.config.ack_wait):
            # Overloaded: only "busy" may jump the queue (docs/protocol.md); the line is not stored either way.
            self.post(p.encode_error(p.E_BUSY, "server overloaded: not stored, send again"))
            self.settled()

    def _finish(self, reset: bool) -> None:
        server = self.server
        server.leave(self)
        if not reset:
            # Acknowledge what was already received before saying goodbye.
            deadline = time.monotonic() + server.config.ack_wait
            with self._pending_lock:
                if self._pending:
                    self._all_answered = threading.Event()
            while self._all_answered is not None and not self._all_answered.wait(0.1):
                if time.monotonic() >= min(deadline, server.deadline):
                    break
        if server.stopping.is_set() and not self._final:
            self._final = p.encode_error(p.E_SHUTDOWN, "server shutting down")
        self.outbox.close(self._final)
        if self.outbox.sender_requested:  # started on another thread: wait for it to exist, then to finish
            self._sender_ready.wait(5)
            if self.sender is not None:
                self.sender.join(server.config.send_timeout + 1)
        try:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)  # a clean end of stream after the last line
            self.sock.close()
        finally:
            server.forget(self)

    # -- the sender thread -----------------------------------------------------------

    def _send(self) -> None:
        try:
            while True:
                data = self.outbox.take(timeout=1.0)
                if data is None:
                    break
                if data:
                    self.sock.sendall(data)
                    self.outbox.sent()
        except OSError as exc:
            why = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            log.warning("%s: cannot send (%s); dropping it", self.name, why)
            self.outbox.close(discard=True)
            self.interrupt()


class ChatServer:
    """The listener, the sessions, the writer and the relay between them."""

    def __init__(self, config: Config, store: Store, listener: socket.socket) -> None:
        """Prepare a server over an open store and a listening socket; ``start`` runs it."""
        self.config = config
        self.store = store
        self.listener = listener
        host, port = listener.getsockname()[:2]
        self.address = format_address(host, port)
        self.writer = Writer(store, self.publish)
        self.stopping = threading.Event()
        self.deadline = float("inf")
        self._lock = threading.Lock()
        self._sessions: set[Session] = set()
        self._members: list[Session] = []
        self._accept = threading.Thread(target=self._accept_loop, name="accept", daemon=True)

    def start(self) -> None:
        """Start the writer and the accept thread."""
        self.writer.start()
        self._accept.start()

    # -- sessions --------------------------------------------------------------------

    def _accept_loop(self) -> None:
        self.listener.settimeout(0.2)
        tick = min(self.config.idle_timeout, self.config.send_timeout)
        while not self.stopping.is_set():
            try:
                conn, addr = self.listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self.stopping.is_set():
                    break
                log.warning("accept failed: %s", exc.strerror or exc)
                self.stopping.wait(0.1)  # e.g. out of file descriptors: let sessions end
                continue
            conn.settimeout(tick)
            with contextlib.suppress(OSError):  # answers are small and must not wait for Nagle
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = Session(self, conn, addr)
            with self._lock:
                admitted = len(self._sessions) < self.config.max_clients
                if admitted:
                    self._sessions.add(session)
            if not admitted:
                self._refuse(conn, f"server full ({self.config.max_clients} clients); try again later")
                continue
            try:
                session.start()
            except RuntimeError as exc:  # the system will not give us more threads
                log.warning("cannot serve %s: %s", session.name, exc)
                self.forget(session)
                self._refuse(conn, "server out of resources; try again later", p.E_BUSY)

    @staticmethod
    def _refuse(conn: socket.socket, detail: str, code: str = p.E_FULL) -> None:
        try:
            conn.settimeout(1.0)
            conn.sendall(p.encode_error(code, detail))
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            conn.close()

    def join(self, session: Session, store: Store) -> None:
        """On the writer thread: add a new client to the relay, greet it, replay history.

        Greeting from here means that once a client reads HELLO, every message committed after
        that is relayed to it: nothing falls between joining and the first relay. A client that
        already left (it closed before the writer got here) is not added.
        """
        with self._lock:
            if session.left:
                return
            self._members.append(session)
        session.post(p.encode_hello(session.name, self.config.max_line))
        if self.config.history:
            try:
                rows = store.recent(self.config.history)
            except sqlite3.Error as exc:
                log.warning("%s: no history replayed: %s", session.name, exc)
                return
            if rows:
                session.post(
                    b"".join(p.encode_relay(r.id, r.fecha_envio, r.remitente, r.contenido, history=True) for r in rows)
                )

    def leave(self, session: Session) -> None:
        """Stop relaying to a session (for good: a join still queued for it will not add it)."""
        with self._lock:
            session.left = True
            if session in self._members:
                self._members.remove(session)

    def forget(self, session: Session) -> None:
        """A session has ended and closed its socket."""
        with self._lock:
            self._sessions.discard(session)

    def publish(self, results: Sequence[tuple[object, NewMessage, Outcome]]) -> None:
        """On the writer thread, after a commit: relay new rows in log order, then answer each sender.

        Relaying first means that when a sender reads its ack, the message is already on its way
        to every other member: a member that leaves after that still receives it.
        """
        relays: list[tuple[Session, bytes]] = []
        for tag, message, outcome in results:
            if isinstance(outcome, Stored) and not outcome.duplicate:
                line = p.encode_relay(outcome.id, outcome.fecha_envio, message.remitente, outcome.contenido)
                relays.append((tag, line))  # type: ignore[arg-type]
        if relays and self.config.relay:
            self.relay(relays)
        for tag, message, outcome in results:
            session = tag
            assert isinstance(session, Session)
            if isinstance(outcome, Stored):
                session.post(p.encode_ack(outcome.id, outcome.fecha_envio, message.id_cliente, outcome.duplicate))
            else:
                session.post(p.encode_error(outcome.code, outcome.reason, message.id_cliente))
            session.settled()

    def relay(self, relays: Sequence[tuple[Session, bytes]]) -> None:
        """Send each (origin, line) to every member but its origin: one post per member, never blocking."""
        with self._lock:
            members = list(self._members)
        origins = {s for s, _ in relays}
        everything = b"".join(line for _, line in relays)
        for member in members:
            if member in origins:
                data = b"".join(line for s, line in relays if s is not member)
                if data:
                    member.post(data)
            else:
                member.post(everything)

    @property
    def client_count(self) -> int:
        """Sessions currently open."""
        with self._lock:
            return len(self._sessions)

    # -- shutdown --------------------------------------------------------------------

    def shutdown(self) -> bool:
        """Stop accepting, settle in-flight messages, tell clients, join every thread; True if clean.

        Takes at most ``shutdown_budget`` seconds for the polite part and about 0.4 s more.
        """
        self.deadline = time.monotonic() + self.config.shutdown_budget
        self.stopping.set()
        self.writer.refuse_new()  # wakes readers waiting for room in the writer's queue
        self._accept.join(0.5)
        self.listener.close()
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            s.interrupt()
        for s in sessions:
            s.reader.join(max(0.0, self.deadline - time.monotonic()))
        late = [s for s in sessions if s.reader.is_alive()]
        for s in late:  # e.g. a client that stopped reading: stop trying to send to it
            s.abort()
        hard = time.monotonic() + 0.2
        for s in late:
            s.reader.join(max(0.0, hard - time.monotonic()))
        clean = self.writer.stop(timeout=0.2) and not self._accept.is_alive()
        if clean:
            self.store.close()  # only when no thread can touch the connection any more
        stuck = [s.name for s in sessions if any(t.is_alive() for t in s.threads())]
        if stuck:
            log.error("threads still running for %s", ", ".join(stuck[:5]))
        return clean and not stuck


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _stdin_watchable() -> bool:
    """Whether Enter on stdin should stop the server: a terminal we own, or a pipe."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    if stat.S_ISFIFO(mode):
        return True
    if os.isatty(0):
        try:
            return os.tcgetpgrp(0) == os.getpgrp()
        except OSError:
            return False
    return False


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    d = Config()
    ap = argparse.ArgumentParser(
        prog="chat-server",
        description="Threaded TCP chat server that stores every message in SQLite."
        " Stop it with Enter, Ctrl+C or SIGTERM.",
    )
    ap.add_argument("--host", default=d.host, help="address to listen on (default %(default)s)")
    ap.add_argument("--port", type=int, default=d.port, help="TCP port, 0 picks a free one (default %(default)s)")
    ap.add_argument("--db", default=d.db, help="SQLite file of the log (default %(default)s)")
    ap.add_argument(
        "--max-clients", type=int, default=d.max_clients, help="connections served at once (default %(default)s)"
    )
    ap.add_argument(
        "--idle-timeout",
        type=float,
        default=d.idle_timeout,
        help="seconds of silence before a client is disconnected (default %(default)s)",
    )
    ap.add_argument(
        "--max-line", type=int, default=d.max_line, help="longest accepted line in bytes (default %(default)s)"
    )
    ap.add_argument(
        "--history",
        type=int,
        default=d.history,
        help="stored messages replayed to a client when it joins (default %(default)s)",
    )
    ap.add_argument(
        "--busy-timeout",
        type=float,
        default=d.busy_timeout,
        help="seconds a write waits for another process's lock on the database before refusing the message"
        " (default %(default)s)",
    )
    ap.add_argument(
        "--switch-interval",
        type=float,
        default=d.switch_interval,
        help="seconds a thread may run before one waiting for the interpreter lock asks for it"
        " (CPython's default is 0.005; default %(default)s, see README)",
    )
    ap.add_argument("--no-relay", dest="relay", action="store_false", help="do not forward messages to other clients")
    ap.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until Enter, SIGINT or SIGTERM; return the exit code."""
    args = build_parser().parse_args(argv)
    for name in ("max_clients", "idle_timeout", "max_line", "busy_timeout", "switch_interval"):
        if getattr(args, name) <= 0:
            print(f"chat-server: --{name.replace('_', '-')} must be positive", file=sys.stderr)
            return EXIT_LISTEN
    if not SWITCH_INTERVALS[0] <= args.switch_interval <= SWITCH_INTERVALS[1]:  # NaN fails too
        low, high = SWITCH_INTERVALS
        print(f"chat-server: --switch-interval must be between {low:g} and {high:g} seconds", file=sys.stderr)
        return EXIT_LISTEN
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s chat-server %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    config = Config(
        host=args.host,
        port=args.port,
        db=args.db,
        max_clients=args.max_clients,
        idle_timeout=args.idle_timeout,
        max_line=args.max_line,
        history=max(0, args.history),
        relay=args.relay,
        busy_timeout=args.busy_timeout,
        switch_interval=args.switch_interval,
    )
    try:
        listener = open_listener(config.host, config.port, config.backlog)
    except ListenError as exc:
        print(f"chat-server: {exc}", file=sys.stderr)
        return EXIT_LISTEN
    try:
        store = Store(config.db, busy_timeout=config.busy_timeout)
    except StoreError as exc:
        listener.close()
        print(f"chat-server: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    # Every thread waiting for the interpreter lock wakes once per switch interval to ask for it:
    # with 10,000 clients leaving at once, CPython's 5 ms kept both cores busy with those wake-ups
    # and the server took 24 s to over 2 minutes to end their threads (2.1 s at 0.5 s). Threads
    # here block on I/O (and so hand the lock over) long before a longer interval runs out.
    sys.setswitchinterval(config.switch_interval)
    return run(ChatServer(config, store, listener))


def run(server: ChatServer) -> int:
    """Serve until a stop request, then shut down; the main thread's loop."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    watch = [wake_r] + ([0] if _stdin_watchable() else [])
    old_wakeup = signal.set_wakeup_fd(wake_w)
    old_handlers = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(
            f"chat-server listening on {server.address} (db {server.store.path}); stop with Enter, Ctrl+C or SIGTERM",
            flush=True,
        )
        reason = ""
        while not reason:
            ready, _, _ = select.select(watch, [], [], 0.5)
            if wake_r in ready:
                last = os.read(wake_r, 64)[-1:]
                reason = signal.Signals(last[0]).name if last and last[0] else "request"
            if 0 in ready:
                try:
                    data = os.read(0, 4096)
                except OSError:
                    data = b""
                if not data:
                    watch.remove(0)  # stdin closed: keep serving, stop only by signal
                elif b"\n" in data:
                    reason = "Enter"
            if server.writer.error is not None:
                reason = f"writer failed: {server.writer.error}"
        log.info("stopping (%s) with %d client(s) connected", reason, server.client_count)
        clean = server.shutdown()
        print(f"chat-server stopped ({reason})", flush=True)
        if server.writer.error is not None:
            return EXIT_FATAL
        return EXIT_OK if clean else EXIT_FATAL
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        os.close(wake_r)
        os.close(wake_w)


if __name__ == "__main__":
    sys.exit(main())
