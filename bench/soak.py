"""Reliability in figures: the reference server under load, crashes, hostile input and stops; the harness run after run.

Every row is measured in this run, on this machine, and judged by the harness's own checker (the
same invariants as ``chat-harness run``): what was done, what was lost, the verdict.

    python bench/soak.py            # the full table (sized for about 6 minutes on 2 cores)
    python bench/soak.py --quick    # a smoke run (under a minute)

Rows: load (many clients, some reconnecting with resends; every client receives every other's
messages), crash (SIGKILL at random moments under load, restart on the same log), hostile input
(generated bad and tricky lines over live connections), shutdown under load (Enter, SIGINT,
SIGTERM in turn), exposure (default bind, limits, SQL, escaping of what clients send), and the
harness itself run again and again (leftover processes, temporary directories, descriptors).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import ports  # noqa: E402
from harness.checker import CheckResult  # noqa: E402
from harness.history import INFO, latencies  # noqa: E402
from harness.plan import (  # noqa: E402
    HALF_CLOSE,
    HALF_RESET,
    NO_READ,
    PAUSE,
    RAW,
    RECONNECT,
    SEND,
    TRICKLE,
    ClientPlan,
    Op,
    Plan,
)
from harness.runner import LiveServer, NemesisContext, RunConfig, run_plan  # noqa: E402
from harness.scenario import percentile, stop_and_record  # noqa: E402
from harness.target import ServerRun, TargetError, reference  # noqa: E402


@dataclass
class Row:
    """One line of the table."""

    name: str
    done: str
    lost: str
    verdict: str
    ok: bool


@dataclass
class Size:
    """How big each row is."""

    clients: int
    seconds: float
    crashes: int
    inputs: int
    stops: int
    harness_runs: int


FULL = Size(clients=1000, seconds=60.0, crashes=20, inputs=10_000, stops=50, harness_runs=100)
QUICK = Size(clients=100, seconds=5.0, crashes=5, inputs=1_000, stops=6, harness_runs=10)


def lost_text(result: CheckResult) -> str:
    """Lost and duplicated counts of a checked run."""
    c = result.counts
    return f"lost {c.lost}, dup {c.duplicated}"


def summary(result: CheckResult) -> str:
    """valid, or the anomaly kinds."""
    if result.valid:
        return "valid"
    kinds: dict[str, int] = {}
    for a in result.anomalies:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    return ("INVALID: " if result.valid is False else "unknown: ") + ", ".join(f"{k} x{n}" for k, n in kinds.items())


# ---------------------------------------------------------------------------
# 1. Load
# ---------------------------------------------------------------------------


def wave(clients: int, seconds: float, rng: random.Random, tag: str) -> list[ClientPlan]:
    """Clients that each send three messages spread over ``seconds``; one in ten reconnects midway and resends."""
    plans = []
    for c in range(clients):
        ops: list[Op] = []
        for i in range(3):
            ops.append(Op(SEND, f"{tag} {c} {i} ñ"))
            if c % 10 == 0 and i == 1:
                ops.append(Op(RECONNECT))
            ops.append(Op(PAUSE, seconds=round(seconds / 3 * rng.uniform(0.5, 1.5), 3)))
        plans.append(ClientPlan(ops, start=round(rng.uniform(0, seconds / 3), 3)))
    return plans


def load(size: Size, work: Path, rng: random.Random) -> Row:
    """``size.clients`` clients for ``size.seconds``, every one receiving every other's messages; then a smaller wave.

    CPython keeps memory it freed, so the server's RSS after the first wave is its plateau: the second
    wave must not raise it (a leak per connection or per message would), and the threads must return
    to the baseline after each.
    """
    live = LiveServer(reference(), work / "load")
    srv = live.ensure()
    samples: list[tuple[int | None, int | None]] = [(srv.rss_kb(), srv.threads())]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            samples.append((srv.rss_kb(), srv.threads()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ends = []
    t0 = time.monotonic()
    try:
        plan = Plan(wave(size.clients, size.seconds, rng, "load"), seed=1, name="soak-load")
        outcome = run_plan(live.target, plan, work / "load" / "run", server=live)
        wall = time.monotonic() - t0
        ends.append((srv.rss_kb(), srv.threads()))
        plan = Plan(wave(size.clients // 5, 5.0, rng, "again"), seed=2, name="soak-load-again")
        again = run_plan(live.target, plan, work / "load" / "again", server=live)
        ends.append((srv.rss_kb(), srv.threads()))
    finally:
        done.set()
        sampler.join(5)
        live.close()
    lat = sorted(v for _, v, _ in latencies(outcome.records))
    p99 = percentile(lat, 0.99)
    rss = [r for r, _ in samples if r is not None]
    threads = [t for _, t in samples if t is not None]
    (rss1, threads1), (rss2, threads2) = ends
    back = threads1 is not None and threads2 is not None and max(threads1, threads2) <= threads[0]
    flat = rss1 is not None and rss2 is not None and rss2 <= rss1 + 2048
    tracebacks = sum(
        a.kind in ("crash", "thread-died", "traceback") for a in [*outcome.result.anomalies, *again.result.anomalies]
    )
    done_text = (
        f"{size.clients} clients for {size.seconds:g} s (took {wall:.0f} s), every one receiving all the others' messages;"
        f" {outcome.result.counts.acked} acked, p99 ack {1000 * (p99 or 0):.0f} ms; then {size.clients // 5} more clients;"
        f" server RSS MB start/peak/after/after again {rss[0] // 1024}/{max(rss) // 1024}/{(rss1 or 0) // 1024}/{(rss2 or 0) // 1024},"
        f" threads {threads[0]}/{max(threads)}/{threads1}/{threads2}"
    )
    ok = bool(outcome.result.valid) and bool(again.result.valid) and back and flat and tracebacks == 0
    verdict = summary(outcome.result)
    if again.result.valid is not True:
        verdict += f"; second wave {summary(again.result)}"
    verdict += ("" if back else "; threads not back to baseline") + ("" if flat else "; RSS grew in the second wave")
    return Row("load", done_text, lost_text(outcome.result) + f", tracebacks {tracebacks}", verdict, ok)


# ---------------------------------------------------------------------------
# 2. Crash
# ---------------------------------------------------------------------------


def crash(size: Size, work: Path, rng: random.Random) -> Row:
    """SIGKILL at a random moment under load, restart on the same log; ``size.crashes`` rounds in one run."""
    integrity: list[str] = []

    def nemesis(n: NemesisContext) -> None:
        for _ in range(size.crashes):
            if not n.wait(rng.uniform(0.2, 0.8)):
                return
            srv = n.live.run
            assert srv is not None
            n.event("kill", window="crash", phase="start", method="SIGKILL")
            srv.stop("kill")
            integrity.append(srv.integrity())
            n.history.add(INFO, "integrity", result=integrity[-1], after="SIGKILL")
            n.restarted = True
            n.live.restart(wait_port=False)
            n.event("restarted", window="crash", phase="end")

    seconds = size.crashes * 0.6 + 2
    clients = [
        ClientPlan([op for i in range(int(seconds / 0.05)) for op in (Op(SEND, f"c{c} {i}"), Op(PAUSE, seconds=0.05))])
        for c in range(20)
    ]
    outcome = run_plan(
        reference(),
        Plan(clients, seed=2, name="soak-crash"),
        work / "crash",
        config=RunConfig(nemesis=nemesis, resources=False),
    )
    ok_rounds = sum(r == "ok" for r in integrity)
    c = outcome.result.counts
    done_text = f"{len(integrity)} SIGKILLs under 20 chatting clients, restart on the same log; {c.acked} acked"
    verdict = summary(outcome.result)
    return Row(
        "crash",
        done_text,
        lost_text(outcome.result) + f"; integrity ok {ok_rounds}/{len(integrity)}",
        verdict,
        bool(outcome.result.valid) and ok_rounds == len(integrity) == size.crashes,
    )


# ---------------------------------------------------------------------------
# 3. Hostile input
# ---------------------------------------------------------------------------

SQL = ["'; DROP TABLE mensajes; --", "Robert'); DROP TABLE mensajes;--", '" OR 1=1 --', "\\'\\\"%_"]
MULTI = ["ñ", "€", "😀", "ŉ", "𝄞"]


def hostile_op(rng: random.Random, max_line: int) -> Op:
    """One generated input: a raw bad line, a tricky but valid text, an overlong line, a cut or a trickled one."""
    kind = rng.randrange(8)
    if kind == 0:  # invalid UTF-8
        bad = rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xc0\xaf"])
        return Op(RAW, data=(b"caf" + bad + b" x").hex())
    if kind == 1:  # NUL, C0 and C1 controls, terminal escapes
        ctl = rng.choice(["\x00", "\x07", "\x1b[31m", "\x1b]0;pwned\x07", "\x7f", "\u0085", "\u009b31m", "\r"])
        return Op(RAW, data=f"ctl {ctl} end".encode().hex())
    if kind == 2:  # SQL
        return Op(SEND, rng.choice(SQL))
    if kind == 3:  # overlong
        return Op(RAW, data=(b"L" * (max_line + rng.randrange(1, 5000))).hex())
    if kind == 4:  # a multibyte character split at every byte boundary (one byte per write)
        return Op(TRICKLE, f"{rng.choice(MULTI)}{rng.choice(MULTI)}", seconds=0.001)
    if kind == 5:  # a line that never ends
        return Op(rng.choice([HALF_CLOSE, HALF_RESET]), f"never ends {rng.choice(MULTI)}")
    if kind == 6:  # faster than the server reads
        return Op(SEND, f"flood {rng.choice(MULTI)}", pipelined=True)
    return Op(
        SEND, "".join(rng.choice(["a", " ", "ñ", "😀", "'", '"', "\\", "%"]) for _ in range(rng.randrange(1, 40)))
    )


def hostile(size: Size, work: Path, rng: random.Random) -> Row:
    """``size.inputs`` generated inputs over live connections, judged by the harness's checker."""
    target = reference()
    max_line = 4096
    clients, made = [], 0
    per_client = 200
    while made < size.inputs:
        ops = []
        for _ in range(min(per_client, size.inputs - made)):
            op = hostile_op(rng, max_line)
            ops.append(op)
            if op.kind in (HALF_CLOSE, HALF_RESET):
                ops.append(Op(RECONNECT))
            made += 1
        ops.insert(len(ops) // 2, Op(NO_READ, seconds=0.2))
        clients.append(ClientPlan(ops))
    outcome = run_plan(target, Plan(clients, seed=3, name="soak-hostile"), work / "hostile")
    c = outcome.result.counts
    stderr = (outcome.server_dir / "server.stderr").read_bytes() if outcome.server_dir else b""
    tracebacks = stderr.count(b"Traceback")
    done_text = (
        f"{made} inputs on {len(clients)} connections: {c.acked} stored and acked, {c.failed} refused with an error,"
        f" {c.indeterminate} cut off before their end or unanswered on a cut connection (none may be stored)"
    )
    ok = bool(outcome.result.valid) and tracebacks == 0
    return Row(
        "hostile input",
        done_text,
        lost_text(outcome.result) + f", tracebacks {tracebacks}",
        summary(outcome.result),
        ok,
    )


# ---------------------------------------------------------------------------
# 4. Shutdown under load
# ---------------------------------------------------------------------------


def shutdowns(size: Size, work: Path, rng: random.Random) -> Row:
    """``size.stops`` stops (Enter, SIGINT, SIGTERM in turn) with clients mid-send, each judged by invariant 9."""
    methods = ["stdin-newline", "sigint", "sigterm"]
    good, lost, slowest, bad = 0, 0, 0.0, []
    for k in range(size.stops):
        method = methods[k % 3]
        stopped: list[float] = []

        def nemesis(n: NemesisContext, method: str = method, stopped: list[float] = stopped) -> None:
            if n.wait(rng.uniform(0.15, 0.4)):
                t = time.monotonic()
                stop_and_record(n, method)
                stopped.append(time.monotonic() - t)

        clients = [
            ClientPlan([op for i in range(40) for op in (Op(SEND, f"s{c} {i}"), Op(PAUSE, seconds=0.02))])
            for c in range(10)
        ]
        outcome = run_plan(
            reference(),
            Plan(clients, seed=100 + k, name="soak-stop"),
            work / "stops" / f"{k}-{method}",
            config=RunConfig(nemesis=nemesis, resources=False),
        )
        lost += outcome.result.counts.lost
        slowest = max([slowest, *stopped])
        if outcome.result.valid and stopped:
            good += 1
        else:
            bad.append(f"{k} {method}: {summary(outcome.result)[:120]}")
    verdict = "valid" if not bad else "; ".join(bad[:3])
    done_text = (
        f"{size.stops} stops (Enter, SIGINT, SIGTERM in turn) under 10 chatting clients; slowest {slowest:.2f} s"
    )
    return Row("shutdown", done_text, f"lost {lost}; clean {good}/{size.stops}", verdict, good == size.stops)


# ---------------------------------------------------------------------------
# 5. Exposure
# ---------------------------------------------------------------------------


def exposure(work: Path) -> Row:
    """Default bind, limits under a flood, parameterised SQL, escaped control characters in the server's log."""
    findings = []
    # The default host: start the server as a user would, with no --host.
    cmd = list(reference().command)
    i = cmd.index("--host")
    del cmd[i : i + 2]
    limits = ("--max-clients", "20", "--idle-timeout", "1", "--max-line", "1000")
    srv = ServerRun(replace(reference(), command=(*cmd, *limits)), work / "exposure").start()
    try:
        bound = {address for address, _ in ports.listeners(srv.port) or []}
        findings.append(("binds loopback only", bound == {"127.0.0.1"}, ", ".join(sorted(bound))))
        over = _connect_many(srv.port, 40)
        findings.append(("max clients 20 holds under 40", over == 20, f"{over} refused"))
        answer = _one_line(srv.port, b"/say " + b"x" * 5000 + b"\n")
        findings.append(
            ("an over-long line is refused", answer.startswith(b"ERROR"), answer[:40].decode(errors="replace"))
        )
        idle_closed = _idle_closed(srv.port, 3.0)
        findings.append(("an idle client is dropped after the idle timeout", idle_closed, ""))
        _one_line(
            srv.port, b"/say esc \x1b[31mred\x1b]0;title\x07 \x9b2J end\n"
        )  # answered: anything logged is written
        out = b"".join(p.read_bytes() for p in (srv.stdout_path, srv.stderr_path) if p.exists())
        findings.append(
            (
                "no control character a client sent reaches the server's log (it logs no client text)",
                b"\x1b" not in out and b"\x07" not in out,
                "",
            )
        )
        mangled = _sql_verbatim(srv.port, srv.db_path)
        findings.append(("SQL injection texts are stored verbatim, the table intact", not mangled, "; ".join(mangled)))
    finally:
        srv.stop()
    failed = [f"{name} ({why})" if why else name for name, ok, why in findings if not ok]
    done_text = "; ".join(name for name, ok, _ in findings if ok)
    return Row("exposure", done_text, "-", "valid" if not failed else "FAILED: " + "; ".join(failed), not failed)


def _connect_many(port: int, n: int) -> int:
    """Open ``n`` connections at once; how many were refused with an error line and a close."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]
    refused = 0
    try:
        for s in socks:
            data = b""
            with contextlib.suppress(OSError):
                while b"\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            if data.startswith(b"ERROR"):
                refused += 1
    finally:
        for s in socks:
            s.close()
    return refused


def _one_line(port: int, line: bytes) -> bytes:
    """Send one line after the greeting; the first answer line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        f = s.makefile("rb")
        f.readline()  # HELLO
        s.sendall(line)
        while True:
            answer = f.readline()
            if not answer or not answer.startswith((b"HIST", b"MSG")):
                return answer


def _idle_closed(port: int, within: float) -> bool:
    """Whether a silent client is disconnected within ``within`` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=within) as s:
        deadline = time.monotonic() + within
        with contextlib.suppress(OSError):
            while time.monotonic() < deadline:
                if not s.recv(4096):
                    return True
    return False


def _sql_verbatim(port: int, db: Path) -> list[str]:
    """Send SQL injection texts; those not stored exactly as sent (or a table that lost rows)."""
    import sqlite3

    for text in SQL:
        _one_line(port, f"/say {text}".encode() + b"\n")
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        stored = [row[0] for row in conn.execute("SELECT contenido FROM mensajes ORDER BY id")]
    return [t for t in SQL if t not in stored]


# ---------------------------------------------------------------------------
# 6. The harness, again and again
# ---------------------------------------------------------------------------


def harness_runs(size: Size, work: Path) -> Row:
    """``size.harness_runs`` short runs of the command line in this process: what is left after them."""
    from harness.cli import main

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    private = work / "tmp"  # the runs' temp files go here, so other programs' (or tests') cannot be counted
    private.mkdir(parents=True, exist_ok=True)

    def temps() -> set[str]:
        return {p.name for p in private.iterdir()}

    def children() -> list[str]:
        me = os.getpid()
        return [
            proc.name
            for proc in Path("/proc").iterdir()
            if proc.name.isdigit() and (ports.stat(int(proc.name)) or (0,))[0] == me
        ]

    saved, tempfile.tempdir = tempfile.tempdir, str(private)
    try:
        main(["run", "exit-word", "--quiet", "--jobs", "1", "--report-dir", str(work / "warm")])  # imports, caches
        fds0, temps0, kids0 = fds(), temps(), children()
        codes: dict[int, int] = {}
        t0 = time.monotonic()
        for k in range(size.harness_runs):
            scenario = ["exit-word", "bad-input", "pipelined"][k % 3]
            with contextlib.redirect_stderr(io.StringIO()):
                code = main(
                    ["run", scenario, "--quiet", "--jobs", "1", "--seed", str(k), "--report-dir", str(work / "runs")]
                )
            codes[code] = codes.get(code, 0) + 1
        wall = time.monotonic() - t0
    finally:
        tempfile.tempdir = saved
    deadline = time.monotonic() + 5  # a child reaped a moment late is not a leftover
    while [k for k in children() if k not in kids0] and time.monotonic() < deadline:
        time.sleep(0.05)
    left_fds, left_temps, left_kids = fds() - fds0, temps() - temps0, [k for k in children() if k not in kids0]
    done_text = f"{size.harness_runs} runs of exit-word / bad-input / pipelined in one process ({wall:.0f} s)"
    leftovers = f"processes {len(left_kids)}, temp dirs {len(left_temps)}, descriptors {left_fds:+d}"
    ok = codes == {0: size.harness_runs} and not left_kids and not left_temps and left_fds <= 0
    return Row(
        "harness x N", done_text, leftovers, "valid" if codes == {0: size.harness_runs} else f"exit codes {codes}", ok
    )


def main() -> int:
    """Measure every row, print the table; exit 1 if any row misses its goal."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", nargs="*", help="rows to run (load crash hostile shutdown exposure harness)")
    args = ap.parse_args()
    size = QUICK if args.quick else FULL
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * size.clients + 1000))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    print(f"soak: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, descriptors {want}; {size}", flush=True)
    rows: list[Callable[[Path, random.Random], Row]] = [
        lambda w, r: load(size, w, r),
        lambda w, r: crash(size, w, r),
        lambda w, r: hostile(size, w, r),
        lambda w, r: shutdowns(size, w, r),
        lambda w, r: exposure(w),
        lambda w, r: harness_runs(size, w),
    ]
    names = ["load", "crash", "hostile", "shutdown", "exposure", "harness"]
    results = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        for name, row in zip(names, rows, strict=True):
            if args.only and name not in args.only:
                continue
            started = time.monotonic()
            try:
                result = row(Path(tmp) / name, random.Random(f"{args.seed}-{name}"))
            except (TargetError, OSError, subprocess.SubprocessError) as exc:
                result = Row(name, "could not run", "-", f"ERROR: {exc}", False)
            results.append(result)
            mark = "ok  " if result.ok else "MISS"
            print(
                f"{mark} {result.name:<14} {time.monotonic() - started:5.0f} s | {result.done} | {result.lost} | {result.verdict}",
                flush=True,
            )
    missed = [r.name for r in results if not r.ok]
    print(
        f"soak: {len(results) - len(missed)}/{len(results)} rows met their goal in {time.monotonic() - t0:.0f} s"
        + (f"; missed: {', '.join(missed)}" if missed else "")
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
