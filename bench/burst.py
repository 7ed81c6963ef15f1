"""Where a concurrent burst saturates the reference: ``concurrent-burst``'s load at several sizes.

For each N, first ``bench/load.py``'s raw closed loop with N connections on a fresh relaying
server (relay lines read and skipped, no checking: what the server itself sustains), then a fresh
reference server (relay on, as the scenario runs it) and the scenario's burst: N clients
connecting at once, each sending 3 messages closed-loop. Every message is relayed to the
N-1 other members, so the server's work grows as N^2. Printed per N: acks/s, relay lines/s (what
the server wrote), the server's CPU over the burst (one interpreter: its threads share one lock,
so about 100 % of a core is its ceiling, plus system calls), the harness's clients' CPU over the
same window, the time to the verdict and the verdict. The reference is saturated where its CPU
reaches that ceiling and relay lines/s stop growing; the default of ``concurrent-burst`` is the
smallest N that does it with every client connected and the verdict valid.

    python bench/burst.py [--clients 250,500,1000,2000]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from harness.clients import Options
from harness.log import LogReader
from harness.plan import Plan
from harness.runner import LiveServer, RunConfig, RunOutcome, run_plan
from harness.scenario import chatter
from harness.target import reference

sys.path.insert(0, str(Path(__file__).parent))
import load  # bench/load.py
from harness_scale import checker_cpu, cpu_seconds, rate  # bench/harness_scale.py

MESSAGES = 3  # per client, as the scenario sends


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def why(outcome: RunOutcome) -> str:
    """The anomaly kinds of a verdict that is not valid, with counts."""
    kinds = Counter(a.kind for a in outcome.result.anomalies)
    return f" ({', '.join(f'{k} {v}' for k, v in kinds.most_common())})" if kinds else ""


def raw(n: int, tmp: Path, seconds: float) -> str:
    """``bench/load.py``'s closed loop with ``n`` connections on a fresh relaying server: what the server sustains."""
    live = LiveServer(reference(), tmp / f"raw-{n}")
    try:
        srv = live.ensure()
        warmup = 1.0
        before = process_cpu(srv.pid)
        out = load.run(srv.host, srv.port, n, warmup, seconds, 60, ids=True)
        server = (process_cpu(srv.pid) - before) / (warmup + seconds)
        acks = float(out["acks_per_s"])  # type: ignore[arg-type]
        return (
            f"{n:>6,} raw:     {acks:>6,.0f} acks/s, {acks * (n - 1):9,.0f} relay lines/s, p99 {out['p99_ms']:.0f} ms;"
            f" server CPU {server:4.0%} (bench/load.py: closed loop, relays read and skipped)"
        )
    finally:
        live.close()


def one(n: int, tmp: Path) -> str:
    """Run the burst with ``n`` clients on a fresh server; one line of figures."""
    target = reference()
    live = LiveServer(target, tmp / f"server-{n}")
    try:
        srv = live.ensure()
        plan = Plan(chatter(n, messages=MESSAGES, pause=0.0), seed=1, name="concurrent-burst")
        server0, harness0, started = process_cpu(srv.pid), cpu_seconds(), time.monotonic()
        outcome = run_plan(target, plan, tmp / f"burst-{n}", server=live, config=RunConfig(options=Options()))
        server_cpu, harness_cpu = process_cpu(srv.pid) - server0, cpu_seconds() - harness0
        wall = time.monotonic() - started
        checking = checker_cpu(outcome, LogReader(srv.db_path, target.log))
        acked, span, connected = rate(outcome, n)
        relays = sum(len(r.get("relays") or []) for r in outcome.records if r.f == "conn-end")
        # The server is idle outside the burst but for the probe, so its CPU over the span is its share;
        # the harness's share leaves out the checker, which runs after the burst.
        return (
            f"{n:>6,} harness: {acked:>6,}/{n * MESSAGES:,} acked in {span:5.2f} s = {acked / span:6,.0f} acks/s,"
            f" {relays / span:9,.0f} relay lines/s; CPU over the burst: server {server_cpu / span:4.0%},"
            f" harness {(harness_cpu - checking) / span:4.0%}; all connected: {'NO' if math.isnan(connected) else 'yes'};"
            f" {wall:5.1f} s to the verdict: {outcome.result.summary().split(':')[0]}{why(outcome)}"
        )
    finally:
        live.close()


def main() -> int:
    """Run the sizes one after another and print a line for each."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", default="250,500,1000,2000", help="comma-separated burst sizes")
    ap.add_argument("--keep", type=Path, help="keep the run directories here (default: a temporary one)")
    ap.add_argument("--raw-seconds", type=float, default=3.0, help="length of each raw run (0: none)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in a.clients.split(",")):
            if a.raw_seconds:
                print(raw(n, a.keep or Path(tmp), a.raw_seconds), flush=True)
            print(one(n, a.keep or Path(tmp)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
