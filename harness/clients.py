"""Simulated clients: execute a Plan with real sockets; the session (sans-IO) records what happened.

Every simulated client is a coroutine on one event loop (``asyncio`` over epoll): a run of ten
thousand clients is ten thousand sockets and one thread, not ten thousand threads. Sockets are
non-blocking and every wait (connect, read, write, pause) has a deadline. Each message carries a
unique token ``[RUN.CLIENT.SEQ]`` at the start of its text, so every stored row maps back to
exactly one send. With a wire that has message ids (``chat``) the token doubles as the id and a
reconnecting client resends what is unacknowledged; without ids (``pfo1``) a token is never sent
twice, so any second row is the server's doing.

This module only moves bytes and keeps time; ``harness.session`` decides what the bytes mean and
writes the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from harness.audit import Auditor
from harness.ends import End
from harness.faults import FaultProxy
from harness.gcpause import full_collections_held
from harness.history import FAIL, INFO, History
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
from harness.session import ClientState, Session, token_text
from harness.wire import Wire

__all__ = ["Context", "Options", "SimClient", "drive", "execute", "token_text"]

RST_LINGER = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {on, 0 s}: close() sends RST
QUIET = 0.02  # seconds without data after which a held reply counts as complete
FAIR_READS = 8  # reads in a row a client may do before letting the others run
LAG_GRACE = 5  # times an answer's wait starts again because the reply stream was still unread at its end
ARRIVING = 1.0  # seconds (at most a quarter of the ack timeout) a stream caught up with has to go on


@dataclass
class Options:
    """Timeouts and limits for simulated clients."""

    connect_timeout: float = 5.0
    ack_timeout: float = 10.0
    io_timeout: float = 10.0
    close_timeout: float = 5.0
    poll: float = 1.0  # longest a read waits before looking at the clock and the stop flag
    give_up_after: int = 2  # unanswered sends in a row after which a client abandons its plan (0: never)
    give_up_seconds: float = 15.0  # ... provided they cost it this long (short timeouts under a fault do not)
    short_ack_timeout: float = 1.0  # every client's ack timeout once one client gave up on the server
    reset_after_server_close: bool | None = None  # answer a server's close with RST (None: on fixed ports)
    held_to: float | None = None  # the answer time the server is held to, when the ack timeout is shorter


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
    gate: Callable[[], object] | None = None  # called before each connect (a single-session target restarts)
    session_lock: threading.Lock | None = None  # held for a whole connection (single-session targets)
    gave_up: threading.Event = field(default_factory=threading.Event)  # a client abandoned: shorten the waits
    _conns: itertools.count[int] = field(default_factory=itertools.count)
    _address: tuple[int, tuple[Any, ...]] | None = field(default=None, init=False)  # not copied by replace()

    def address(self) -> tuple[int, tuple[Any, ...]]:
        """The server's address family and socket address (resolved once; OSError if it cannot be)."""
        if self._address is None:
            family, _, _, _, sockaddr = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
            self._address = (family, sockaddr)
        return self._address

    def next_conn(self) -> int:
        """A run-wide connection number."""
        return next(self._conns)

    @property
    def ack_timeout(self) -> float:
        """How long a client waits for an answer now."""
        opts = self.options
        return min(opts.ack_timeout, opts.short_ack_timeout) if self.gave_up.is_set() else opts.ack_timeout


class Begun(NamedTuple):
    """An answer's wait already under way: when it began, the replies heard by then, its ack timeout."""

    at: float
    heard: int
    timeout: float


class _Sent(NamedTuple):
    """A plain send the chain waits on: its op's index, its token, and its answer's wait."""

    op: int
    token: str
    begun: Begun


class _Handed(NamedTuple):
    """Where the chain of plain sends stopped: the ops before ``op`` are done, unless ``token`` says
    ops[op] is sent and awaits its answer (``begun``) or still has bytes to write (``rest``)."""

    op: int
    token: str = ""
    begun: Begun | None = None
    rest: bytes | None = None


class Broken(Exception):
    """The connection broke (reset, or an OS error); the message says how."""


