"""Run scenarios side by side: each in a child process of its own, with ports no other child uses.

Most of a scenario's time is spent waiting (pauses, timeouts, a server starting or draining), so
several run at once on a small machine. Each child gets its own slice of ports below the kernel's
ephemeral range: a port the harness picks for one server cannot then be taken, between the pick and
the server's bind, by another scenario's client connecting from an ephemeral port.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from harness import isolation
from harness.scenario import ScenarioResult
from harness.target import kill_all

MAX_JOBS = 8
MIN_SLICE = 100  # ports per scenario at least
CHILD_TIMEOUT = (
    1800.0  # seconds, plus four times --duration: far beyond any budget, so a hung child cannot hang the run
)


def default_jobs() -> int:
    """Scenarios at once by default: two per CPU (they mostly wait), at most ``MAX_JOBS``."""
    return max(1, min(MAX_JOBS, 2 * (os.cpu_count() or 1)))


def ephemeral_low() -> int:
    """The first port the kernel hands out to connecting sockets (Linux), or 32768."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_slices(n: int, spec: str | None) -> list[str]:
    """``n`` disjoint ``LOW-HIGH`` port ranges: slices of ``spec`` if given, else of the ports below the ephemeral range."""
    if spec:
        low, high = (int(x) for x in spec.split("-"))
    else:
        high = ephemeral_low() - 1
        low = max(1024, high - 12000)
        if (high - low + 1) // n < MIN_SLICE:  # the kernel hands out nearly every port: take the top ones
            low, high = 65535 - 4000, 65535
    size = (high - low + 1) // n
    if size < 1:
        raise ValueError(f"port range {low}-{high} is too small for {n} scenarios at once")
    return [f"{low + i * size}-{low + (i + 1) * size - 1}" for i in range(n)]


def run_jobs(
    jobs: Sequence[dict[str, Any]],
    n: int,
    namespace: bool,
    on_done: Callable[[ScenarioResult], None],
    on_tick: Callable[[list[str], int], None],
) -> list[ScenarioResult]:
    """Run ``jobs`` (see ``harness.cli.run_job``), ``n`` at a time, each in a child; results in the order given.

    ``on_done`` hears of each result as it comes; ``on_tick`` (every half second) of the scenarios
    running and how many are done.
    """
    slots = port_slices(n, os.environ.get("CHAT_HARNESS_PORTS"))
    free = list(range(n))
    results: dict[int, ScenarioResult] = {}
    running: dict[Future[ScenarioResult], tuple[int, int]] = {}
    pending = list(range(len(jobs)))
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="scenario")
    # Ctrl+C or SIGTERM only set a flag here: an exception raised inside the pool's locks could leave
    # one held, and the threads waiting on the children would then never be joined.
    signals: list[int] = []
    previous = _catch(signals)
    try:
        while (pending or running) and not signals:
            while pending and free:
                index, slot = pending.pop(0), free.pop(0)
                future = pool.submit(_run_one, jobs[index], namespace, slots[slot])
                running[future] = (index, slot)
            done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                index, slot = running.pop(future)
                free.append(slot)
                results[index] = future.result()
                on_done(results[index])
            on_tick([jobs[i]["scenario"] for i, _ in running.values()], len(results))
    finally:
        if running:  # interrupted: the children die first, so the threads waiting on them return
            kill_all()
        pool.shutdown(wait=True, cancel_futures=True)
        _restore(previous)
    if signals:
        if signals[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signals[0])
    return [results[i] for i in range(len(jobs))]


def _catch(signals: list[int]) -> dict[int, Any]:
    """Make SIGINT and SIGTERM append to ``signals`` (main thread only); return the handlers they had."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # ignored (a background job): it stays ignored
            previous[sig] = signal.signal(sig, lambda signum, frame: signals.append(signum))
    return previous


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _run_one(job: dict[str, Any], namespace: bool, ports: str) -> ScenarioResult:
    """One scenario in its child; a child that fails is an unknown verdict with the reason, not a crash."""
    started = time.monotonic()
    try:
        timeout = CHILD_TIMEOUT + 4 * float(job.get("duration") or 0)
        result = isolation.run(job, timeout, namespace=namespace, env={"CHAT_HARNESS_PORTS": ports})
    except RuntimeError as exc:
        return ScenarioResult(
            job["scenario"],
            job.get("description", ""),
            None,
            reason=f"harness error: {exc}",
            seconds=time.monotonic() - started,
        )
    assert isinstance(result, ScenarioResult)
    return result
