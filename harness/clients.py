"""Simulated clients: execute a Plan with real threads and sockets, recording everything in the history.

One thread per simulated client; every socket operation has a timeout. Each message carries a
unique token ``[RUN.CLIENT.SEQ]`` at the start of its text, so every stored row maps back to
exactly one send. With a wire that has message ids (``chat``) the token doubles as the id and a
reconnecting client resends what is unacknowledged; without ids (``pfo1``) a token is never sent
twice, so any second row is the server's doing.

History records written here (``f`` field):
``connect`` invoke/ok/fail; ``send`` invoke, then ok (acked), fail (refused) or info (unknown);
``conn-end`` info with why the connection ended, when it joined (``hello``) and began to end
(``end``), and the relays it received; ``server-error`` info for errors not tied to a message.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.audit import Auditor
from harness.faults import FaultProxy
from harness.history import FAIL, INFO, INVOKE, OK, History
from harness.plan import (
    CLOSE,
    EXIT,
    HALF_CLOSE,
    HALF_RESET,
    NO_READ,
    PAUSE,
    RAW,
    RECONNECT,
    RESET,
    SEND,
    TRICKLE,
    ClientPlan,
    Op,
    Plan,
)
from harness.wire import ACK, BYE, ERROR, HELLO, RELAY, Wire

RST_LINGER = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {on, 0 s}: close() sends RST
#: Errors about the connection rather than one line; every other error answers one line, in order.
CONNECTION_ERRORS = frozenset({"full", "idle", "slow", "shutdown"})


def token_text(run_id: str, client: int, seq: int, body: str) -> tuple[str, str]:
    """The token and the full text of a message."""
    token = f"{run_id}.{client}.{seq}"
    return token, f"[{token}] {body}" if body else f"[{token}]"


@dataclass
class Options:
    """Timeouts and limits for simulated clients."""

    connect_timeout: float = 5.0
    ack_timeout: float = 10.0
    io_timeout: float = 10.0
    close_timeout: float = 5.0
    poll: float = 1.0  # longest a read waits before looking at the clock and the stop flag


@dataclass
class Context:
    """What every simulated client of a run shares."""

    host: str
    port: int
    wire: Wire
    history: History
    run_id: str
    options: Options = field(default_factory=Options)
    auditor: Auditor | None = None
    proxy: FaultProxy | None = None  # clients name their connections to it, for seeded fault decisions
    stop: threading.Event = field(default_factory=threading.Event)
    t0: float = 0.0
    _conns: itertools.count[int] = field(default_factory=itertools.count)

    def next_conn(self) -> int:
        """A run-wide connection number."""
        return next(self._conns)


class Broken(Exception):
    """The connection ended (reset, closed by the server, timed out)."""


class SimClient:
    """One simulated client executing its part of a plan."""

    def __init__(self, index: int, plan: ClientPlan, ctx: Context) -> None:
        """Prepare client ``index``; ``run`` executes it (on the calling thread)."""
        self.index = index
        self.plan = plan
        self.ctx = ctx
        self.h = ctx.history
        self.wire = ctx.wire
        self.seq = 0
        self.sock: socket.socket | None = None
        self.conn = -1
        self.decoder = self.wire.decoder()
        self.hello_at: float | None = None
        self.outstanding: OrderedDict[str, str] = OrderedDict()  # sent on this connection, no answer yet
        self.unacked: OrderedDict[str, str] = OrderedDict()  # ids wire: not acked, resent on reconnect
        self.relays: list[list[Any]] = []
        self.ended = False  # the server ended the session (BYE or EOF)
        self.eof_at: float | None = None
        self.last_error = ""
        self.last_send = -1e9
        self.connects = 0

    # -- plan execution ----------------------------------------------------------

    def run(self) -> None:
        """Execute the plan, then close politely."""
        try:
            if self.ctx.stop.wait(max(0.0, self.ctx.t0 + self.plan.start - time.monotonic())):
                return
            ops, i = self.plan.ops, 0
            while i < len(ops) and not self.ctx.stop.is_set():
                j = i + 1
                if ops[i].kind == SEND and ops[i].pipelined and self.wire.pipelining:
                    # Back-to-back sends go out in one write, as a buffering client's would, so
                    # the server sees them together every time (framing defects reproduce).
                    while j < len(ops) and ops[j].kind == SEND and ops[j].pipelined:
                        j += 1
                    if j < len(ops) and ops[j].kind == SEND:
                        j += 1
                self.step(*ops[i:j])
                i = j
            if self.sock is not None:
                self.close("close")
        except Exception as exc:  # a harness bug must not hide as a server anomaly
            self.h.add(INFO, "client-error", self.index, self.conn, error=repr(exc))
        finally:
            if self.sock is not None:
                self._drop("harness-error")

    def step(self, op: Op, *more: Op) -> None:
        """Perform one operation (or several sends in one write); a connection that breaks is recorded and dropped."""
        try:
            if op.kind == SEND:
                self.send(op, *more)
            else:
                self._step(op)
        except Broken as exc:
            if self.sock is not None:
                self._drop(str(exc))

    def _step(self, op: Op) -> None:
        if op.kind == PAUSE:
            self.pump_until(time.monotonic() + op.seconds)
        elif op.kind == NO_READ:
            self.ctx.stop.wait(op.seconds)
        elif op.kind in (HALF_RESET, HALF_CLOSE):
            self.half_message(op)
        elif op.kind == TRICKLE:
            self.trickle(op)
        elif op.kind == RAW:
            self.raw(op)
        elif op.kind == CLOSE:
            if self.sock is not None:
                self.close("close")
        elif op.kind == RESET:
            if self.sock is not None:
                self.reset("reset")
        elif op.kind == EXIT:
            self.exit(op.text)
        elif op.kind == RECONNECT:
            if self.sock is not None:
                self.close("reconnect")
            self.connect()

    # -- connections ---------------------------------------------------------------

    def connect(self) -> bool:
        """Open a connection (and resend unacknowledged messages when the wire has ids)."""
        self.conn = self.ctx.next_conn()
        self.connects += 1
        self.h.add(INVOKE, "connect", self.index, self.conn)
        opts = self.ctx.options
        try:
            sock = self._open(opts.connect_timeout)
        except OSError as exc:
            self.h.add(FAIL, "connect", self.index, self.conn, error=_why(exc))
            return False
        sock.settimeout(opts.poll)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.decoder = self.wire.decoder()
        self.outstanding.clear()
        self.relays = []
        self.ended = False
        self.eof_at = None
        self.hello_at = None
        port = sock.getsockname()[1]
        if self.wire.greeting:
            with contextlib.suppress(Broken):
                self.pump_until(time.monotonic() + opts.ack_timeout, lambda: self.hello_at is not None)
            if self.hello_at is None:
                why = f"no greeting ({self.last_error})" if self.last_error else "no greeting"
                self.h.add(FAIL, "connect", self.index, self.conn, error=why, port=port)
                if self.sock is not None:
                    self._drop("no greeting")
                return False
        else:
            self.hello_at = self.h.now()
        self.h.add(OK, "connect", self.index, self.conn, port=port)
        if self.wire.ids and self.unacked:
            return self._transmit(list(self.unacked.items()), resend=True)
        return True

    def _open(self, timeout: float) -> socket.socket:
        """Connect; through a fault proxy, first tell it who is coming (from which source port)."""
        if self.ctx.proxy is None:
            return socket.create_connection((self.ctx.host, self.ctx.port), timeout=timeout)
        sock = socket.socket(socket.AF_INET6 if ":" in self.ctx.host else socket.AF_INET)
        port = 0
        try:
            sock.bind((self.ctx.host, 0))
            port = sock.getsockname()[1]
            self.ctx.proxy.register(port, f"{self.index}.{self.connects}")
            sock.settimeout(timeout)
            sock.connect((self.ctx.host, self.ctx.port))
        except OSError:
            if port:
                self.ctx.proxy.unregister(port)  # the port may be reused by another connection
            sock.close()
            raise
        return sock

    def _ensure(self) -> bool:
        if self.sock is None or self.ended:
            if self.sock is not None:
                self._drop("ended by server")
            return self.connect()
        return True

    def _end_record(self, reason: str, end_at: float) -> None:
        self.h.add(
            INFO,
            "conn-end",
            self.index,
            self.conn,
            reason=reason,
            hello=self.hello_at,
            end=end_at,
            relays=self.relays,
        )

    def _drop(self, reason: str) -> None:
        """The connection is gone: what is outstanding becomes unknown."""
        end_at = self.eof_at if self.eof_at is not None else self.h.now()
        for token in self.outstanding:
            self.h.add(INFO, "send", self.index, self.conn, token=token, error=reason)
        self.outstanding.clear()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._end_record(reason, end_at)

    def _await_answers(self, during: str) -> bool:
        """Wait for the answers to what is outstanding; False (connection dropped) if it broke meanwhile."""
        try:
            self.pump_until(time.monotonic() + self.ctx.options.ack_timeout, lambda: not self.outstanding)
        except (Broken, OSError) as exc:
            self._drop(f"broken during {during}: {_why(exc)}")
            return False
        return True

    def close(self, reason: str) -> None:
        """Polite close: wait for outstanding answers, send FIN, read until the server closes."""
        assert self.sock is not None
        if not self._await_answers("close"):
            return
        if self.ended:
            self._drop("closed by the server")
            return
        if not self._then_server_closes(reason, lambda: self.sock.shutdown(socket.SHUT_WR)):  # type: ignore[union-attr]
            self._drop("server did not close within the close timeout")

    def _then_server_closes(self, reason: str, act: Callable[[], object]) -> bool:
        """Do ``act``, then read until the server closes; record the end. False if it did not close in time."""
        end_at = self.h.now()
        try:
            act()
            self.pump_until(time.monotonic() + self.ctx.options.close_timeout, lambda: self.ended)
        except (Broken, OSError) as exc:
            self._drop(f"broken during {reason}: {_why(exc)}")
            return True
        if not self.ended:
            return False
        assert self.sock is not None
        self.sock.close()
        self.sock = None
        self._end_record(reason, end_at)
        return True

    def reset(self, reason: str) -> None:
        """Abrupt close with RST."""
        assert self.sock is not None
        end_at = self.h.now()
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
        for token in self.outstanding:
            self.h.add(INFO, "send", self.index, self.conn, token=token, error="reset by client")
        self.outstanding.clear()
        self.sock.close()
        self.sock = None
        self._end_record(reason, end_at)

    def exit(self, spelling: str = "") -> None:
        """Send the exit word (or another spelling of it); the server should end the session."""
        if not self._ensure():
            return
        assert self.sock is not None
        if not self._await_answers("exit"):
            return
        self.h.add(INFO, "exit", self.index, self.conn, word=spelling or None)
        word = self.wire.frame(spelling.encode()) if spelling else self.wire.exit_bytes()
        if not self._then_server_closes("exit", lambda: self._sendall(word)):
            self.h.add(INFO, "exit-ignored", self.index, self.conn)
            self.close("close")

    # -- messages ----------------------------------------------------------------------

    def _next_token(self, body: str) -> tuple[str, str]:
        self.seq += 1
        return token_text(self.ctx.run_id, self.index, self.seq, body)

    def send(self, *ops: Op) -> None:
        """Send messages in one write; wait for the last one's answer unless it is pipelined."""
        if self.plan.pacing:
            self.pump_until(self.last_send + self.plan.pacing)
        if not self._ensure():
            return
        self.last_send = time.monotonic()
        batch = [self._next_token(op.text) for op in ops]
        if self.wire.ids:
            self.unacked.update(batch)
        if not self._transmit(batch):
            return
        if not ops[-1].pipelined or not self.wire.pipelining:
            self._await(batch[-1][0])

    def _transmit(self, batch: list[tuple[str, str]], resend: bool = False) -> bool:
        data = b"".join(self.wire.encode(text, token if self.wire.ids else None) for token, text in batch)
        for token, text in batch:
            self.h.add(INVOKE, "send", self.index, self.conn, token=token, text=text, resend=resend)
            self.outstanding[token] = text
        try:
            self._sendall(data)
        except OSError as exc:
            self._drop(f"send failed: {_why(exc)}")
            return False
        return True

    def _await(self, token: str) -> None:
        """Wait for the answer to ``token``; no answer in time drops the connection."""
        self.pump_until(time.monotonic() + self.ctx.options.ack_timeout, lambda: token not in self.outstanding)
        if token in self.outstanding:
            self._drop("no answer within the ack timeout")

    def half_message(self, op: Op) -> None:
        """Send the first half of a message's bytes, then RST (or FIN): it must never be stored."""
        if not self._ensure():
            return
        assert self.sock is not None
        token, text = self._next_token(op.text)
        data = self.wire.encode(text, token if self.wire.ids else None)
        half = data[: max(1, len(data) // 2)]
        self.h.add(INVOKE, "send", self.index, self.conn, token=token, text=text, partial=len(half))
        try:
            self._sendall(half)
        except OSError as exc:
            self._drop(f"send failed: {_why(exc)}")
            return
        if op.kind == HALF_RESET:
            self.h.add(
                INFO, "send", self.index, self.conn, token=token, error="half sent, then reset", partial=len(half)
            )
            self.reset("half-reset")
            return
        self.h.add(INFO, "send", self.index, self.conn, token=token, error="half sent, then FIN", partial=len(half))
        if not self._then_server_closes("half-close", lambda: self.sock.shutdown(socket.SHUT_WR)):  # type: ignore[union-attr]
            self._drop("server did not close after a half message and FIN")

    def trickle(self, op: Op) -> None:
        """Send a message one byte at a time, ``op.seconds`` apart, reading meanwhile; wait for its ack."""
        if not self._ensure():
            return
        token, text = self._next_token(op.text)
        if self.wire.ids:
            self.unacked[token] = text
        data = self.wire.encode(text, token if self.wire.ids else None)
        self.h.add(INVOKE, "send", self.index, self.conn, token=token, text=text, trickle=op.seconds)
        self.outstanding[token] = text
        for i in range(len(data)):
            try:
                self._sendall(data[i : i + 1])
            except OSError as exc:
                self._drop(f"send failed: {_why(exc)}")
                return
            if op.seconds:
                self.pump_until(time.monotonic() + op.seconds)
            if self.sock is None or self.ended:
                if self.sock is not None:
                    self._drop("closed by the server during a trickled message")
                return
        self._await(token)

    def raw(self, op: Op) -> None:
        """Send a token and raw bytes as one line (bad input, as is); wait for the answer."""
        if not self._ensure():
            return
        self.seq += 1
        token = f"{self.ctx.run_id}.{self.index}.{self.seq}"
        payload = f"[{token}] ".encode() + bytes.fromhex(op.data)
        text = self.wire.as_received(payload).decode("utf-8", errors="replace")
        self.h.add(INVOKE, "send", self.index, self.conn, token=token, text=text, raw=op.data)
        self.outstanding[token] = text
        try:
            self._sendall(self.wire.frame(payload))
        except OSError as exc:
            self._drop(f"send failed: {_why(exc)}")
            return
        self._await(token)

    def _sendall(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.settimeout(self.ctx.options.io_timeout)
        self.sock.sendall(data)

    # -- reading -------------------------------------------------------------------------

    def pump_until(self, deadline: float, done: Any = None) -> None:
        """Read and handle replies until ``done()`` or the deadline; raise Broken if the connection breaks."""
        while not (done is not None and done()):
            now = time.monotonic()
            if now >= deadline or self.ctx.stop.is_set():
                return
            if self.sock is None or self.ended:
                if done is not None and self.sock is not None:
                    raise Broken("connection ended by the server")
                self.ctx.stop.wait(deadline - now)
                return
            try:
                self.sock.settimeout(min(deadline - now, self.ctx.options.poll))
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise Broken(_why(exc)) from exc
            if not data:
                self.ended = True
                self.eof_at = self.h.now()
                self._settle_outstanding("connection closed by the server")
                continue
            for reply in self.decoder.feed(data):
                self.handle(reply)

    def _settle_outstanding(self, reason: str) -> None:
        for token in self.outstanding:
            self.h.add(INFO, "send", self.index, self.conn, token=token, error=reason)
        self.outstanding.clear()

    def handle(self, reply: Any) -> None:
        """Record one server reply."""
        kind = reply.kind
        if kind == ACK:
            # Answers come in the order of the lines: an ack without an id is for the oldest line.
            token = reply.cid if reply.cid is not None else next(iter(self.outstanding), None)
            if token is None or token not in self.outstanding:
                self.h.add(INFO, "stray-ack", self.index, self.conn, line=reply.line[:200], token=token)
                if token is not None and token in self.unacked:  # an ack for an earlier connection's send
                    self.unacked.pop(token)
                return
            self.outstanding.pop(token)
            self.unacked.pop(token, None)
            self.h.add(OK, "send", self.index, self.conn, token=token, row=reply.row, ts=reply.ts, dup=reply.dup)
            if self.ctx.auditor is not None:
                self.ctx.auditor.acked(token, reply.row, self.index, self.conn)
        elif kind == RELAY:
            if not reply.dup:  # HIST replays are not relays
                text = reply.text or ""
                self.relays.append([reply.row, zlib.crc32(text.encode("utf-8")), _token_of(text)])
        elif kind == ERROR:
            self.last_error = f"{reply.code} {reply.text}".strip()
            token = reply.cid
            if token is None and reply.code not in CONNECTION_ERRORS:
                token = next(iter(self.outstanding), None)
            if token is not None and token in self.outstanding:
                self.outstanding.pop(token)
                self.unacked.pop(token, None)
                self.h.add(FAIL, "send", self.index, self.conn, token=token, code=reply.code, error=reply.text)
            else:
                self.h.add(INFO, "server-error", self.index, self.conn, code=reply.code, error=reply.text)
        elif kind == HELLO:
            self.hello_at = self.h.now()
        elif kind == BYE:
            self.ended = True


def _token_of(text: str) -> str | None:
    if text.startswith("["):
        end = text.find("]")
        if end > 0:
            return text[1:end]
    return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def execute(plan: Plan, ctx: Context, timeout: float | None = None) -> list[int]:
    """Run every client of ``plan`` on its own thread; return the indexes of clients still running at the timeout."""
    ctx.t0 = time.monotonic()
    clients = [SimClient(i, c, ctx) for i, c in enumerate(plan.clients)]
    threads = [threading.Thread(target=c.run, name=f"sim-{c.index}", daemon=True) for c in clients]
    for t in threads:
        t.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    stuck = []
    for i, t in enumerate(threads):
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        t.join(left)
        if t.is_alive():
            stuck.append(i)
    if stuck:
        ctx.stop.set()
        for i in stuck:
            threads[i].join(ctx.options.io_timeout + 1)
    return stuck