class SimClient:
    """One simulated client executing its part of a plan."""

    def __init__(self, index: int, plan: ClientPlan, ctx: Context) -> None:
        """Prepare client ``index``; ``run`` executes it (on the calling thread)."""
        self.index = index
        self.plan = plan
        self.ctx = ctx
        self.h = ctx.history
        self.wire = ctx.wire
        self.state = ClientState(index, ctx.run_id)
        self.sock: socket.socket | None = None
        self.s: Session | None = None
        self.last_send = -1e9
        self.unanswered_in_a_row = 0
        self.waited_in_a_row = 0.0
        self._holding_gate = False
        self._watched: int | None = None  # the descriptor the event loop watches for this client's reads
        self._waiter: asyncio.Future[bool] | None = None  # what a read in progress waits on
        self._read: bytes | OSError | None = None  # what the event loop read for that wait, not handled yet
        self._deadline = 0.0  # when the read in progress gives up (event loop time)
        self._timer: asyncio.TimerHandle | None = None  # fires at or before ``_deadline``
        self._loop: asyncio.AbstractEventLoop  # set when ``run`` starts
        self._chain: asyncio.Future[_Handed] | None = None  # plain sends carried by the event loop's callbacks
        self._chain_ops: list[Op] = []
        self._chain_at: _Sent = _Sent(0, "", Begun(0.0, 0, 0.0))  # the send the chain waits on

    # -- plan execution ----------------------------------------------------------

    async def run(self) -> None:
        """Execute the plan, then close politely."""
        self._loop = asyncio.get_running_loop()
        try:
            if await self._sleep(self.ctx.t0 + self.plan.start - time.monotonic()):
                return
            ops, i = self.plan.ops, 0
            while i < len(ops) and not self.ctx.stop.is_set():
                if self.unanswered_in_a_row and self._abandon(len(ops) - i):
                    break
                if self._plain_at(ops, i):
                    i = await self._send_plain(ops, i)
                    continue
                j = i + 1
                if ops[i].kind == SEND and ops[i].pipelined and self.wire.pipelining and not self.wire.per_connection:
                    # Back-to-back sends go out in one write, as a buffering client's would, so
                    # the server sees them together every time (framing defects reproduce).
                    while j < len(ops) and ops[j].kind == SEND and ops[j].pipelined:
                        j += 1
                    if j < len(ops) and ops[j].kind == SEND:
                        j += 1
                await self.step(*ops[i:j])
                i = j
            if self.sock is not None:
                await self.step(Op(CLOSE))
        except Exception as exc:  # a harness bug must not hide as a server anomaly
            self.h.add(INFO, "client-error", self.index, self.s.conn if self.s else -1, error=repr(exc))
        finally:
            if self.sock is not None:
                self._finish(End.STOPPED if self.ctx.stop.is_set() else End.HARNESS_ERROR)
            self._release()

    def _abandon(self, left: int) -> bool:
        """After ``give_up_after`` unanswered sends in a row, stop knocking: the server does not answer."""
        limit = self.ctx.options.give_up_after
        if not limit or self.unanswered_in_a_row < limit or self.waited_in_a_row < self.ctx.options.give_up_seconds:
            return False
        self.h.add(INFO, "abandon", self.index, -1, unanswered=self.unanswered_in_a_row, skipped=left)
        self.ctx.gave_up.set()
        return True

    async def step(self, op: Op, *more: Op) -> None:
        """Perform one operation (or several sends in one write); a connection that breaks is recorded."""
        try:
            if op.kind == SEND:
                await self.send(op, *more)
            else:
                await self._step(op)
        except Broken as exc:
            if self.sock is not None:
                self._finish(End.RESET, str(exc))

    async def _step(self, op: Op) -> None:
        if op.kind == PAUSE:
            await self.pump_until(time.monotonic() + op.seconds)
        elif op.kind == NO_READ:
            await self._sleep(op.seconds)
        elif op.kind in (HALF_RESET, HALF_CLOSE):
            await self.half_message(op)
        elif op.kind == TRICKLE:
            await self.trickle(op)
        elif op.kind == RAW:
            await self.raw(op)
        elif op.kind == CLOSE:
            if self.sock is not None:
                await self.close(End.CLIENT_CLOSE)
        elif op.kind == RESET:
            if self.sock is not None:
                self.reset(End.CLIENT_RESET)
        elif op.kind == EXIT:
            await self.exit(op.text)
        elif op.kind == RECONNECT:
            if self.sock is not None:
                await self.close(End.RECONNECT)
            await self.connect()

    # -- connections ---------------------------------------------------------------

    def _release(self) -> None:
        if self._holding_gate and self.ctx.session_lock is not None:
            self._holding_gate = False
            self.ctx.session_lock.release()

    async def connect(self) -> bool:
        """Open a connection (and resend unacknowledged messages when the wire has ids)."""
        if self.ctx.session_lock is not None and not self._holding_gate:
            while not self.ctx.session_lock.acquire(blocking=False):  # held across awaits: poll it
                if await self._sleep(QUIET):
                    return False
            self._holding_gate = True
        conn = self.ctx.next_conn()
        if self.ctx.gate is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.ctx.gate)  # may start a server
            except Exception as exc:  # the server could not be started for this session
                self.h.add(FAIL, "connect", self.index, conn, error=f"the server could not be started: {exc}")
                self._release()
                return False
        self.state.connects += 1
        link = f"{self.index}.{self.state.connects}" if self.ctx.proxy is not None else None
        on_ack = self.ctx.auditor.acked if self.ctx.auditor is not None else None
        s = self.s = Session(self.wire, self.state, conn, self.h.append, self.h.now, link, on_ack)
        s.connecting()
        opts = self.ctx.options
        try:
            sock = await self._open(opts.connect_timeout, link)
        except OSError as exc:
            s.connect_failed(_why(exc))
            self._release()
            return False
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        port = sock.getsockname()[1]
        if self.wire.greeting:
            with contextlib.suppress(Broken):
                await self.pump_until(time.monotonic() + self.ctx.ack_timeout, lambda: s.greeted or s.ended)
            if not s.greeted and self.ctx.stop.is_set():
                self._finish(End.STOPPED, "the run's time was up")
                return False
            if not s.greeted:
                why = f"no greeting ({s.last_error})" if s.last_error else "no greeting"
                s.connect_failed(why, port)
                self._close_socket()
                self._release()
                return False
        s.connected(port)
        if self.wire.ids and self.state.unacked:
            return await self._transmit(list(self.state.unacked.items()), resend=True)
        return True

    async def _open(self, timeout: float, link: str | None) -> socket.socket:
        """Connect; through a fault proxy, first tell it who is coming (from which source port)."""
        family, address = self.ctx.address()
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        port = 0
        try:
            if self.ctx.proxy is not None and link is not None:
                sock.bind((address[0], 0))
                port = sock.getsockname()[1]
                self.ctx.proxy.register(port, link)
            await _connect(sock, address, timeout)
        except BaseException:
            if port:
                self.ctx.proxy.unregister(port)  # type: ignore[union-attr]  # the port may be reused
            sock.close()
            raise
        return sock

    async def _ensure(self) -> bool:
        """A connection that can take a message: the current one, or a new one."""
        if self.sock is not None and self.s is not None and (self.s.ended or self.s.full):
            if self.s.full and not self.s.ended:
                await self.close(End.CLIENT_CLOSE)
            else:
                self._finish(self.s.server_end())
        if self.sock is None:
            return await self.connect()
        return True

    def _close_socket(self, reset: bool = False) -> None:
        assert self.sock is not None
        unread = isinstance(self._read, bytes) and bool(self._read)  # read for the client, never handled
        self._unwatch()
        server_closed = self.s is not None and self.s.ended
        # Bytes the loop read for the client and it never handled were unread: the kernel would have
        # answered the close with RST, and it still does.
        if reset or unread or (server_closed and self.ctx.options.reset_after_server_close):
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
        self.sock.close()
        self.sock = None

    def _finish(
        self,
        reason: End,
        detail: str = "",
        began: float | None = None,
        reset: bool = False,
        waited: float | None = None,
    ) -> None:
        """The connection is over: close the socket, let the session settle and record it."""
        if self.sock is not None:
            self._close_socket(reset)
        if self.s is not None:
            self.s.end(reason, detail, began, waited)
        self._release()

    async def _await_answers(self) -> bool:
        """Wait for the answers to what is outstanding; False if the connection ended meanwhile."""
        s = self.s
        assert s is not None
        try:
            wait = await self._wait_answer(lambda: not s.outstanding or s.ended)
        except Broken as exc:
            self._finish(End.RESET, str(exc))
            return False
        if self._stopped():
            return False
        if s.outstanding and not s.ended:
            self._count_unanswered(len(s.outstanding), wait)
            self._finish(End.ACK_TIMEOUT, "no answer within the ack timeout", waited=wait)
            return False
        if s.ended:
            self._finish(s.server_end())
            return False
        return True

    async def _wait_answer(self, done: Callable[[], bool], sent: bool = False, begun: Begun | None = None) -> float:
        """Read replies until ``done()`` or the ack timeout passes; return the seconds waited.

        A wait that ends with the server's replies (or whole lines of any text: a PFO1 server's
        broadcast) still arriving, waiting unread or coming within a moment more (the harness fell
        behind, as in a big burst where every client reads N-1 relays per message, and the answer
        may be queued behind them, or it had only just caught up) proves no silence: the wait
        starts again, up to ``LAG_GRACE`` times. A silent server leaves nothing unread, and one
        that streams bytes with no line end makes no progress, so their missing answers are judged
        after one ack timeout as before.
        """
        s = self.s
        started = time.monotonic() if begun is None else begun.at
        for rounds in range(1 + LAG_GRACE):
            if rounds or begun is None:
                heard, deadline = (s.heard if s is not None else 0), time.monotonic() + self.ctx.ack_timeout
            else:  # the first round of a wait under way: its start, baseline and timeout as they were
                heard, deadline = begun.heard, begun.at + begun.timeout
            await self.pump_until(deadline, done, sent=sent)
            sent = False
            if done() or self.ctx.stop.is_set() or s is None or s.heard == heard:
                break
            if not self._unread() and not await self._arriving():
                break
        return time.monotonic() - started

    async def _arriving(self) -> bool:
        """Whether more of the reply stream comes within a moment: the client caught up with it, it is not over."""
        sock, s = self.sock, self.s
        if sock is None or s is None or s.ended:
            return False
        return await self._readable(sock, min(self.ctx.ack_timeout / 4, ARRIVING))

    def _unread(self) -> bool:
        """Whether the connection holds something not read yet (bytes, the server's close, or an error)."""
        if self.sock is None or self.s is None or self.s.ended:
            return False
        if self._read is not None:
            return True
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return True

    def _count_unanswered(self, n: int, waited: float) -> None:
        self.unanswered_in_a_row += n
        self.waited_in_a_row += waited

    def _stopped(self) -> bool:
        """The run's time is up: end the connection as the harness's doing (nothing in flight is judged)."""
        if not self.ctx.stop.is_set():
            return False
        if self.sock is not None:
            self._finish(End.STOPPED, "the run's time was up")
        return True

    async def close(self, reason: End) -> None:
        """Polite close: wait for outstanding answers, send FIN, read until the server closes."""
        await self._settle()
        if not await self._await_answers():
            return
        await self._then_server_closes(reason, self._shut_write)

    async def _shut_write(self) -> None:
        assert self.sock is not None
        self.sock.shutdown(socket.SHUT_WR)

    async def _then_server_closes(self, reason: End, act: Callable[[], Awaitable[object]]) -> None:
        """Do ``act``, then read until the server closes; record the end."""
        s = self.s
        assert s is not None
        began = self.h.now()
        try:
            await act()
            await self.pump_until(time.monotonic() + self.ctx.options.close_timeout, lambda: s.ended)
        except (Broken, OSError) as exc:
            self._finish(End.RESET, f"broken during {reason.value}: {_why(exc)}", began)
            return
        if not s.ended and self._stopped():
            return
        if not s.ended:
            self._finish(End.CLOSE_TIMEOUT, f"the server did not close within {self.ctx.options.close_timeout:g} s")
            return
        self._finish(reason, began=began)

    def reset(self, reason: End) -> None:
        """Abrupt close with RST."""
        self._finish(reason, "reset by client", self.h.now(), reset=True)

    async def exit(self, spelling: str = "") -> None:
        """Say the exit word (or another spelling of it); the server should end the session."""
        if not self.wire.server_sees_exit_word:
            if self.sock is not None:  # only the server's own client knows the word: it just closes
                await self.close(End.CLIENT_CLOSE)
            return
        await self._settle()
        if not await self._ensure() or not await self._await_answers():
            return
        s = self.s
        assert s is not None
        word = s.send_exit(spelling)
        await self._then_server_closes(End.EXIT_WORD, lambda: self._sendall(word))

    # -- messages ----------------------------------------------------------------------

    async def send(self, *ops: Op) -> None:
        """Send messages in one write; wait for the last one's answer unless it is pipelined."""
        if self.plan.pacing:
            await self.pump_until(self.last_send + self.plan.pacing)
        s = self.s
        if s is not None and s.settle_until:
            await self._settle()
        if (s is None or self.sock is None or s.ended or s.full) and not await self._ensure():
            return
        assert self.s is not None
        self.last_send = time.monotonic()
        batch = [self.state.next_token(op.text) for op in ops]
        if not await self._transmit(batch):
            return
        if not ops[-1].pipelined or not self.wire.pipelining:
            await self._await(batch[-1][0])

    def _plain(self) -> bool:
        """Whether a send may take the short way: a healthy connection, nothing to pace, settle or hold."""
        s = self.s
        return (
            s is not None
            and self.sock is not None
            and not self.plan.pacing
            and not s.ended
            and not s.settle_until
            and not s.decoder.pending  # ``s.holding``, without the call (a message each)
            and not (s.wire.per_connection and s.full)
        )

    def _plain_at(self, ops: list[Op], i: int) -> bool:
        """Whether ``ops[i]`` is a closed-loop send that may take the short way now."""
        op = ops[i]
        return op.kind == SEND and not op.pipelined and self._plain()

    def _plain_send(self, op: Op) -> tuple[str, bytes] | None:
        """Record ``op``'s message and write it once; its token and the bytes not written yet (None: it broke)."""
        s, sock = self.s, self.sock
        assert s is not None and sock is not None
        self.last_send = time.monotonic()
        token, text = self.state.next_token(op.text)
        data = s.send_one(token, text)
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._finish(End.RESET, f"send failed: {_why(exc)}")
            return None
        return token, data[sent:]

    async def _send_plain(self, ops: list[Op], i: int) -> int:
        """``send(ops[i])`` for the common case (``_plain``), and the plain sends after it; the index of the next op.

        Exactly the general path's first steps (``_transmit``, then ``pump_until``'s first wait and
        read), then the same judgement. While every answer comes whole in that first read, the event
        loop's read callback judges it and sends the next message itself (``_chain_read``): no
        coroutine wakes per message. Anything but the answer in that read goes on in ``_await``
        from where it stands.
        """
        sent = self._plain_send(ops[i])
        if sent is None:
            return i + 1
        token, rest = sent
        while True:
            if rest:  # rarely: nearly always the whole line goes out at once
                try:
                    await self._sendall(rest)
                except OSError as exc:
                    self._finish(End.RESET, f"send failed: {_why(exc)}")
                    return i + 1
            at = _Sent(i, token, self._begin())
            if self.ctx.stop.is_set():
                await self._await(token, False, at.begun)
                return i + 1
            handed = await self._chained(ops, at)
            if handed.rest is not None:  # the chain sent ops[handed.op], not all of it
                i, token, rest = handed.op, handed.token, handed.rest
                continue
            if handed.begun is not None:  # ops[handed.op]'s answer is still to come
                await self._await(handed.token, False, handed.begun)
                return handed.op + 1
            return handed.op

    def _begin(self) -> Begun:
        """An answer's wait starting now (the message just went out)."""
        s = self.s
        assert s is not None
        return Begun(time.monotonic(), s.heard, self.ctx.ack_timeout)

    async def _chained(self, ops: list[Op], at: _Sent) -> _Handed:
        """Wait while the event loop's callbacks carry plain sends from ``at`` on; what they hand back."""
        loop = self._loop
        sock = self.sock
        assert sock is not None
        fd = sock.fileno()
        if self._watched != fd:
            self._unwatch()
            loop.add_reader(fd, self._on_readable, loop, fd)
            self._watched = fd
        chain: asyncio.Future[_Handed] = loop.create_future()
        self._chain = chain
        self._chain_ops = ops
        self._chain_on(at, loop)
        if self._read is not None:  # read for an earlier wait and not handled: it comes first
            self._chain_read()
        try:
            return await chain
        finally:
            self._chain = None
            self._chain_ops = []

    def _chain_on(self, at: _Sent, loop: asyncio.AbstractEventLoop) -> None:
        """The chain now waits for ``at``'s answer: the first read's deadline, as ``_readable``'s."""
        self._chain_at = at
        self._arm(loop, loop.time() + min(at.begun.timeout, self.ctx.options.poll))

    def _hand_back(self, handed: _Handed) -> None:
        chain = self._chain
        if chain is not None and not chain.done():
            chain.set_result(handed)

    def _chain_read(self) -> None:
        """The chain's socket is readable: read, judge the answer and send the next plain message (or hand back)."""
        chain, sock, s = self._chain, self.sock, self.s
        if chain is None or chain.done():
            return
        try:
            at = self._chain_at
            got = self._read
            self._read = None
            if got is None:
                got = _read_event(sock)
                if got is None:
                    return
            begun = at.begun
            # The stop flag is read once a callback: the harness sets it on this loop's thread (``drive``),
            # between callbacks; set from another thread, it would be seen at the next read, as if set then.
            if self.ctx.stop.is_set() or time.monotonic() >= begun.at + begun.timeout:
                self._read = got  # the general path takes it from here, as after the short way's wait
                self._hand_back(_Handed(at.op, at.token, begun))
                return
            assert s is not None
            if isinstance(got, OSError):
                self._finish(End.RESET, _why(got))
                self._hand_back(_Handed(at.op + 1))
                return
            if got:
                s.feed(got)
            else:
                s.eof()
            if at.token in s.outstanding and not s.ended:
                self._hand_back(_Handed(at.op, at.token, begun))
                return
            if s.ended:
                self._answered(at.token, time.monotonic() - begun.at)
            else:  # answered, on a connection that goes on: all ``_answered`` does then
                self.unanswered_in_a_row, self.waited_in_a_row = 0, 0.0
            ops, i = self._chain_ops, at.op + 1
            op = ops[i] if i < len(ops) else None
            # ``_plain_at(ops, i)``, without its call
            if op is None or self.unanswered_in_a_row or op.kind != SEND or op.pipelined or not self._plain():
                self._hand_back(_Handed(i))
                return
            sent = self._plain_send(op)
            if sent is None:
                self._hand_back(_Handed(i + 1))
            elif sent[1]:
                self._hand_back(_Handed(i, sent[0], rest=sent[1]))
            else:
                self._chain_on(_Sent(i, sent[0], self._begin()), self._loop)
        except BaseException as exc:  # a harness bug must not hide as a server anomaly: the coroutine raises it
            if not chain.done():
                chain.set_exception(exc)

    async def _settle(self) -> None:
        """Without framing: wait until the acks of the last message stop coming (each is credited to it)."""
        if self.s is not None and self.sock is not None and self.s.settle_until:
            await self.pump_until(await self._settle_deadline())

    async def _settle_deadline(self) -> float:
        """When the acks of the last message have stopped coming (servers without framing)."""
        assert self.s is not None
        while True:
            wait = self.s.settle_until - self.h.now()
            if wait <= 0:
                return time.monotonic()
            before = self.s.settle_until
            await self.pump_until(time.monotonic() + wait)
            if self.s.settle_until == before or self.sock is None:
                return time.monotonic()

    async def _transmit(self, batch: list[tuple[str, str]], resend: bool = False) -> bool:
        assert self.s is not None and self.sock is not None
        data = self.s.send(batch, resend)
        try:
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent < len(data):  # rarely: nearly always the whole line goes out at once
                await self._sendall(data[sent:])
        except OSError as exc:
            self._finish(End.RESET, f"send failed: {_why(exc)}")
            return False
        return True

    async def _await(self, token: str, sent: bool = True, begun: Begun | None = None) -> None:
        """Wait for the answer to ``token``; no answer in time ends the connection.

        ``begun``: the wait is under way already (``_send_plain`` waited and read once, and goes on here).
        """
        s = self.s
        assert s is not None
        try:
            wait = await self._wait_answer(lambda: token not in s.outstanding or s.ended, sent, begun)
        except Broken as exc:
            self._finish(End.RESET, str(exc))
            return
        self._answered(token, wait)

    def _answered(self, token: str, wait: float) -> None:
        """The wait for ``token``'s answer is over (``wait`` seconds): judge what came."""
        s = self.s
        assert s is not None
        if self._stopped():
            return
        if token in s.outstanding and not s.ended:
            s.quiet()  # a reply held back until more text came is complete now
        if token in s.outstanding and not s.ended:
            self._count_unanswered(1, wait)
            s.give_up(token, wait)
            self._finish(End.ACK_TIMEOUT, "no answer within the ack timeout", waited=wait)
            return
        if token not in s.outstanding:
            self.unanswered_in_a_row, self.waited_in_a_row = 0, 0.0
        if s.ended and self.sock is not None and (s.outstanding or s.full):
            self._finish(s.server_end())

    async def half_message(self, op: Op) -> None:
        """Send the first half of a message's bytes, then RST (or FIN): it must never be stored."""
        if not await self._ensure():
            return
        s = self.s
        assert s is not None
        token, text = self.state.next_token(op.text)
        half = s.send_half(token, text)
        try:
            await self._sendall(half)
        except OSError as exc:
            s.half_sent(token, End.RESET, len(half))
            self._finish(End.RESET, f"send failed: {_why(exc)}")
            return
        if op.kind == HALF_RESET:
            s.half_sent(token, End.HALF_RESET, len(half))
            self._finish(End.HALF_RESET, "half a message, then reset", self.h.now(), reset=True)
            return
        s.half_sent(token, End.HALF_CLOSE, len(half))
        await self._then_server_closes(End.HALF_CLOSE, self._shut_write)

    async def trickle(self, op: Op) -> None:
        """Send a message one byte at a time, ``op.seconds`` apart, reading meanwhile; wait for its ack."""
        if not await self._ensure():
            return
        s = self.s
        assert s is not None
        token, text = self.state.next_token(op.text)
        data = s.send_trickled(token, text, op.seconds)
        for i in range(len(data)):
            try:
                await self._sendall(data[i : i + 1])
            except OSError as exc:
                self._finish(End.RESET, f"send failed: {_why(exc)}")
                return
            if op.seconds:
                try:
                    await self.pump_until(time.monotonic() + op.seconds)
                except Broken as exc:
                    self._finish(End.RESET, str(exc))
                    return
            if self.sock is None or s.ended:
                if self.sock is not None:
                    self._finish(s.server_end(), "closed by the server during a trickled message")
                return
        await self._await(token)

    async def raw(self, op: Op) -> None:
        """Send a token and raw bytes as one line (bad input, as is); wait for the answer."""
        if not await self._ensure():
            return
        s = self.s
        assert s is not None
        self.state.seq += 1
        token = f"{self.ctx.run_id}.{self.index}.{self.state.seq}"
        payload = f"[{token}] ".encode() + bytes.fromhex(op.data)
        data = s.send_raw(token, payload, op.data)
        try:
            await self._sendall(data)
        except OSError as exc:
            self._finish(End.RESET, f"send failed: {_why(exc)}")
            return
        await self._await(token)

    async def _sendall(self, data: bytes) -> None:
        """Write all of ``data`` within the I/O timeout (TimeoutError otherwise; OSError if it breaks)."""
        assert self.sock is not None
        sock = self.sock
        try:
            sent = sock.send(data)
            if sent == len(data):  # nearly always, at once
                return
            data = data[sent:]
        except BlockingIOError:
            pass
        view = memoryview(data)
        deadline = time.monotonic() + self.ctx.options.io_timeout
        while view:
            try:
                view = view[sock.send(view) :]
                continue
            except BlockingIOError:
                pass
            if not await _writable(sock, deadline - time.monotonic()):
                raise TimeoutError("timed out")

    async def _sleep(self, seconds: float) -> bool:
        """Let ``seconds`` pass (reading nothing); True if the run was stopped meanwhile."""
        end = time.monotonic() + seconds
        while not self.ctx.stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, self.ctx.options.poll))
        return True

    async def _readable(self, sock: socket.socket, timeout: float) -> bool:
        """Wait until ``sock`` has something to read; False if ``timeout`` seconds pass first.

        The socket stays watched between reads (no epoll change per message); when it becomes
        readable while nobody waits, it is unwatched, since a level-triggered watch would fire again
        and again while the client does something else. The read itself happens when the event
        comes (``_on_readable``) and ``_recv`` hands it over.
        """
        if self._read is not None:
            return True
        if timeout <= 0:
            return False
        loop = self._loop = asyncio.get_running_loop()  # also when a step runs outside ``run``
        fut: asyncio.Future[bool] = loop.create_future()
        self._waiter = fut
        fd = sock.fileno()
        if self._watched != fd:
            self._unwatch()
            loop.add_reader(fd, self._on_readable, loop, fd)
            self._watched = fd
        self._arm(loop, loop.time() + timeout)
        try:
            return await fut
        finally:
            self._waiter = None

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Give the wait in progress ``deadline`` (event loop time)."""
        # One timer per client, kept across reads: most reads end with data long before their deadline,
        # and deadlines mostly grow, so the timer is re-armed when it fires early rather than every read.
        self._deadline = deadline
        if self._timer is not None and self._timer.when() > deadline:
            self._timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        chain = self._chain
        if self._waiter is None and (chain is None or chain.done()):
            return
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._on_timer, loop)
        elif self._waiter is not None:
            _settle(self._waiter, False)
        else:  # the chain's first read found nothing in time: the general path waits on
            at = self._chain_at
            self._hand_back(_Handed(at.op, at.token, at.begun))

    def _on_readable(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        # Read now: an event can be stale (queued in the same loop turn in which the client read what
        # raised it, then sent again and waits anew), and one that finds nothing must not wake it.
        waiter, sock = self._waiter, self.sock
        if self._chain is not None and not self._chain.done():
            self._chain_read()
        elif waiter is not None:
            if waiter.done() or self._read is not None:
                return
            self._read = _read_event(sock)
            if self._read is not None:
                waiter.set_result(True)
        elif self._watched == fd:
            loop.remove_reader(fd)
            self._watched = None

    def _recv(self, sock: socket.socket) -> bytes:
        """The next bytes from the server: what the event loop read already, else a read now."""
        got = self._read
        if got is None:
            return sock.recv(65536)
        self._read = None
        if isinstance(got, OSError):
            raise got
        return got

    def _unwatch(self) -> None:
        """Stop watching the socket (before it is closed: its descriptor number will be reused)."""
        self._read = None  # read from a connection that is over: dropped, as unread bytes would be
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watched is not None:
            self._loop.remove_reader(self._watched)
            self._watched = None

    # -- reading -------------------------------------------------------------------------

    async def pump_until(self, deadline: float, done: Callable[[], bool] | None = None, sent: bool = False) -> None:
        """Read and handle replies until ``done()`` or the deadline; raise Broken if the connection breaks.

        ``sent``: a message just went out, so its answer cannot be there yet: wait before reading.
        """
        unwaited = 0  # reads in a row that found data without waiting
        while not (done is not None and done()):
            now = time.monotonic()
            if now >= deadline or self.ctx.stop.is_set():
                return
            s, sock = self.s, self.sock
            if sock is None or s is None or s.ended:
                await self._sleep(deadline - now)
                return
            wait = min(deadline - now, self.ctx.options.poll)
            if s.holding:
                wait = min(wait, QUIET)
            if unwaited >= FAIR_READS:  # a server that floods this client must not starve the others
                unwaited = 0
                await asyncio.sleep(0)
            if sent:
                sent = False
                if not await self._readable(sock, wait) and s.holding:
                    s.quiet()
                continue
            try:
                data = self._recv(sock)
            except BlockingIOError:
                unwaited = 0
                if not await self._readable(sock, wait) and s.holding:
                    s.quiet()
                continue
            except OSError as exc:
                raise Broken(_why(exc)) from exc
            unwaited += 1
            if not data:
                s.eof()
                continue
            s.feed(data)


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _read_event(sock: socket.socket | None) -> bytes | OSError | None:
    """What a readable event brought: bytes (empty at the server's close), the error, or None if nothing."""
    if sock is None:
        return None
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return None
    except OSError as exc:
        return exc


def _settle(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


async def _writable(sock: socket.socket, timeout: float) -> bool:
    """Wait until ``sock`` can take more bytes (or has connected); False if ``timeout`` seconds pass first."""
    if timeout <= 0:
        return False
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[bool] = loop.create_future()
    fd = sock.fileno()
    loop.add_writer(fd, _settle, fut, True)
    timer = loop.call_later(timeout, _settle, fut, False)
    try:
        return await fut
    finally:
        timer.cancel()
        loop.remove_writer(fd)


async def _connect(sock: socket.socket, address: tuple[Any, ...], timeout: float) -> None:
    """Connect the non-blocking ``sock`` within ``timeout`` seconds (OSError as ``socket.connect`` raises it)."""
    err = sock.connect_ex(address)
    if err in (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY):
        if not await _writable(sock, timeout):
            raise TimeoutError("timed out")
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


def execute(plan: Plan, ctx: Context, timeout: float | None = None) -> list[int]:
    """Run every client of ``plan``; return the indexes of clients still running at the timeout."""
    return drive([SimClient(i, c, ctx) for i, c in enumerate(plan.clients)], ctx, timeout)


@full_collections_held()
def drive(clients: list[SimClient], ctx: Context, timeout: float | None = None, t0: float | None = None) -> list[int]:
    """Run ``clients`` on an event loop of their own (this thread); return the indexes still running at the timeout.

    Those are then told to stop and given the I/O timeout to end their connections; any still
    running after that are cancelled. Client start offsets count from ``t0`` (default: now).
    """
    ctx.t0 = time.monotonic() if t0 is None else t0

    async def main() -> list[int]:
        tasks = {asyncio.ensure_future(c.run()): c.index for c in clients}
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            ctx.stop.set()
            _, late = await asyncio.wait(pending, timeout=ctx.options.io_timeout + 1)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5)
        for task, index in tasks.items():  # a harness bug must not hide as a server anomaly
            if task.done() and not task.cancelled() and task.exception() is not None:
                ctx.history.add(INFO, "client-error", index, -1, error=repr(task.exception()))
        return sorted(tasks[t] for t in pending)

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        try:
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
