"""What the fault proxy costs when it injects nothing: added latency per message and throughput, vs direct.

In one run, against the same threaded echo server (``bench/echo_server.py``, its own process):

* latency: one client, ping-pong of one short line, ``--rounds`` times direct and through the
  proxy (interleaved in blocks); prints p50/p99 of each and the difference;
* throughput: ``bench/load.py`` (its own process, ``--clients`` closed-loop connections) direct and
  through the proxy; prints acks per second and the ratio.

Target (from the issue): at most 200 us added at p50.

    python bench/proxy_overhead.py [--rounds 4000] [--clients 20] [--duration 3]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from harness.faults import FaultProxy

HERE = Path(__file__).resolve().parent
PY = sys.executable


def percentile(values: list[float], q: float) -> float:
    """Exact nearest-rank percentile."""
    values = sorted(values)
    return values[max(0, min(len(values) - 1, int(q * len(values) + 0.999999) - 1))]


def ping(port: int, rounds: int) -> list[float]:
    """Round-trip times of one line, ``rounds`` times, on one connection."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.recv(100)  # the echo server's greeting
        for _ in range(rounds):
            t0 = time.perf_counter()
            s.sendall(b"ping 0123456789\n")
            got = b""
            while not got.endswith(b"\n"):
                got += s.recv(100)
            out.append(time.perf_counter() - t0)
    return out


def load(port: int, clients: int, duration: float) -> float:
    """Acks per second from the load generator."""
    out = subprocess.run(
        [PY, str(HERE / "load.py"), "--port", str(port), "--clients", str(clients), "--duration", str(duration)],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    )
    return float(json.loads(out.stdout)["acks_per_s"])


def main() -> int:
    """Measure and print."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--duration", type=float, default=3.0)
    a = ap.parse_args()
    echo = subprocess.Popen([PY, str(HERE / "echo_server.py"), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None
        port = int(echo.stdout.readline().rsplit(":", 1)[1])
        proxy = FaultProxy(("127.0.0.1", port), seed=1).start()
        try:
            direct: list[float] = []
            proxied: list[float] = []
            block = max(1, a.rounds // 8)
            for _ in range(8):  # interleaved, so both see the same machine
                direct += ping(port, block)
                proxied += ping(proxy.port, block)
            d50, d99 = percentile(direct, 0.5), percentile(direct, 0.99)
            p50, p99 = percentile(proxied, 0.5), percentile(proxied, 0.99)
            tput_direct = load(port, a.clients, a.duration)
            tput_proxy = load(proxy.port, a.clients, a.duration)
        finally:
            proxy.close()
    finally:
        echo.kill()
        echo.wait(5)
    print(f"round trip of one line, {len(direct)} each:     p50 us   p99 us")
    print(f"  direct                              {d50 * 1e6:8.0f} {d99 * 1e6:8.0f}")
    print(f"  through the proxy (no faults)       {p50 * 1e6:8.0f} {p99 * 1e6:8.0f}")
    print(
        f"  added by the proxy                  {(p50 - d50) * 1e6:8.0f} {(p99 - d99) * 1e6:8.0f}"
        f"   (ratio {p50 / d50:.2f}x at p50)"
    )
    print(
        f"throughput, {a.clients} closed-loop clients:  direct {tput_direct:.0f}/s, through the proxy "
        f"{tput_proxy:.0f}/s = {tput_proxy / tput_direct:.0%}"
    )
    added = (p50 - d50) * 1e6
    print(f"added latency at p50 = {added:.0f} us   target <= 200 us   {'met' if added <= 200 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
