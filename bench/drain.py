"""How fast the reference ends its threads when thousands of clients leave at once, by switch interval.

The reference runs a thread per client. When N clients close together, N reader threads wake at
once and queue for the interpreter lock, and every waiting thread wakes once per switch interval
to ask for it: at CPython's default of 5 ms, 10,000 waiters would ask about two million times a
second, and ending the threads took 24 s to over 2 minutes of both cores here. The server therefore sets a
longer interval (``--switch-interval``). Each pass runs a fresh server with CPython's default
and one with the server's own, alternating: N clients connect at ``--rate`` a second, each is
greeted, sends one message and reads its ack; then all close at once, and the time until the
server is back to its thread count before any client (Linux: ``/proc``) is measured, with the
server's CPU seconds meanwhile. Prints each run, the medians and, last, ``ratio default/own = R``.

    python bench/drain.py [--clients 10000] [--rate 1000] [--passes 3]
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from burst import process_cpu  # bench/burst.py
from harness_scale import raise_nofile  # bench/harness_scale.py
from throughput import start, stop  # bench/throughput.py

CPYTHON_DEFAULT = 0.005
OWN = None  # the server's own default: no --switch-interval


def threads(pid: int) -> int:
    """Threads a live process has now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise RuntimeError(f"no thread count for {pid}")


def connect_all(port: int, clients: int, rate: float, timeout: float) -> list[socket.socket]:
    """Connect ``clients`` at ``rate`` a second; each is greeted, sends one message and reads its ack."""
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    bufs: dict[int, bytes] = {}
    greeted: set[int] = set()
    acked = 0
    t0 = time.monotonic()
    try:
        while acked < clients:
            now = time.monotonic()
            if now - t0 > timeout:
                raise TimeoutError(f"{acked} of {clients} clients acked after {timeout:g} s")
            while len(socks) < min(clients, int((now - t0) * rate) + 1):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                socks.append(s)
                bufs[s.fileno()] = b""
                sel.register(s, selectors.EVENT_READ)
            for key, _ in sel.select(0.01):
                s = key.fileobj  # type: ignore[assignment]
                fd = s.fileno()
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError(f"the server closed a connection: {bufs[fd]!r}")
                *lines, bufs[fd] = (bufs[fd] + data).split(b"\n")
                for line in lines:
                    if line.startswith(b"HELLO") and fd not in greeted:
                        greeted.add(fd)
                        s.sendall(f"/id d{fd} leaving soon\n".encode())
                    elif line.startswith(b"Mensaje recibido:"):
                        acked += 1
                        sel.unregister(s)
        return socks
    except BaseException:
        for s in socks:
            s.close()
        raise
    finally:
        sel.close()


def one(interval: float | None, clients: int, rate: float, give_up: float) -> tuple[float, float]:
    """A fresh server, the clients, then all leave: seconds until its threads are back, and its CPU seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "chat.server", "--port", "0", "--db", str(Path(tmp) / "log.db")]
        cmd += ["--no-relay", "-q", "--max-clients", str(clients + 100)]
        cmd += [] if interval is None else ["--switch-interval", str(interval)]
        proc, port = start(cmd, Path.cwd())
        try:
            idle = threads(proc.pid)
            socks = connect_all(port, clients, rate, timeout=120)
            cpu0, t0 = process_cpu(proc.pid), time.monotonic()
            for s in socks:
                s.close()
            while threads(proc.pid) > idle and time.monotonic() - t0 < give_up:
                time.sleep(0.05)
            return time.monotonic() - t0, process_cpu(proc.pid) - cpu0
        finally:
            stop(proc, 60)


def main() -> int:
    """Alternate CPython's default interval and the server's own; print the drain times and their ratio."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=10_000, help="clients that leave at once")
    ap.add_argument("--rate", type=float, default=1000.0, help="clients connected per second")
    ap.add_argument("--passes", type=int, default=3, help="runs of each interval, alternated")
    ap.add_argument("--give-up", type=float, default=120.0, help="seconds after which a drain counts as that long")
    a = ap.parse_args()
    if not raise_nofile(a.clients + 1000, f"{a.clients} clients"):
        return 2
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    times: dict[str, list[float]] = {"default": [], "own": []}
    for k in range(a.passes):
        for name, interval in (("default", CPYTHON_DEFAULT), ("own", OWN)):
            took, cpu = one(interval, a.clients, a.rate, a.give_up)
            times[name].append(took)
            shown = f"{interval:g} s" if interval is not None else "the server's own"
            print(f"pass {k + 1}, switch interval {shown}: threads ended in {took:.1f} s, server CPU {cpu:.1f} s")
    d, o = statistics.median(times["default"]), statistics.median(times["own"])
    print(f"median drain: default {d:.1f} s, own {o:.1f} s")
    print(f"ratio default/own = {d / o:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
