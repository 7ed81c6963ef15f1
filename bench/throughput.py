"""Durable acks per second of the reference server against a naive baseline and a no-database ceiling.

Runs, in one invocation and on the same machine, 200 closed-loop clients (``bench/load.py``, a
separate process) against:

* reference — ``python -m chat.server --no-relay`` (the relay would make every message 199 sends;
  a second line measures it with the relay on, for information);
* baseline — ``bench/baseline_server.py``: a lock, a new SQLite connection and a commit per message;
* echo — ``bench/echo_server.py``: the same threads and line protocol with no database (the ceiling).

Targets (from the issue): reference >= 10x baseline, >= 60 % of echo, p99 <= 20 ms.

    python bench/throughput.py [--clients 200] [--duration 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
LISTENING = re.compile(rb"listening on \S+:(\d+)")


def start(cmd: list[str], cwd: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server; return it and its port once it prints its listening line."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the servers print it first, or exit (EOF)
    m = LISTENING.search(line)
    if not m:
        proc.kill()
        proc.wait(5)
        raise SystemExit(f"{cmd[2]} did not start: {line!r}")
    return proc, int(m.group(1))


def measure(cmd: list[str], clients: int, duration: float) -> dict[str, float]:
    """Start the server in a fresh directory, load it, stop it; return the load generator's figures."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start(cmd, Path(tmp))
        try:
            out = subprocess.run(
                [
                    PY,
                    str(HERE / "load.py"),
                    "--port",
                    str(port),
                    "--clients",
                    str(clients),
                    "--duration",
                    str(duration),
                ],
                capture_output=True,
                text=True,
                timeout=duration + 120,
                check=True,
            )
            return json.loads(out.stdout)  # type: ignore[no-any-return]
        finally:
            stop(proc, 10)


def stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM a server and wait ``timeout`` seconds for it to exit; then kill it."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def main() -> int:
    """Measure every server, print the table and the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=4.0, help="seconds measured per run")
    ap.add_argument("--rounds", type=int, default=3, help="runs per server, interleaved; the median is kept")
    a = ap.parse_args()
    servers = {
        "reference": [PY, "-m", "chat.server", "--port", "0", "--db", "chat.db", "--quiet", "--no-relay"],
        "baseline": [PY, str(HERE / "baseline_server.py"), "--port", "0", "--db", "chat.db"],
        "echo": [PY, str(HERE / "echo_server.py"), "--port", "0"],
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    for _ in range(a.rounds):
        for name, cmd in servers.items():
            runs[name].append(measure(cmd, a.clients, a.duration))
    relay_on = measure(servers["reference"][:-1], a.clients, a.duration)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    print(f"{a.clients} closed-loop clients, {a.duration:g} s measured per run, median of {a.rounds} interleaved runs")
    print(f"{'server':<22}{'acks/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name in servers:
        print(f"{name:<22}{med(name, 'acks_per_s'):>10.0f}{med(name, 'p50_ms'):>9.1f}{med(name, 'p99_ms'):>9.1f}")
    print(
        f"{'reference, relay on':<22}{relay_on['acks_per_s']:>10.0f}{relay_on['p50_ms']:>9.1f}"
        f"{relay_on['p99_ms']:>9.1f}   (each message also sent to {a.clients - 1} others)"
    )
    ref, base, echo = (med(n, "acks_per_s") for n in ("reference", "baseline", "echo"))
    p99 = med("reference", "p99_ms")
    checks = [
        (f"reference / baseline = {ref / base:.1f}x", ref / base >= 10, "target >= 10x"),
        (f"reference / echo     = {ref / echo:.0%}", ref / echo >= 0.6, "target >= 60 %"),
        (f"reference p99        = {p99:.1f} ms", p99 <= 20, "target <= 20 ms"),
    ]
    for text, ok, target in checks:
        print(f"{text:<36} {target:<16} {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
