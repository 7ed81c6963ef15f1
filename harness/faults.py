"""A seeded in-process TCP fault proxy: Toxiproxy's catalogue, reproducible from the run's seed.

The proxy sits between the simulated clients and the target, transparent to both: one listener
per run, two forwarding threads per connection ("up", client to server; "down", server to
client), bounded buffers, clean teardown. Faults, each for one direction or both, and applying
to a connection with a probability:

========== ===============================================================================
latency    delay every chunk by ``latency`` seconds, plus or minus ``jitter``
bandwidth  at most ``rate`` bytes per second
slicer     cut the stream into pieces of ``size`` bytes (plus or minus ``size_jitter``), ``delay`` apart
limit_data close the connection once ``limit`` bytes went through
reset_peer reset the connection (RST both ways) ``after`` seconds (plus or minus ``jitter``, drawn once
           per connection) after the fault applies to it
timeout    black hole: forward nothing; close after ``close_after`` seconds (0: hold until removed)
slow_close delay passing on a close by ``linger`` seconds
========== ===============================================================================

and ``down`` for the whole proxy: refuse new connections, optionally cutting the existing ones.

Every random choice comes from a generator seeded with the run's seed, the connection's key and
the fault's name, so the same plan and seed make the same decisions however the threads
interleave. A connection's key is ``CLIENT.N`` (the N-th connection of simulated client CLIENT)
when the client registered its source port first, else ``xN`` in accept order.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

KINDS = ("latency", "bandwidth", "slicer", "limit_data", "reset_peer", "timeout", "slow_close")
UP, DOWN = "up", "down"
DIRECTIONS = (UP, DOWN, "both")
BUFFER_LIMIT = 4 << 20  # bytes held per direction before the proxy stops reading
RST_LINGER = b"\x01\x00\x00\x00\x00\x00\x00\x00"
POLL = 0.05
SEND_TIMEOUT = 60.0  # a peer that stops reading is the peer's business, not a fault of the proxy's


@dataclass(frozen=True)
class Fault:
    """One fault, as it appears in a plan's fault schedule."""

    name: str
    kind: str
    direction: str = "both"
    probability: float = 1.0
    latency: float = 0.0
    jitter: float = 0.0
    rate: int = 0
    size: int = 1
    size_jitter: int = 0
    delay: float = 0.0
    limit: int = 0
    after: float = 0.0
    close_after: float = 0.0
    linger: float = 0.0

    def __post_init__(self) -> None:
        """Refuse unknown kinds, directions and probabilities."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"fault direction must be up, down or both, not {self.direction!r}")
        if not 0 <= self.probability <= 1:
            raise ValueError("fault probability must be between 0 and 1")

    def covers(self, direction: str) -> bool:
        """Whether the fault acts on ``direction``."""
        return self.direction in ("both", direction)

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that differ from the defaults."""
        default = {f.name: f.default for f in fields(self)}
        return {k: v for k, v in asdict(self).items() if k in ("name", "kind") or v != default[k]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """Rebuild from plan data; raise ValueError when malformed."""
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"bad fault {data!r}: {exc}") from exc


