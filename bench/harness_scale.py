"""How far the harness scales, and whether it is ever the bottleneck: three loads on one reference server.

1. raw: ``bench/load.py``'s closed-loop generator (one thread, ``selectors``, no checking) drives
   the server for ``--seconds`` with the lines the harness sends (``/id CID TEXT``, as long): the
   rate the server itself sustains here for that traffic. Then the same generator again, recording
   every send and ack in the harness's history (``--record``): its CPU per message is the floor
   under the harness's, what recording costs with no event loop, session, audit or checker.
2. harness: the harness's simulated clients, the same number, closed-loop, every message recorded
   in the history, audited against the log and judged by the checker: the rate the harness drives
   and checks. ``ratio harness/raw`` is this over (1); target >= 0.8.
   (1) and (2) alternate ``--passes`` times: this machine's speed drifts within minutes, so each
   pass's ratio pairs two runs made moments apart, and the medians are printed last.
3. scale: ``--clients`` (default 10,000) simulated clients, started at ``--spawn-rate`` (default 500) a
   second, each sending ``--messages`` messages, staying connected until all have been connected
   together for 3 s, and leaving at the same rate. Target: all connected at once (counted from the
   history: the most clients greeted and not yet ending at one moment) and verdict valid; the exit
   status is 1 when either is missed.

The server runs in its own process with the relay off (with it on, N clients mean N-1 relayed
copies of every message, which measures the relay rather than the harness). Harness CPU is this
process's and its workers' (not the server's), per acknowledged message, measured around each run;
"checking" is the checker alone, timed again on the run's history and log, and "driving" the rest
(clients, history, audit, server start and probe). Each is split into user and kernel time, and the raw
generator's own CPU per message is printed beside it: on loopback the sender's kernel time includes
delivering each line to the server and waking its thread, a cost every client pays here and one that
moves with this machine's speed.

    python bench/harness_scale.py [--clients 10000] [--messages 5] [--load-clients 200] [--workers N]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from harness.checker import check
from harness.clients import Options
from harness.history import INVOKE, OK
from harness.log import LogReader
from harness.plan import PAUSE, SEND, ClientPlan, Op, Plan
from harness.runner import LiveServer, RunConfig, RunOutcome, default_workers, run_plan
from harness.target import reference

sys.path.insert(0, str(Path(__file__).parent))
import load  # bench/load.py, the raw generator


def cpu_split() -> tuple[float, float]:
    """User and kernel CPU seconds of this process and of its reaped children (the workers; the server is reaped
    only at the end)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children, user and kernel."""
    return sum(cpu_split())


def measured(live: LiveServer, plan: Plan, rundir: Path, workers: int) -> tuple[RunOutcome, float, float]:
    """Run ``plan`` on the live server; the outcome and the harness CPU it took, user and kernel seconds."""
    config = RunConfig(
        options=Options(connect_timeout=60.0, ack_timeout=60.0), resource_wait=10.0, workers=workers, probe=True
    )
    user, kernel = cpu_split()
    outcome = run_plan(live.target, plan, rundir, server=live, config=config)
    after = cpu_split()
    return outcome, after[0] - user, after[1] - kernel


def checker_cpu(outcome: RunOutcome, log: LogReader) -> float:
    """CPU seconds the checker alone takes on the run's history and the log as it is now."""
    run = next(r for r in outcome.records if r.f == "run")
    rows = log.rows_after(int(run.get("baseline_id") or 0))
    before = cpu_seconds()
    check(outcome.records, rows)
    return cpu_seconds() - before


def rate(outcome: RunOutcome, clients: int) -> tuple[int, float, float]:
    """Acked messages of the plan's clients, their span in seconds, and the time until all had connected."""
    records = outcome.records
    run = next(r for r in records if r.f == "run")
    connects = [r.time for r in records if r.f == "connect" and r.type == OK and r.client < clients]
    invokes = [r.time for r in records if r.f == "send" and r.type == INVOKE and r.client < clients]
    acks = [r.time for r in records if r.f == "send" and r.type == OK and r.client < clients]
    span = max(acks) - min(invokes) if acks else float("nan")
    connected = (
        max(connects) - run.time
        if len({r.client for r in records if r.f == "connect" and r.type == OK and r.client < clients}) == clients
        else float("nan")
    )
    return len(acks), span, connected


