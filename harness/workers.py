"""Worker processes: a plan's clients split across processes, each driving its share on an event loop.

One event loop uses one core; a load of many thousands of clients can need more. ``drive_sharded``
gives each of N worker processes every N-th client of the plan. Each worker records into a history
shard of its own on the run's clock (``CLOCK_MONOTONIC`` is one clock for every process on a
machine, and every shard is stamped from the parent history's start), audits its own acks against
the log, and numbers its connections in a range of its own. The parent then merges the shards into
the run's history by time, so the checker reads one history as if one process had run every client.

Workers are used only where nothing in the run needs the clients in the parent's process: no fault
proxy (clients tell it who is coming), no single-session gate (it restarts the server between
sessions). Across several hosts the same scheme would hold with one condition the invariants then
need: the hosts' clocks agree to well under the shortest gap an invariant compares (see README).
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from harness.audit import LOG_WATCH, Auditor
from harness.clients import Context, Options, SimClient, drive
from harness.history import History, load
from harness.log import LogReader
from harness.plan import ClientPlan
from harness.target import LogMapping
from harness.wire import Wire

CONNS_PER_WORKER = 10_000_000  # worker k numbers connections from (k + 1) * this; the parent (probe) below
START_TIMEOUT = 60.0  # seconds for every worker to import the harness and say it is ready


@dataclass
class Shard:
    """One worker's share of a run (pickled to the worker process)."""

    number: int
    clients: list[tuple[int, ClientPlan]]
    host: str
    port: int
    wire: Wire
    run_id: str
    options: Options
    history_start: float
    path: Path
    timeout: float | None
    audit: tuple[Path, LogMapping, int] | None  # the log to audit acks against, and the baseline row id


def shares(n_clients: int, workers: int) -> list[list[int]]:
    """Client indexes for each worker: every ``workers``-th client, so early and late starters spread evenly."""
    return [list(range(k, n_clients, workers)) for k in range(workers) if k < n_clients]


def _work(shard: Shard, pipe: Connection) -> None:
    """In the worker: wait for the start time, drive the share, report the clients still running."""
    history = History(shard.path, start=shard.history_start)
    auditor = None
    stuck: list[int] | None = None
    try:
        try:
            if shard.audit is not None:
                db, mapping, baseline = shard.audit
                auditor = Auditor(LogReader(db, mapping), history, baseline, watch=LOG_WATCH)
            ctx = Context(shard.host, shard.port, shard.wire, history, shard.run_id, shard.options, auditor)
            ctx._conns = itertools.count((shard.number + 1) * CONNS_PER_WORKER)
            clients = [SimClient(i, plan, ctx) for i, plan in shard.clients]
            pipe.send("ready")
            if pipe.poll(START_TIMEOUT):
                stuck = drive(clients, ctx, shard.timeout, t0=pipe.recv())
        finally:
            if auditor is not None:
                auditor.stop()
            history.close()
        if stuck is not None:  # every record is on disk before the parent hears the result
            pipe.send(stuck)
    finally:
        pipe.close()


def drive_sharded(
    clients: list[ClientPlan],
    ctx: Context,
    workers: int,
    workdir: Path,
    timeout: float | None = None,
    audit: tuple[Path, LogMapping, int] | None = None,
) -> list[int]:
    """Run ``clients`` in ``workers`` processes and merge their histories into ``ctx.history``.

    Returns the indexes of clients still running at the timeout, like ``clients.drive``. Raises
    RuntimeError if a worker cannot start or dies; every worker is gone when this returns.
    """
    mp = multiprocessing.get_context("spawn")  # not fork: this process has threads (auditor, proxy, nemesis)
    workdir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for k, indexes in enumerate(shares(len(clients), workers)):
        shard = Shard(
            k,
            [(i, clients[i]) for i in indexes],
            ctx.host,
            ctx.port,
            ctx.wire,
            ctx.run_id,
            ctx.options,
            ctx.history.start,
            workdir / f"history-{k}.jsonl",
            timeout,
            audit,
        )
        here, there = mp.Pipe()
        proc = mp.Process(target=_work, args=(shard, there), name=f"chat-harness-worker-{k}", daemon=True)
        jobs.append((shard, proc, here, there))
    stuck: list[int] = []
    try:
        for _, proc, _, there in jobs:
            proc.start()
            there.close()
        for shard, proc, here, _ in jobs:
            try:
                if here.poll(START_TIMEOUT) and here.recv() == "ready":
                    continue
            except EOFError:
                proc.join(1)
                raise RuntimeError(f"worker {shard.number} died at start (exit code {proc.exitcode})") from None
            raise RuntimeError(f"worker {shard.number} did not start within {START_TIMEOUT:g} s")
        t0 = time.monotonic()
        for _, _, here, _ in jobs:
            here.send(t0)
        wait = None if timeout is None else timeout + ctx.options.io_timeout + 30
        for shard, proc, here, _ in jobs:
            stuck += _result(shard, proc, here, wait)
    finally:
        for _, proc, here, _ in jobs:
            proc.join(5)  # a worker that reported ends at once; one that did not is killed
            if proc.is_alive():
                proc.kill()
                proc.join(10)
            here.close()
    ctx.history.merge(record for shard, *_ in jobs if shard.path.exists() for record in load(shard.path))
    return sorted(stuck)


def _result(shard: Shard, proc: Any, pipe: Connection, wait: float | None) -> list[int]:
    """What worker ``shard`` reported: the clients it could not finish in time."""
    try:
        if pipe.poll(wait):
            return list(pipe.recv())
    except EOFError:
        pass
    proc.join(1)
    raise RuntimeError(f"worker {shard.number} ended without a result (exit code {proc.exitcode})")