class _Link:
    """One proxied connection: its key, its per-fault decisions, its two forwarding threads."""

    def __init__(self, proxy: FaultProxy, key: str, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.key = key
        self.client = client
        self.server = server
        self.closed = threading.Event()
        self.decided: dict[str, bool] = {}
        self._active: dict[str, tuple[int, list[tuple[Fault, float]]]] = {}
        self.started = time.monotonic()
        self._running = 2
        self._lock = threading.Lock()
        # Each direction writes through its own duplicate of the socket: a socket object has one timeout,
        # and the reading direction must not see the writing direction's.
        self.sockets = (client, server, client.dup(), server.dup())
        self.pipes = (_Pipe(self, client, self.sockets[3], UP), _Pipe(self, server, self.sockets[2], DOWN))
        self.threads = [
            threading.Thread(target=pipe.run, name=f"proxy {key} {pipe.direction}", daemon=True) for pipe in self.pipes
        ]

    def rng(self, fault: Fault, stream: str = "") -> random.Random:
        """The generator for this connection, fault and purpose."""
        return random.Random(f"{self.proxy.seed}:{self.key}:{fault.name}:{stream}")

    def applies(self, fault: Fault) -> bool:
        """Whether ``fault`` acts on this connection (decided once, from the seed)."""
        with self._lock:
            if fault.name in self.decided:
                return self.decided[fault.name]
            yes = self.decided[fault.name] = self.rng(fault, "applies").random() < fault.probability
        self.proxy.decision(self, fault, yes)
        return yes

    def active(self, direction: str) -> list[tuple[Fault, float]]:
        """The faults acting on this connection in ``direction``, with when each was added."""
        version, faults = self.proxy.current()
        cached = self._active.get(direction)
        if cached is not None and cached[0] == version:
            return cached[1]
        mine = [(f, t) for f, t in faults if f.covers(direction) and self.applies(f)]
        self._active[direction] = (version, mine)
        return mine

    def reset(self) -> None:
        """End the connection with RST both ways (sent when the last thread closes the sockets)."""
        for s in (self.client, self.server):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
        self.closed.set()  # the threads notice within POLL seconds

    def close(self) -> None:
        """End the connection with FIN both ways (idempotent); both threads wake up and stop."""
        if self.closed.is_set():
            return
        self.closed.set()
        for s in (self.client, self.server):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # FIN now, and wake the readers; the last thread closes

    def pipe_done(self) -> None:
        """One direction has finished; the last one releases the sockets."""
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.close()
            self.proxy.forget(self)


class _Pipe:
    """Forward one direction of a link, applying the faults that act on it."""

    def __init__(self, link: _Link, src: socket.socket, dst: socket.socket, direction: str) -> None:
        self.link, self.src, self.dst, self.direction = link, src, dst, direction
        self.queue: deque[tuple[float, bytes]] = deque()  # (due time, bytes)
        self.held = 0
        self.sent = 0
        self.eof = False
        self.stalled: Fault | None = None  # the black hole holding this direction, if any
        self.rngs: dict[str, random.Random] = {}
        self.afters: dict[str, float] = {}  # reset_peer's jittered delay, per fault

    def _after(self, fault: Fault) -> float:
        """When ``fault`` (reset_peer) ends this connection: its ``after``, jittered the same way in both directions."""
        if not fault.jitter:
            return fault.after
        if fault.name not in self.afters:
            rng = self.link.rng(fault, "after")
            self.afters[fault.name] = max(0.0, fault.after + rng.uniform(-fault.jitter, fault.jitter))
        return self.afters[fault.name]

    def _rng(self, fault: Fault, purpose: str) -> random.Random:
        key = f"{fault.name}:{purpose}"
        if key not in self.rngs:
            self.rngs[key] = self.link.rng(fault, purpose + self.direction)
        return self.rngs[key]

    def run(self) -> None:
        link = self.link
        try:
            while not link.closed.is_set() and not link.proxy.stopping.is_set():
                faults = link.active(self.direction)
                if not faults and not self.queue:
                    if not self._forward():
                        self._pass_close(faults)
                        return
                    continue
                if self._fatal(faults):
                    return
                black_hole = any(f.kind == "timeout" for f, _ in faults)
                self._note_stall(faults, black_hole)
                if not black_hole and not self._write(faults):
                    return
                if self.eof and not self.queue:
                    self._pass_close(faults)
                    return
                self._read(faults, black_hole)
        except ConnectionResetError:
            link.reset()  # pass a reset on as a reset, not as a polite close
        except OSError:
            link.close()
        finally:
            link.pipe_done()

    def _note_stall(self, faults: list[tuple[Fault, float]], black_hole: bool) -> None:
        """Record when a black hole starts and stops holding this direction's data."""
        if black_hole and self.stalled is None:
            self.stalled = next(f for f, _ in faults if f.kind == "timeout")
            self.link.proxy.event(self.link, self.stalled, "stall", self.direction)
        elif not black_hole and self.stalled is not None:
            self.link.proxy.event(self.link, self.stalled, "release", self.direction)
            self.stalled = None

    def _forward(self) -> bool:
        """No fault in force: pass what arrives straight on; False at end of stream."""
        self.src.settimeout(POLL)
        try:
            data = self.src.recv(65536)
        except TimeoutError:
            return True
        if not data:
            self.eof = True
            return False
        if self.link.active(self.direction):  # a fault arrived while we waited: it applies to this data
            self._enqueue(data)
            return True
        self.dst.settimeout(SEND_TIMEOUT)
        self.dst.sendall(data)
        self.sent += len(data)
        return True

    def _fatal(self, faults: list[tuple[Fault, float]]) -> bool:
        """reset_peer and black holes with a deadline end the connection."""
        now = time.monotonic()
        for f, added in faults:
            since = now - max(added, self.link.started)
            if f.kind == "reset_peer" and since >= self._after(f):
                self.link.proxy.event(self.link, f, "reset")
                self.link.reset()
                return True
            if f.kind == "timeout" and f.close_after and since >= f.close_after:
                self.link.proxy.event(self.link, f, "timeout-close")
                self.link.close()
                return True
        return False

    def _read(self, faults: list[tuple[Fault, float]], black_hole: bool) -> None:
        """Wait for data (or for the next queued chunk to fall due) and queue what arrives."""
        wait = POLL
        if self.queue and not black_hole:
            wait = min(POLL, self.queue[0][0] - time.monotonic())
            if wait <= 0:
                return
        if self.eof or self.held >= BUFFER_LIMIT:
            self.link.closed.wait(wait)  # nothing to read, or too much held: just let time pass
            return
        self.src.settimeout(wait)  # short: faults added or removed meanwhile are seen promptly
        try:
            data = self.src.recv(65536)
        except TimeoutError:
            return
        if not data:
            self.eof = True
            return
        self._enqueue(data)

    def _enqueue(self, data: bytes) -> None:
        """Queue data that just arrived, due after the latency in force now (not when the wait began)."""
        delay = 0.0
        for f, _ in self.link.active(self.direction):
            if f.kind == "latency":
                delay += max(0.0, f.latency + self._rng(f, "jitter").uniform(-f.jitter, f.jitter))
        self.queue.append((time.monotonic() + delay, data))
        self.held += len(data)

    def _write(self, faults: list[tuple[Fault, float]]) -> bool:
        """Send every queued chunk that is due; False once a limit closed the connection."""
        while self.queue and self.queue[0][0] <= time.monotonic():
            _, data = self.queue.popleft()
            self.held -= len(data)
            faults = self.link.active(self.direction)
            limit = next((f for f, _ in faults if f.kind == "limit_data"), None)
            if limit is not None and self.sent + len(data) >= limit.limit:
                self._send(data[: max(0, limit.limit - self.sent)], faults)
                self.link.proxy.event(self.link, limit, "limit-close")
                self.link.close()
                return False
            self._send(data, faults)
        return True

    def _send(self, data: bytes, faults: list[tuple[Fault, float]]) -> None:
        slicer = next((f for f, _ in faults if f.kind == "slicer"), None)
        bandwidth = next((f for f, _ in faults if f.kind == "bandwidth"), None)
        pieces = [data]
        if slicer is not None:
            rng = self._rng(slicer, "slices")
            pieces, at = [], 0
            while at < len(data):
                n = max(1, slicer.size + rng.randint(-slicer.size_jitter, slicer.size_jitter))
                pieces.append(data[at : at + n])
                at += n
        if bandwidth is not None and bandwidth.rate > 0:
            step = max(1, bandwidth.rate // 20)  # about 50 ms of data at a time
            pieces = [p[i : i + step] for p in pieces for i in range(0, len(p), step)]
        self.dst.settimeout(SEND_TIMEOUT)
        for i, piece in enumerate(pieces):
            pause = slicer.delay if slicer is not None else 0.0
            if bandwidth is not None and bandwidth.rate > 0 and i:
                pause = max(pause, len(pieces[i - 1]) / bandwidth.rate)
            if i and pause and self.link.closed.wait(pause):
                return
            self.dst.sendall(piece)
            self.sent += len(piece)

    def _pass_close(self, faults: list[tuple[Fault, float]]) -> None:
        """The source closed its side: pass the FIN on (``linger`` seconds later under slow_close)."""
        linger = max((f.linger for f, _ in faults if f.kind == "slow_close"), default=0.0)
        if linger and self.link.closed.wait(linger):
            return
        with contextlib.suppress(OSError):
            self.dst.shutdown(socket.SHUT_WR)


class FaultProxy:
    """The proxy: a listener in front of ``upstream``, faults added and removed at run time."""

    def __init__(
        self,
        upstream: tuple[str, int],
        seed: int,
        host: str = "127.0.0.1",
        on_event: Callable[[dict[str, Any]], object] | None = None,
    ) -> None:
        """Prepare a proxy to ``upstream``; ``start`` opens its listener on a free port."""
        self.upstream = upstream
        self.seed = seed
        self.host = host
        self.port = 0
        self.on_event = on_event
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._faults: dict[str, tuple[Fault, float]] = {}
        self._current: tuple[int, list[tuple[Fault, float]]] = (0, [])
        self._links: set[_Link] = set()
        self._keys: dict[int, str] = {}
        self._accepted = itertools.count()
        self._down = False
        self._listener: socket.socket | None = None
        self._held: socket.socket | None = None  # the port, bound but not listening, while the proxy is down
        self._accept: threading.Thread | None = None
        self.log: list[dict[str, Any]] = []

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Open the listener and start accepting."""
        self._open()
        return self

    def _bound(self) -> socket.socket:
        """A socket bound to the proxy's address (its port, once it has one)."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        return sock

    def _open(self) -> None:
        self._release_port()
        listener = self._bound()
        listener.listen(1024)
        listener.settimeout(POLL * 4)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accept = threading.Thread(target=self._accept_loop, args=(listener,), name="proxy-accept", daemon=True)
        self._accept.start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._accept is not None:
            self._accept.join(5)

    def _hold_port(self) -> None:
        """Keep the port while down: connections to it are refused as to a closed one, but no other socket
        (another process's outgoing connection, say: the port is an ephemeral one) can take it meanwhile."""
        self._release_port()
        with contextlib.suppress(OSError):  # taken in the instant it was free: the heal's bind will say so
            self._held = self._bound()

    def _release_port(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.close()

    def close(self) -> None:
        """Stop accepting, close every connection, join every thread."""
        self.stopping.set()
        self._close_listener()
        self._release_port()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()
        for link in links:
            for t in link.threads:
                t.join(5)

    # -- control -------------------------------------------------------------------

    def register(self, source_port: int, key: str) -> None:
        """Name the connection that will come from ``source_port`` (a simulated client's socket)."""
        with self._lock:
            self._keys[source_port] = key

    def unregister(self, source_port: int) -> None:
        """Forget a registration whose connection never arrived."""
        with self._lock:
            self._keys.pop(source_port, None)

    def add(self, fault: Fault) -> None:
        """Add (or replace) a fault; it acts on new and existing connections."""
        with self._lock:
            self._faults[fault.name] = (fault, time.monotonic())
            self._publish()

    def remove(self, name: str) -> None:
        """Remove a fault; held data starts flowing again."""
        with self._lock:
            self._faults.pop(name, None)
            self._publish()

    def clear(self) -> None:
        """Remove every fault and bring the proxy up."""
        with self._lock:
            self._faults.clear()
            self._publish()
        self.set_down(False)

    def _publish(self) -> None:
        """Make the fault set visible to the forwarding threads as one immutable snapshot (lock held)."""
        self._current = (self._current[0] + 1, list(self._faults.values()))

    def set_down(self, down: bool, cut: bool = False) -> None:
        """Down: refuse new connections (and with ``cut``, close the existing ones). Up: accept again."""
        if down == self._down:
            return
        self._down = down
        if down:
            self._refuse_waiting()
            self._close_listener()
            self._hold_port()
            if cut:
                with self._lock:
                    links = list(self._links)
                for link in links:
                    self._record({"event": "cut", "link": link.key, "fault": "down", "kind": "down"})
                    link.close()
        else:
            self._open()

    def _refuse_waiting(self) -> None:
        """Reset the connections still in the listener's backlog, each recorded (closing it resets them anyway)."""
        listener = self._listener
        if listener is None:
            return
        listener.setblocking(False)
        while True:
            try:
                client, addr = listener.accept()
            except OSError:
                return
            with self._lock:
                key = self._keys.pop(addr[1], None) or f"x{next(self._accepted)}"
            self._record({"event": "refused", "link": key, "fault": "down", "kind": "down"})
            with contextlib.suppress(OSError):
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
            client.close()

    def current(self) -> tuple[int, list[tuple[Fault, float]]]:
        """A version number that changes with every add or remove, and the faults in force (with when added)."""
        return self._current

    @property
    def connections(self) -> int:
        """Connections open now."""
        with self._lock:
            return len(self._links)

    # -- internals -----------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                client, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed (down or stopping)
            with self._lock:
                key = self._keys.pop(addr[1], None) or f"x{next(self._accepted)}"
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError as exc:
                self._record({"event": "upstream-refused", "link": key, "error": exc.strerror or str(exc)})
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
                client.close()
                continue
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, key, client, server)
            with self._lock:
                self._links.add(link)
            for t in link.threads:
                t.start()

    def forget(self, link: _Link) -> None:
        """A link has ended."""
        with self._lock:
            self._links.discard(link)

    def decision(self, link: _Link, fault: Fault, applies: bool) -> None:
        """Record whether a fault acts on a connection (the deterministic part of a run)."""
        self._record(
            {"event": "decision", "link": link.key, "fault": fault.name, "kind": fault.kind, "applies": applies}
        )

    def event(self, link: _Link, fault: Fault, what: str, direction: str | None = None) -> None:
        """Record something a fault did to a connection (reset, a close, a stall and its release)."""
        entry: dict[str, Any] = {"event": what, "link": link.key, "fault": fault.name, "kind": fault.kind}
        if direction is not None:
            entry["direction"] = direction
        self._record(entry)

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.log.append(entry)
        if self.on_event is not None:
            self.on_event(entry)


# ---------------------------------------------------------------------------
# Fault schedules (part of a Plan)
# ---------------------------------------------------------------------------

ACTIONS = ("add", "remove", "down", "up")


@dataclass(frozen=True)
class Step:
    """At ``at`` seconds into the run: add a fault, remove one, take the proxy down, or bring it up."""

    at: float
    action: str
    fault: Fault | None = None
    name: str = ""
    cut: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plan data."""
        d: dict[str, Any] = {"at": self.at, "action": self.action}
        if self.fault is not None:
            d["fault"] = self.fault.to_dict()
        if self.name:
            d["name"] = self.name
        if self.cut:
            d["cut"] = True
        return d


def parse_schedule(data: list[dict[str, Any]]) -> list[Step]:
    """Steps from plan data, by time; raise ValueError when malformed."""
    steps = []
    for item in data:
        action = item.get("action")
        if action not in ACTIONS:
            raise ValueError(f"fault step action must be one of {', '.join(ACTIONS)}, not {action!r}")
        fault = Fault.from_dict(item["fault"]) if action == "add" else None
        name = str(item.get("name", "")) if action == "remove" else ""
        if action == "remove" and not name:
            raise ValueError("a remove step needs the name of the fault")
        steps.append(Step(float(item.get("at", 0.0)), action, fault, name, bool(item.get("cut", False))))
    return sorted(steps, key=lambda st: st.at)


def run_schedule(
    proxy: FaultProxy, steps: list[Step], t0: float, done: threading.Event, record: Callable[..., object]
) -> None:
    """Apply ``steps`` at their times (seconds after ``t0``) until done; ``record(event, **value)`` notes each."""
    for step in steps:
        if done.wait(max(0.0, t0 + step.at - time.monotonic())):
            return
        # A start is recorded before it acts, an end after: the windows cover everything the step did.
        if step.action == "add":
            assert step.fault is not None
            record("add", window=step.fault.name, phase="start", label=step.fault.kind, fault=step.fault.to_dict())
            proxy.add(step.fault)
        elif step.action == "remove":
            proxy.remove(step.name)
            record("remove", window=step.name, phase="end")
        elif step.action == "down":
            record("down", window="down", phase="start", label="partition", cut=step.cut)
            proxy.set_down(True, cut=step.cut)
        else:
            proxy.set_down(False)
            record("up", window="down", phase="end")