def peak_connected(outcome: RunOutcome, clients: int) -> tuple[int, float]:
    """The most of the plan's clients connected at one moment (greeted, not yet ending), and that moment.

    A connection counts from its ``connect`` ok (after the greeting) to the time its ``conn-end``
    says it began to end; ends come before connects at the same time, so the peak is not overstated.
    """
    events: list[tuple[float, int]] = []
    for r in outcome.records:
        if r.client < 0 or r.client >= clients:
            continue
        if r.f == "connect" and r.type == OK:
            events.append((r.time, 1))
        elif r.f == "conn-end":
            end = r.get("end")
            events.append((float(end) if isinstance(end, int | float) else r.time, -1))
    events.sort()
    peak, at, now = 0, float("nan"), 0
    for t, step in events:
        now += step
        if now > peak:
            peak, at = now, t
    run = next(r for r in outcome.records if r.f == "run")
    return peak, at - run.time


def raise_nofile(need: int, who: str) -> bool:
    """Raise ``ulimit -n`` to ``need`` within the hard limit, saying so; False (and why) if the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return True
    if hard < need:
        print(f"ulimit -n is {soft} (hard {hard}): {who} need {need}; raise the hard limit")
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    print(f"raised ulimit -n from {soft} to {need} (hard limit {hard})")
    return True


def main() -> int:
    """Run the three loads and print the figures, the ratio last."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=10_000, help="simulated clients connected at once (scale)")
    ap.add_argument("--messages", type=int, default=5, help="messages per client in the scale run")
    ap.add_argument("--load-clients", type=int, default=200, help="closed-loop clients in the raw and harness runs")
    ap.add_argument("--load-messages", type=int, default=100, help="messages per client in the harness run")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the raw run")
    ap.add_argument("--workers", type=int, default=default_workers(), help="processes for the simulated clients")
    ap.add_argument("--spawn-rate", type=float, default=500.0, help="clients started per second in the scale run")
    ap.add_argument("--passes", type=int, default=3, help="raw and harness runs, alternated (medians printed)")
    a = ap.parse_args()
    if a.passes < 1:
        ap.error("--passes must be at least 1")
    if not raise_nofile(a.clients + 1000, f"{a.clients} clients"):
        return 2
    target = replace(reference().with_args("--no-relay", "--max-clients", str(a.clients + 100)), relay="none")
    with tempfile.TemporaryDirectory() as tmp:
        live = LiveServer(target, Path(tmp) / "server")
        try:
            srv = live.ensure()
            text = "message from a simulated client, about as long as load.py's"
            token = f"abcdef.{a.load_clients // 2}.{a.load_messages // 2}"  # a typical one
            line = f"/id {token} [{token}] {text}\n"  # what the harness sends the reference
            plan = Plan([ClientPlan([Op(SEND, text)] * a.load_messages) for _ in range(a.load_clients)], 1, "rate")
            ratios: list[float] = []
            per_message: list[float] = []
            raw_per_message: list[float] = []
            rec_per_message: list[float] = []
            valid = True
            for n in range(1, a.passes + 1):
                raw = load.run(srv.host, srv.port, a.load_clients, 1.0, a.seconds, len(line), ids=True)
                raw_rate = float(raw["acks_per_s"])  # type: ignore[arg-type]
                raw_user, raw_kernel = float(raw["user_us"]), float(raw["sys_us"])  # type: ignore[arg-type]
                print(
                    f"pass {n}: raw (bench/load.py): {a.load_clients} clients,"
                    f" {raw_rate:,.0f} messages/s, p99 {raw['p99_ms']:.1f} ms;"
                    f" its own CPU {raw_user + raw_kernel:.0f} us per message ({raw_user:.0f} user + {raw_kernel:.0f} kernel)"
                )
                raw_per_message.append(raw_user + raw_kernel)
                rec = load.run(
                    srv.host, srv.port, a.load_clients, 1.0, a.seconds, len(line), ids=True, record=Path(tmp) / f"h{n}"
                )
                rec_user, rec_kernel = float(rec["user_us"]), float(rec["sys_us"])  # type: ignore[arg-type]
                print(
                    f"pass {n}: recording (bench/load.py --record): {float(rec['acks_per_s']):,.0f} messages/s;"  # type: ignore[arg-type]
                    f" its own CPU {rec_user + rec_kernel:.0f} us per message ({rec_user:.0f} user + {rec_kernel:.0f} kernel)"
                )
                rec_per_message.append(rec_user + rec_kernel)
                started = time.monotonic()
                outcome, user, kernel = measured(live, plan, Path(tmp) / f"rate{n}", 1)
                cpu = user + kernel
                wall = time.monotonic() - started
                acked, span, _ = rate(outcome, a.load_clients)
                harness_rate = acked / span
                valid = valid and outcome.result.valid is True
                checking = checker_cpu(outcome, LogReader(srv.db_path, target.log))
                per = 1e6 / max(1, acked)
                print(
                    f"pass {n}: harness: {a.load_clients} clients x {a.load_messages}, {acked:,} acked in {span:.2f} s ="
                    f" {harness_rate:,.0f} messages/s recorded and checked (whole run: {wall:.1f} s);"
                    f" verdict {outcome.result.summary()}"
                )
                for anomaly in outcome.result.anomalies[:2]:  # what a bad verdict is about, to look into
                    print(f"pass {n}:   {anomaly.kind}: {anomaly.message[:200]}; rows {anomaly.rows[:2]}")
                print(
                    f"pass {n}: harness CPU per message: {cpu * per:.0f} us for the whole run"
                    f" ({user * per:.0f} user + {kernel * per:.0f} kernel) ="
                    f" {(cpu - checking) * per:.0f} us driving + {checking * per:.0f} us checking;"
                    f" ratio harness/raw {harness_rate / raw_rate:.2f}"
                )
                ratios.append(harness_rate / raw_rate)
                per_message.append(cpu * per)

            # Clients arrive at --spawn-rate a second (Locust's spawn rate): ten thousand SYNs at once would
            # overflow the listen and SYN queues and measure the kernel's retransmission timers instead. All
            # are connected together for 3 s, then they leave at the same rate: when 10,000 leave within a
            # second, the reference's 10,000 threads sometimes fight over the interpreter lock for minutes.
            ramp = a.clients / a.spawn_rate
            ops = [Op(SEND, f"message {i} from a simulated client") for i in range(a.messages)]
            big = Plan(
                [ClientPlan([*ops, Op(PAUSE, seconds=ramp + 3)], start=c / a.spawn_rate) for c in range(a.clients)],
                1,
                "scale",
            )
            outcome, user, kernel = measured(live, big, Path(tmp) / "scale", a.workers)
            cpu = user + kernel
            workers = next((int(r.get("processes")) for r in outcome.records if r.f == "workers"), 1)
            acked, span, connected = rate(outcome, a.clients)
            failed = sorted(
                {r.client for r in outcome.records if r.f == "connect" and r.type == "fail" and r.client < a.clients}
            )
            if failed:
                why = next(str(r.get("error")) for r in outcome.records if r.f == "connect" and r.type == "fail")
                print(f"  {len(failed)} clients failed to connect at least once (first: {why})")
            peak, peak_at = peak_connected(outcome, a.clients)
            print(
                f"scale: {a.clients:,} clients ({workers} worker process(es)), all connected {connected:.2f} s after the"
                f" start, {peak:,} of them connected at once ({peak_at:.2f} s after the start),"
                f" {acked:,}/{a.clients * a.messages:,} acked in {span:.2f} s = {acked / span:,.0f} messages/s;"
                f" CPU {cpu * 1e6 / max(1, acked):.0f} us per message; verdict {outcome.result.summary()}"
            )
            valid = valid and outcome.result.valid is True and peak == a.clients
        finally:
            live.close()
    each = ", ".join(f"{c:.0f}" for c in raw_per_message)
    print(
        f"raw generator's own CPU per message = {statistics.median(raw_per_message):.0f} us"
        f" (median of {len(raw_per_message)}: {each}): what sending a line and reading its answer costs here"
    )
    each = ", ".join(f"{c:.0f}" for c in rec_per_message)
    print(
        f"recording generator's own CPU per message = {statistics.median(rec_per_message):.0f} us"
        f" (median of {len(rec_per_message)}: {each}): the same, plus the two history records the harness makes"
    )
    each = ", ".join(f"{c:.0f}" for c in per_message)
    print(f"harness CPU per message = {statistics.median(per_message):.0f} us (median of {len(per_message)}: {each})")
    each = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"ratio harness/raw = {statistics.median(ratios):.2f} (median of {len(ratios)}: {each})")
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
