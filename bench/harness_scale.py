"""How far the harness scales: N concurrent simulated clients (default 2,000) against the reference server.

Each client connects, sends ``--messages`` messages closed-loop (waiting for each ack), then stays
connected for ``--hold`` seconds so that all of them are connected at once, then closes. The
server runs in its own process with the relay off by default (with it on, N clients mean N-1
relayed copies of every message, which measures the relay rather than the harness; ``--relay``
turns it on). Prints the time to connect every client, acknowledged messages per second, and the
harness's own CPU time per message, all from one run, plus the run's verdict.

    python bench/harness_scale.py [--clients 2000] [--messages 5] [--hold 3] [--relay]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from harness.clients import Options
from harness.history import INVOKE, OK
from harness.plan import PAUSE, SEND, ClientPlan, Op, Plan
from harness.runner import RunConfig, run_plan
from harness.target import reference


def main() -> int:
    """Run the load and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--messages", type=int, default=5)
    ap.add_argument("--hold", type=float, default=3.0)
    ap.add_argument("--relay", action="store_true", help="leave the server's relay on")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.clients * 2 + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, a.clients * 2 + 1000), hard))
    target = reference() if a.relay else replace(reference().with_args("--no-relay"), relay="none")
    ops = [Op(SEND, f"message {i} from a simulated client") for i in range(a.messages)] + [Op(PAUSE, seconds=a.hold)]
    plan = Plan([ClientPlan(ops) for _ in range(a.clients)], seed=1, name="scale")
    config = RunConfig(options=Options(connect_timeout=30.0, ack_timeout=30.0), resource_wait=10.0)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_plan(target, plan, Path(tmp) / "run", config=config)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    user, system = ru1.ru_utime - ru0.ru_utime, ru1.ru_stime - ru0.ru_stime
    cpu = user + system
    records = outcome.records
    run = next(r for r in records if r.f == "run")
    connects = [r.time for r in records if r.f == "connect" and r.type == OK and r.client < a.clients]
    invokes = [r.time for r in records if r.f == "send" and r.type == INVOKE and r.client < a.clients]
    acks = [r.time for r in records if r.f == "send" and r.type == OK and r.client < a.clients]
    start = run.time
    span = max(acks) - min(invokes) if acks else float("nan")
    print(f"clients: {a.clients} (relay {'on' if a.relay else 'off'}), {a.messages} closed-loop messages each")
    print(f"connected: {len(connects)}/{a.clients}; all connected {max(connects) - start:.2f} s after the start")
    print(f"acknowledged: {len(acks)}/{a.clients * a.messages} in {span:.2f} s = {len(acks) / span:.0f} messages/s")
    per = 1e6 / max(1, len(acks))
    print(
        f"harness CPU: {cpu:.1f} s for the whole run = {cpu * per:.0f} us per message "
        f"({user * per:.0f} us in Python, {system * per:.0f} us in the kernel: loopback TCP, connects, closes)"
    )
    print(f"verdict: {outcome.result.summary()}")
    return 0 if outcome.result.valid else 1


if __name__ == "__main__":
    sys.exit(main())
