"""The fault proxy on real sockets: every fault has an observable effect, decisions repeat from the seed."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_for

from harness.faults import Fault, FaultProxy, Step, parse_schedule
from harness.plan import Plan
from harness.runner import run_plan
from harness.scenario import chatter
from harness.target import reference


class Upstream:
    """A TCP server that records every recv() and echoes what it gets."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.chunks: list[bytes] = []
        self.eof_at: float | None = None
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.conns: list[socket.socket] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    self.eof_at = time.monotonic()
                    return
                self.chunks.append(data)
                conn.sendall(data)
        except OSError:
            return

    @property
    def received(self) -> bytes:
        return b"".join(self.chunks)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for c in self.conns:
            c.close()
        for t in self.threads:
            t.join(5)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[FaultProxy]:
    p = FaultProxy(("127.0.0.1", upstream.port), seed=7).start()
    yield p
    p.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("proxy")], "proxy threads left behind"


def connect(proxy: FaultProxy) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_exactly(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = s.recv(n - len(buf))
        if not data:
            break
        buf += data
    return buf


def test_no_faults_is_transparent(proxy: FaultProxy, upstream: Upstream) -> None:
    s = connect(proxy)
    payload = bytes(range(256)) * 400
    s.sendall(payload)
    assert read_exactly(s, len(payload)) == payload
    s.close()


def test_slicer_delivers_intact_in_many_pieces(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.add(Fault("slice", "slicer", direction="up", size=10, size_jitter=3, delay=0.002))
    s = connect(proxy)
    payload = "ñandú 😀 ".encode() * 60  # multibyte characters cut in the middle
    s.sendall(payload)
    assert read_exactly(s, len(payload)) == payload
    assert upstream.received == payload
    assert len(upstream.chunks) >= 50, len(upstream.chunks)
    s.close()


def test_reset_peer_gives_econnreset(proxy: FaultProxy) -> None:
    proxy.add(Fault("rst", "reset_peer", after=0.1))
    s = connect(proxy)
    s.sendall(b"hello")
    with pytest.raises(ConnectionResetError):
        for _ in range(100):
            if not s.recv(1024):
                break
    s.close()


def test_latency_adds_at_least_the_delay_each_way(proxy: FaultProxy) -> None:
    s = connect(proxy)
    t0 = time.monotonic()
    s.sendall(b"x")
    read_exactly(s, 1)
    direct = time.monotonic() - t0
    proxy.add(Fault("lat", "latency", latency=0.05, jitter=0.01))
    t0 = time.monotonic()
    s.sendall(b"y")
    read_exactly(s, 1)
    delayed = time.monotonic() - t0
    assert delayed >= 2 * 0.04 and delayed > direct
    s.close()


def test_black_hole_stalls_until_removed(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.add(Fault("hole", "timeout", direction="up"))
    s = connect(proxy)
    s.sendall(b"swallowed for now")
    s.settimeout(0.4)
    with pytest.raises(TimeoutError):
        s.recv(100)
    assert upstream.received == b""
    proxy.remove("hole")
    s.settimeout(5)
    assert read_exactly(s, 17) == b"swallowed for now"
    s.close()


def test_black_hole_with_a_deadline_closes(proxy: FaultProxy) -> None:
    proxy.add(Fault("hole", "timeout", close_after=0.3))
    s = connect(proxy)
    t0 = time.monotonic()
    s.sendall(b"into the void")
    assert s.recv(100) == b""
    assert time.monotonic() - t0 >= 0.25
    s.close()


def test_limit_data_closes_after_n_bytes(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.add(Fault("lim", "limit_data", direction="up", limit=100))
    s = connect(proxy)
    s.sendall(b"z" * 1000)
    wait_for(lambda: upstream.eof_at is not None, what="the upstream to see the close")
    assert upstream.received == b"z" * 100
    s.close()


def test_bandwidth_limits_the_rate(proxy: FaultProxy) -> None:
    proxy.add(Fault("bw", "bandwidth", direction="down", rate=100_000))
    s = connect(proxy)
    t0 = time.monotonic()
    s.sendall(b"b" * 30_000)
    assert len(read_exactly(s, 30_000)) == 30_000
    assert time.monotonic() - t0 >= 0.25  # 30 kB at 100 kB/s
    s.close()


def test_slow_close_delays_the_fin(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.add(Fault("slow", "slow_close", direction="up", linger=0.4))
    s = connect(proxy)
    s.sendall(b"bye")
    read_exactly(s, 3)
    t0 = time.monotonic()
    s.shutdown(socket.SHUT_WR)
    wait_for(lambda: upstream.eof_at is not None, what="the delayed close")
    assert upstream.eof_at is not None and upstream.eof_at - t0 >= 0.35
    s.close()


def test_down_refuses_and_cuts_then_up_accepts(proxy: FaultProxy) -> None:
    old = connect(proxy)
    wait_for(lambda: proxy.connections == 1, what="the proxy to accept")  # not just queued in its backlog
    proxy.set_down(True, cut=True)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    old.settimeout(5)
    assert old.recv(10) == b""
    proxy.set_down(False)
    s = connect(proxy)
    s.sendall(b"back")
    assert read_exactly(s, 4) == b"back"
    s.close()
    old.close()


def test_while_down_the_port_stays_the_proxys_for_the_heal(proxy: FaultProxy) -> None:
    port = proxy.port  # an ephemeral port: while the listener is closed, any other socket could take it
    proxy.set_down(True)
    with socket.socket() as other, pytest.raises(OSError) as taken:
        other.bind(("127.0.0.1", port))  # what another program (or an outgoing connection's port) would do
    assert taken.value.errno == errno.EADDRINUSE
    with pytest.raises(ConnectionRefusedError):  # still refused, as a closed port
        socket.create_connection(("127.0.0.1", port), timeout=2)
    proxy.set_down(False)
    assert proxy.port == port
    s = connect(proxy)
    s.sendall(b"back")
    assert read_exactly(s, 4) == b"back"
    s.close()


def test_probability_decides_per_connection_from_the_seed(upstream: Upstream) -> None:
    def decisions(seed: int) -> list[bool]:
        p = FaultProxy(("127.0.0.1", upstream.port), seed=seed).start()
        try:
            p.add(Fault("maybe", "latency", probability=0.5, latency=0.001))
            for i in range(12):
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                p.register(s.getsockname()[1], f"{i}.1")
                s.connect(("127.0.0.1", p.port))
                s.sendall(b"x")
                read_exactly(s, 1)
                s.close()
            wait_for(lambda: len([e for e in p.log if e["event"] == "decision"]) >= 12, what="decisions")
            by_link = {e["link"]: e["applies"] for e in p.log if e["event"] == "decision"}
            return [by_link[f"{i}.1"] for i in range(12)]
        finally:
            p.close()

    first = decisions(1)
    assert decisions(1) == first
    assert 0 < sum(first) < 12
    assert decisions(2) != first


def test_schedules_parse_and_refuse_nonsense() -> None:
    steps = parse_schedule(
        [
            {"at": 1.0, "action": "remove", "name": "lat"},
            {"at": 0.5, "action": "add", "fault": {"name": "lat", "kind": "latency", "latency": 0.01}},
        ]
    )
    assert [s.action for s in steps] == ["add", "remove"]
    assert steps[0] == Step(0.5, "add", Fault("lat", "latency", latency=0.01))
    for bad in (
        [{"action": "explode"}],
        [{"action": "add", "fault": {"name": "x", "kind": "gremlins"}}],
        [{"action": "remove"}],
        [{"action": "add", "fault": {"name": "x", "kind": "latency", "probability": 2}}],
    ):
        with pytest.raises(ValueError):
            parse_schedule(bad)


def test_same_plan_and_seed_make_the_same_fault_decisions(tmp_path: Path) -> None:
    faults = [
        {"at": 0.0, "action": "add", "fault": {"name": "rst", "kind": "reset_peer", "probability": 0.4, "after": 0.05}},
        {"at": 0.0, "action": "add", "fault": {"name": "lat", "kind": "latency", "probability": 0.5, "latency": 0.002}},
    ]

    def decisions(seed: int, name: str) -> set[tuple[str, str, bool]]:
        plan = Plan(chatter(6, messages=6, pause=0.02), seed=seed, faults=faults)
        outcome = run_plan(reference(), plan, tmp_path / name)
        assert outcome.result.valid is True, outcome.result.summary()
        return {
            (r.get("link"), r.get("fault"), r.get("applies"))
            for r in outcome.records
            if r.f == "fault-event" and r.get("event") == "decision"
        }

    a, b = decisions(11, "a"), decisions(11, "b")
    common = {(link, f) for link, f, _ in a} & {(link, f) for link, f, _ in b}
    assert len(common) >= 12
    assert {d for d in a if d[:2] in common} == {d for d in b if d[:2] in common}
    c = decisions(12, "c")
    assert {d for d in c if d[:2] in common} != {d for d in a if d[:2] in common}
