"""Run one plan against a live target: plan -> clients -> history -> checker.

The plan is written to the run directory before anything runs, so even a hard kill leaves
``plan.json`` (replayable) and the ``history.jsonl`` streamed so far.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from harness import wire as wires
from harness.audit import LOG_WATCH, Auditor
from harness.checker import CheckResult, judge
from harness.clients import Context, Options, SimClient, drive, execute
from harness.faults import FaultProxy, parse_schedule, run_schedule
from harness.gcpause import collections_held, full_collections_held
from harness.history import FAIL, INFO, INVOKE, OK, History, Record
from harness.index import RunIndex
from harness.log import LogError, LogReader, Row
from harness.plan import CLOSE, PAUSE, RESET, SEND, ClientPlan, Op, Plan
from harness.reuse import (
    GROW_WAVES,
    HOLD,
    MAX_WAVE,
    NEXT_CLIENTS,
    QUIET,
    WATCH_EVERY,
    WORKER_ROUNDS,
    Runs,
    Wave,
    answered,
    filling,
    keeps_workers,
    log_files_only,
    ran_since,
    reused,
    stayed_threads,
    watched,
)
from harness.target import ServerRun, StopResult, Target, describe_fds
from harness.workers import drive_sharded


@dataclass
class RunConfig:
    """How a run is observed."""

    options: Options = field(default_factory=Options)
    audit: bool = True
    probe: bool = True
    resources: bool = True
    resource_wait: float = 5.0
    threads_slack: int = 0
    fds_slack: int = 0
    client_timeout: float | None = 300.0
    progress: Callable[[History], None] | None = None
    nemesis: Callable[[NemesisContext], None] | None = None
    proxy: bool = False  # put the fault proxy between clients and server even with no faults scheduled
    pipelining: bool | None = None  # force pipelined sends on or off (None: what the wire allows)
    workers: int = 1  # processes driving the clients, for runs of MIN_CLIENTS_PER_WORKER clients per worker


T = TypeVar("T")
# Before a run takes its baselines, the log's largest id and the server's thread and descriptor counts get up to
# SETTLE_TIMEOUT seconds to read the same four times in a row, SETTLE_EVERY apart (150 ms unchanged): a writer that
# pauses longer than that between two rows is taken to have finished.
SETTLE_TIMEOUT = 2.0
SETTLE_EVERY = 0.05
MIN_CLIENTS_PER_WORKER = 1000  # below this one event loop keeps up, and a worker's start (~0.3 s) is not worth it


def default_workers() -> int:
    """Worker processes for big runs by default: half the CPUs, the other half left to the server under test.

    Measured on 2 cores with 10,000 clients: one worker connected them all in 12.7 s and every
    message was acknowledged; two workers starved the server (70 s, 38 clients not greeted in time).
    """
    return max(1, (os.cpu_count() or 1) // 2)


def workers_for(plan: Plan, config: RunConfig, proxied: bool, single: bool) -> int:
    """How many processes should drive ``plan``'s clients: 1 unless it is big and nothing needs them here."""
    if proxied or single:  # the fault proxy and the single-session gate live in this process
        return 1
    return max(1, min(config.workers, len(plan.clients) // MIN_CLIENTS_PER_WORKER))


@dataclass
class RunOutcome:
    """What one run produced."""

    rundir: Path
    plan: Plan
    result: CheckResult
    records: list[Record]
    rows: list[Row]
    run_id: str
    seconds: float
    server_pid: int | None = None
    stop: StopResult | None = None
    server_dir: Path | None = None
    index: RunIndex | None = None

    @property
    def ix(self) -> RunIndex:
        """The run's index (built on first use for outcomes made without one)."""
        if self.index is None:
            self.index = RunIndex(self.records, self.rows)
        return self.index


class LiveServer:
    """A target instance that is (re)started on demand and reused across runs."""

    def __init__(self, target: Target, workroot: Path) -> None:
        """Run instances of ``target`` in directories under ``workroot``."""
        self.target = target
        self.workroot = workroot
        self.run: ServerRun | None = None
        self.starts = 0
        self.sessions = 0
        self.held = False  # stopped on purpose: a single-session target is not started again for the next session
        self._lock = threading.Lock()

    def ensure(self) -> ServerRun:
        """A live instance: the current one, or a new one if it died."""
        if self.run is None or not self.run.alive:
            if self.run is not None:
                self.run.kill()
            self.starts += 1
            self.run = ServerRun(self.target, self.workroot / f"server-{self.starts}").start()
        return self.run

    def restart(self, wait_port: bool = True) -> ServerRun:
        """Start again on the same port, in the same directory, over the same log (after a stop or crash).

        ``wait_port=False`` starts at once even if the port is in TIME_WAIT: an immediate restart is tested.
        """
        assert self.run is not None
        old = self.run
        old.kill()
        self.starts += 1
        self.run = ServerRun(self.target, old.workdir, port=old.port, fresh=False)
        return self.run.start(wait_port)

    def next_session(self) -> None:
        """A single-session server ends with its session: start it again (same port, same log) for the next."""
        with self._lock:
            self.sessions += 1
            if self.held:
                return
            if self.run is None:
                self.ensure()
            assert self.run is not None
            self.let_session_end()
            if self.run.alive:
                self.run.sessions += 1
                return
            old = self.run
            self.starts += 1
            self.run = ServerRun(self.target, old.workdir, port=old.port, fresh=False)
            self.run.start()
            self.run.sessions += 1

    def let_session_end(self) -> None:
        """A single-session server that served a session is ending with it: wait for that, do not knock on it."""
        if self.target.single_session and self.run is not None and self.run.sessions and self.run.alive:
            self.run.wait_exit(SESSION_END)

    def close(self) -> StopResult | None:
        """Stop the instance (the target's stop method)."""
        if self.run is None or self.run.proc is None:  # never started (its start failed)
            return None
        try:
            return self.run.stop()
        finally:
            self.run.kill()


def record_stop(history: History, srv: ServerRun, method: str, stop_tracebacks: list[str] | None = None) -> StopResult:
    """Stop ``srv`` by ``method`` and record everything invariant 9 judges about it."""
    began, mark = history.now(), srv.mark()
    result = srv.stop(method)
    after = srv.aftermath(result, mark)
    if stop_tracebacks is not None:
        stop_tracebacks.extend(tb["text"] for tb in after["tracebacks"])
    history.add(INFO, "shutdown", began=round(began, 6), **after)
    return result


@dataclass
class NemesisContext:
    """What a nemesis (something done to the server while clients run) can use and must report."""

    live: LiveServer
    target: Target
    history: History
    clients_done: threading.Event
    server_down: bool = False  # the nemesis left the server stopped on purpose
    restarted: bool = False  # thread and descriptor baselines no longer apply
    stop_tracebacks: list[str] = field(default_factory=list)  # judged with their stop, not as crashes

    def wait(self, seconds: float) -> bool:
        """Sleep; False if the clients finished meanwhile."""
        return not self.clients_done.wait(seconds)

    def event(self, event: str, **value: Any) -> None:
        """Record what was done (shown as a window on the report's plots)."""
        self.history.add(INFO, "nemesis", event=event, **value)
        self.history.flush()


def settle(sample: Callable[[], T], timeout: float = 1.0, every: float = 0.02) -> T:
    """A reading that stays the same for four samples in a row, ``every`` seconds apart (or the last one at the
    timeout)."""
    deadline = time.monotonic() + timeout
    last, same = sample(), 0
    while same < 3 and time.monotonic() < deadline:
        time.sleep(every)
        now = sample()
        same = same + 1 if now == last else 0
        last = now
    return last


def _max_id(reader: LogReader) -> int | str:
    """The log's largest id, or why it cannot be read (a str, equal from one reading to the next)."""
    try:
        return reader.max_id()
    except LogError as exc:
        return str(exc)


def wait_back(sample: Callable[[], int | None], baseline: int | None, slack: int, timeout: float) -> int | None:
    """Poll until the reading is back to ``baseline + slack`` (or the timeout); return the last reading."""
    deadline = time.monotonic() + timeout
    value = sample()
    while baseline is not None and value is not None and value > baseline + slack and time.monotonic() < deadline:
        time.sleep(0.05)
        value = sample()
    return value


RUN_ID_LEN = 6
SESSION_END = 5.0  # seconds a single-session server may take to exit after its session


def new_run_id() -> str:
    """A short random id that prefixes every token of a run."""
    return secrets.token_hex(RUN_ID_LEN // 2)


class _Progress(threading.Thread):
    """Calls the progress callback and flushes the history twice a second while clients run."""

    def __init__(self, history: History, callback: Callable[[History], None] | None) -> None:
        super().__init__(name="progress", daemon=True)
        self.history, self.callback = history, callback
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.history.flush()
            if self.callback is not None:
                self.callback(self.history)


def settled(target: Target, plan: Plan, config: RunConfig, own_server: bool) -> tuple[Target, RunConfig]:
    """The target and settings the plan asks for: target options, client options, pipelining, probe, nemesis.

    A plan carries them so that its replay is the same experiment as its first run.
    """
    for name, value in plan.target_options.items():
        if not own_server:
            raise ValueError(f"plan sets the target option {name!r}, but runs on a server already started")
        if not target.supports(name):
            raise ValueError(f"plan sets the target option {name!r}, which {target.name} does not declare")
        target = target.with_option(name, value)
    client = dict(plan.client)
    options = client.pop("options", {}) or {}
    known = {f.name for f in fields(Options)}
    unknown = sorted(set(options) - known) + sorted(set(client) - {"pipelining", "probe"})
    if unknown:
        raise ValueError(f"plan has unknown client setting(s): {', '.join(unknown)}")
    if options:
        config = replace(config, options=replace(config.options, **options))
    if "pipelining" in client:
        config = replace(config, pipelining=client["pipelining"])
    if "probe" in client:
        config = replace(config, probe=bool(client["probe"]))
    if plan.nemesis and config.nemesis is None:
        from harness import nemesis  # imported here: the nemesis acts through this module's NemesisContext

        config = replace(config, nemesis=nemesis.schedule(plan.nemesis))
    return target, config


@full_collections_held()
def run_plan(
    target: Target, plan: Plan, rundir: Path, server: LiveServer | None = None, config: RunConfig | None = None
) -> RunOutcome:
    """Execute ``plan`` against ``target`` (a reused ``server`` or a fresh one) and check the result."""
    target, config = settled(target, plan, config or RunConfig(), own_server=server is None)
    rundir.mkdir(parents=True, exist_ok=True)
    plan.save(rundir / "plan.json")
    own = server is None
    live = server or LiveServer(target, rundir)
    started = time.monotonic()
    history = History(rundir / "history.jsonl")
    run_id = new_run_id()
    srv: ServerRun | None = None
    stop: StopResult | None = None
    proxy: FaultProxy | None = None
    try:
        srv = first = live.ensure()
        single = target.single_session
        if not srv.warmed and not single:  # warming up would spend a single-session server's one session
            warm_up(srv, target)
        reader = LogReader(srv.db_path, target.log)
        resources = config.resources and not single  # a server started for every session has no baseline
        # The log's baseline settles like the resources': rows of earlier traffic still being stored
        # (a client that has just left, a writer's backlog) belong before the run, not in it as phantoms.
        early = _max_id(reader)  # in the run record: rows stored while the baseline settled lie between the two
        top, threads0, fds0 = settle(
            lambda: (_max_id(reader), *((first.threads(), first.fds()) if resources else (None, None))),
            timeout=SETTLE_TIMEOUT,
            every=SETTLE_EVERY,
        )
        if isinstance(top, str):
            history.add(INFO, "harness-error", error=f"cannot read the log before the run: {top}")
        baseline = top if isinstance(top, int) else 0
        fd_names0 = first.fd_targets() if resources else None
        runs0 = first.thread_runs() if resources else None  # which threads are the baseline's
        zombies0 = first.zombies() if resources else None
        out_mark = first.mark()
        options = config.options
        if options.reset_after_server_close is None:  # keep a fixed port out of TIME_WAIT for the next start
            options = replace(options, reset_after_server_close=target.fixed_port)
        history.add(
            INFO,
            "run",
            run_id=run_id,
            target=target.name,
            protocol=target.protocol,
            framing=target.pfo1.framing if target.protocol == "pfo1" else "newline",
            exit_words=list(target.exit_words),
            ack_timeout=options.ack_timeout,
            held_to=max(options.ack_timeout, options.held_to or 0.0),
            relay=target.relay,
            normalize=target.normalize,
            baseline_id=baseline,
            baseline_first=early if isinstance(early, int) else None,
            db=str(srv.db_path),
            host=srv.host,
            port=srv.port,
            pid=srv.pid,
            clients=len(plan.clients),
            plan=plan.name,
            seed=plan.seed,
        )
        history.flush()
        wire = wires.for_target(target)
        if config.pipelining is not None:
            wire.pipelining = config.pipelining
        nctx = NemesisContext(live, target, history, threading.Event())
        helpers = []
        if config.nemesis is not None:
            helpers.append(threading.Thread(target=config.nemesis, args=(nctx,), name="nemesis", daemon=True))
        if plan.faults or config.proxy:
            proxy = FaultProxy(
                (srv.host, srv.port), plan.seed, srv.host, on_event=lambda e: history.add(INFO, "fault-event", **e)
            ).start()
            steps = parse_schedule(plan.faults)

            def schedule() -> None:
                assert proxy is not None
                run_schedule(
                    proxy,
                    steps,
                    time.monotonic(),
                    nctx.clients_done,
                    lambda ev, **kw: history.add(INFO, "fault", event=ev, **kw),
                )

            helpers.append(threading.Thread(target=schedule, name="fault-schedule", daemon=True))
        live.held = False
        auditor = Auditor(reader, history, baseline, watch=LOG_WATCH) if config.audit else None  # stopped below
        ctx = Context(
            proxy.host if proxy else srv.host,
            proxy.port if proxy else srv.port,
            wire,
            history,
            run_id,
            options,
            auditor,
            proxy,
        )
        if single:
            ctx.session_lock = threading.Lock()
            ctx.gate = live.next_session
        progress = _Progress(history, config.progress)
        progress.start()
        try:
            for helper in helpers:
                helper.start()
            workers = workers_for(plan, config, proxy is not None, single)
            if workers > 1:
                audit = (srv.db_path, target.log, baseline) if auditor is not None else None
                stuck = drive_sharded(plan.clients, ctx, workers, rundir / "shards", config.client_timeout, audit)
                history.add(INFO, "workers", processes=workers)
            else:
                stuck = execute(plan, ctx, config.client_timeout)
        finally:
            nctx.clients_done.set()
            for helper in helpers:
                helper.join(60)
            if proxy is not None:
                proxy.close()
            progress.done.set()
            progress.join(2)
            if auditor is not None:
                auditor.stop()
        if stuck:
            history.add(
                INFO, "harness-error", error=f"{len(stuck)} client(s) still running after {config.client_timeout} s"
            )
        if any(helper.is_alive() for helper in helpers):
            history.add(INFO, "harness-error", error="the nemesis or the fault schedule did not finish")
        srv = live.run
        assert srv is not None
        if nctx.server_down:
            pass  # stopped on purpose: the nemesis recorded how
        elif single and not srv.alive and srv.proc is not None and srv.proc.poll() == 0:
            pass  # it served its session and ended, as the target says it does
        elif not srv.alive:
            record_crash(history, srv, out_mark)
        else:
            if config.probe:  # straight to the server: the faults are over
                probe(replace(ctx, host=srv.host, port=srv.port, proxy=None, stop=threading.Event()), len(plan.clients))
            if resources and not nctx.restarted:
                after_t = wait_back(srv.threads, threads0, config.threads_slack, config.resource_wait)
                after_f = wait_back(srv.fds, fds0, config.fds_slack, max(0.5, config.resource_wait / 2))
                leaked = describe_fds(fd_names0, srv.fd_targets())
                wave: dict[str, Any] | None = None
                files: dict[str, Any] | None = None
                if after_t is not None and threads0 is not None and after_t > threads0 + config.threads_slack:
                    # Threads stayed: a pool's run when a second wave comes, stuck ones never do (harness/reuse.py).
                    wave_ctx = _fresh(ctx, srv)
                    wave = reuse_waves(wave_ctx, srv, runs0, len(plan.clients) + 1).to_dict()
                    if after_f is not None:  # the wave's sockets close first
                        wait_back(srv.fds, after_f, config.fds_slack, max(0.5, config.resource_wait / 2))
                    targets = srv.fd_targets()
                    grown = dict(targets - fd_names0) if targets is not None and fd_names0 is not None else {}
                    if (
                        fd_names0 is not None
                        and srv.alive
                        and reused(wave)
                        and after_f is not None
                        and fds0 is not None
                        and after_f > fds0 + config.fds_slack
                        and log_files_only(grown, srv.db_path.name)
                    ):  # the pool's own connections to the log, or a leak (harness/reuse.py)
                        third = _unused_client(wave_ctx)  # the reset wave's first client
                        files = reset_wave(replace(wave_ctx, stop=threading.Event()), srv, third, int(wave["clients"]))
                        if files is not None:
                            wait_back(srv.fds, after_f, config.fds_slack, max(0.5, config.resource_wait / 2))
                            after = srv.fd_targets()
                            files["grown"] = dict(after - fd_names0) if after is not None else None
                elif (
                    after_t is not None
                    and threads0 is not None
                    and after_f is not None
                    and fds0 is not None
                    and after_f > fds0 + config.fds_slack
                    and fd_names0 is not None
                    and srv.alive
                    and log_files_only(dict((srv.fd_targets() or Counter()) - fd_names0), srv.db_path.name)
                ):  # no thread stayed, log connections did: workers started up front that opened theirs, or a leak
                    wave_ctx = _fresh(ctx, srv)
                    files = worker_waves(wave_ctx, srv, fd_names0, runs0, len(plan.clients) + 1, threads0, config)
                zombies_after = wait_back(srv.zombies, zombies0, 0, max(0.5, config.resource_wait / 2))
                later: dict[str, Any] | None = None
                if (
                    wave is None
                    and files is None
                    and fd_names0 is not None
                    and after_f is not None
                    and fds0 is not None
                    and after_f > fds0 + config.fds_slack
                    and srv.alive
                ):  # descriptors that stayed, with no pool to explain them: held until the next client, or a leak
                    later = next_clients(_fresh(ctx, srv), srv, fd_names0, config)
                zombies = unreaped(_fresh(ctx, srv), srv, zombies0, zombies_after, later, config)
                if (
                    (wave is not None or files is not None or later is not None)
                    and srv.proc is not None
                    and srv.proc.poll() is not None
                ):
                    record_crash(history, srv, out_mark)  # died during the waves
                history.add(
                    INFO,
                    "resources",
                    threads_before=threads0,
                    threads_after=after_t,
                    fds_before=fds0,
                    fds_after=after_f,
                    fds_leaked=leaked,
                    threads_slack=config.threads_slack,
                    fds_slack=config.fds_slack,
                    waited=config.resource_wait,
                    reuse=wave,
                    fds_pool=files,
                    fds_next=later,
                    **zombies,
                )
        live.let_session_end()  # a stop now would race its own exit
        record_output(history, live.run, out_mark, nctx.stop_tracebacks)
        if own and not nctx.server_down and live.run is not None and live.run.alive:
            last = live.run
            if target.stop != "kill":  # a polite stop is judged (invariant 9)
                stop = record_stop(history, last, target.stop)
            live.close()
        log_error = None
        try:
            with collections_held():  # the rows are kept, and judged next
                rows = reader.rows_after(baseline)
        except LogError as exc:
            rows, log_error = [], str(exc)
    finally:
        if own:
            live.close()
        history.close()
    with collections_held():
        ix = RunIndex(history.records, rows, log_error)
        result = judge(ix)
    server_dir = live.run.workdir if live.run is not None else None
    return RunOutcome(
        rundir,
        plan,
        result,
        list(history.records),
        rows,
        run_id,
        time.monotonic() - started,
        srv.pid if srv else None,
        stop,
        server_dir,
        ix,
    )


def record_crash(history: History, srv: ServerRun, since: tuple[int, int]) -> None:
    """Record that the server died during the run: its exit code, its last words, its main thread's exception."""
    died = [tb for tb in srv.tracebacks(since) if tb.thread == "main" or (tb.asyncio and not (tb.died or tb.harmless))]
    history.add(
        INFO,
        "server",
        event="crashed",
        exit_code=srv.proc.poll() if srv.proc else None,
        stderr=srv.stderr_tail(),
        exception=died[-1].exception if died else None,
    )


def record_output(history: History, srv: ServerRun | None, since: tuple[int, int], skip: list[str]) -> None:
    """Record the tracebacks the server printed during the run (those printed at a stop are judged there)."""
    if srv is None:
        return
    found = [tb.to_dict() for tb in srv.tracebacks(since) if tb.text not in skip]
    if found:
        history.add(INFO, "server-output", tracebacks=found)


def warm_up(srv: ServerRun, target: Target) -> None:
    """One message through a fresh server before its baseline is taken, so what it creates lazily
    (a pool thread, the log's WAL files) counts as baseline, not as a leak."""
    quiet_port = Options(reset_after_server_close=target.fixed_port)  # no TIME_WAIT for the next start
    ctx = Context(srv.host, srv.port, wires.for_target(target), History(), "0" * RUN_ID_LEN, quiet_port)
    drive([SimClient(0, ClientPlan([Op(SEND, "warm-up")]), ctx)], ctx)
    srv.warmed = True


def _fresh(ctx: Context, srv: ServerRun) -> Context:
    """The run's client context for clients the harness adds after the run: straight to the server, unstopped."""
    return replace(ctx, host=srv.host, port=srv.port, proxy=None, stop=threading.Event(), gave_up=threading.Event())


def _unused_client(ctx: Context) -> int:
    """A client number no client of the run has used."""
    return 1 + max((r.client for r in ctx.history.records), default=0)


def next_clients(ctx: Context, srv: ServerRun, names0: Counter[str], config: RunConfig) -> dict[str, Any] | None:
    """Descriptors stayed after the clients left and no pool explains them: waves of ``NEXT_CLIENTS`` fresh clients
    (each sends a message, holds on ``HOLD`` s, closes), the descriptors beyond ``names0`` and the zombies after each.

    A server that frees a client's resources only when the next client comes (``multiprocessing`` joins the
    processes that ended at each ``start()``) is back at its baseline after one more client came, and after
    another; a leak is not (``harness/reuse.py``). None if a wave's clients were still running at its timeout (a
    harness error is recorded)."""
    ctx, patience = _patient(ctx)
    first = _unused_client(ctx)
    out: dict[str, Any] = {"clients": list(NEXT_CLIENTS), "after": [], "zombies": []}
    for clients in NEXT_CLIENTS:
        if not _held_wave(ctx, first, clients, CLOSE, patience, "next-client wave"):
            return None
        first += clients
        if not srv.alive:
            out["died"] = True
            return out
        targets = settle(srv.fd_targets, timeout=max(0.5, config.resource_wait / 2), every=SETTLE_EVERY)
        out["after"].append(dict(targets - names0) if targets is not None else None)
        out["zombies"].append(srv.zombies())
    return out


def unreaped(
    ctx: Context,
    srv: ServerRun,
    before: int | None,
    after: int | None,
    later: dict[str, Any] | None,
    config: RunConfig,
) -> dict[str, Any]:
    """The server's ended, unreaped children (zombies) before the clients and after they left, as the ``resources``
    record holds them.

    A server that reaps its children only when it accepts the next client (C's ``waitpid`` loop around
    ``accept``) still holds the last ones' zombies: when there are some, they are counted again after one more
    client came and left (the first of ``later``'s waves, or one that comes for this); its own child may then be
    the one zombie left."""
    if before is None:
        return {}
    again = None
    if after is not None and after > before:
        if later is not None and later.get("zombies"):
            again = later["zombies"][0]
        elif srv.alive:
            one, patience = _patient(ctx)
            _drive_wave(one, _unused_client(ctx), [ClientPlan([Op(SEND, "one more client")])], patience, "zombie check")
            again = wait_back(srv.zombies, before, 1, max(0.5, config.resource_wait / 2))
    return {"zombies_before": before, "zombies_after": after, "zombies_again": again}


def probe(ctx: Context, index: int) -> bool:
    """Liveness: a fresh client connects, sends one message and must get an answer."""
    h = ctx.history
    h.add(INVOKE, "probe", index)
    drive([SimClient(index, ClientPlan([Op(SEND, "probe")]), ctx)], ctx)
    sends = [r for r in h.records if r.f == "send" and r.client == index]
    if any(r.type == OK for r in sends):
        h.add(OK, "probe", index)
        return True
    connects = [r for r in h.records if r.f == "connect" and r.client == index and r.type == FAIL]
    why = (
        connects[-1].get("error")
        if connects
        else next((r.get("error") for r in sends if r.type != INVOKE), "no answer")
    )
    h.add(FAIL, "probe", index, error=why)
    return False


def _patient(ctx: Context) -> tuple[Context, float]:
    """A wave's clients and its patience: every wave client is answered by then, and each waits for its own answer
    longer than that, so none gives up on its own."""
    patience = ctx.options.connect_timeout + ctx.options.ack_timeout + 5.0
    return replace(ctx, options=replace(ctx.options, ack_timeout=patience + 10.0)), patience


def _drive_wave(ctx: Context, first: int, plans: list[ClientPlan], patience: float, name: str) -> bool:
    """Run a wave's ``plans`` as clients numbered from ``first``; False (a harness error recorded) if some were still
    running after twice its patience."""
    stuck = drive([SimClient(first + i, p, ctx) for i, p in enumerate(plans)], ctx, timeout=2 * patience)
    if stuck:
        ctx.history.add(
            INFO, "harness-error", error=f"{len(stuck)} client(s) of the {name} still running after {2 * patience:g} s"
        )
    return not stuck


def _held_wave(ctx: Context, first: int, clients: int, end: str, patience: float, name: str) -> bool:
    """``_drive_wave`` of ``clients`` that each send one message, hold on ``HOLD`` seconds once answered, then ``end``
    (close or reset) the connection."""
    plans = [ClientPlan([Op(SEND, "reuse check"), Op(PAUSE, seconds=HOLD), Op(end)]) for _ in range(clients)]
    return _drive_wave(ctx, first, plans, patience, name)


def reset_wave(ctx: Context, srv: ServerRun, first: int, clients: int) -> dict[str, Any] | None:
    """A third wave: ``clients`` fresh clients (indexes from ``first``) each send one message and reset the connection
    once answered; None if some were still running at its timeout (a harness error is recorded)."""
    ctx, patience = _patient(ctx)
    if not _held_wave(ctx, first, clients, RESET, patience, "reset wave"):
        return None
    return {"db": srv.db_path.name, "stayed": clients, "grown": {}}


def worker_waves(
    ctx: Context,
    srv: ServerRun,
    names0: Counter[str],
    runs0: Runs | None,
    first: int,
    threads0: int,
    config: RunConfig,
) -> dict[str, Any] | None:
    """Log connections stayed and no thread did: rounds of a wave of clients that close and one that reset, each of
    one client more than the baseline's threads but the main one, until a round adds no descriptor, there are more
    connections to the log than threads of the baseline that ran, or ``WORKER_ROUNDS`` rounds (``harness/reuse.py``).
    The log descriptors beyond the baseline before the waves and after each round, and those threads; None if a
    wave's clients were still running at its timeout (a harness error is recorded)."""
    ctx, patience = _patient(ctx)
    clients, db = max(1, min(MAX_WAVE, threads0)), srv.db_path.name
    before = _grown_fds(srv, names0, config)
    out: dict[str, Any] = {"db": db, "clients": clients, "workers": 0, "before": before, "rounds": []}
    last = before
    for _ in range(WORKER_ROUNDS):
        for end in (CLOSE, RESET):
            if not _held_wave(ctx, first, clients, end, patience, "descriptor wave"):
                return None
            first += clients
            if not srv.alive:
                out["died"] = True
                return out
        grown = _grown_fds(srv, names0, config)
        out["rounds"].append(grown)
        out["workers"] = ran_since(runs0, srv.thread_runs(), srv.pid)
        if grown is None or grown == last or int(grown.get(db, 0)) > out["workers"]:
            break  # steady, or more connections than a pool's workers could hold: rounds to come change nothing
        last = grown
    return out


def _grown_fds(srv: ServerRun, names0: Counter[str], config: RunConfig) -> dict[str, int] | None:
    """The server's descriptors beyond ``names0`` once they settle (a wave's sockets, closed, first), by name."""
    deadline = time.monotonic() + max(0.5, config.resource_wait / 2)
    while True:  # a steady reading may come before a slow server's last close
        targets = settle(srv.fd_targets, timeout=max(0.0, deadline - time.monotonic()), every=SETTLE_EVERY)
        grown = dict(targets - names0) if targets is not None else None
        if grown is None or not grown or log_files_only(grown, srv.db_path.name) or time.monotonic() >= deadline:
            return grown


def reuse_waves(ctx: Context, srv: ServerRun, baseline: Runs | None, first: int) -> Wave:
    """``reuse_wave``, again while the last one found a pool still filling up (``reuse.filling``), up to ``GROW_WAVES``
    waves; the last wave, with the earlier ones' clients and new threads in ``grew``."""
    wave = reuse_wave(ctx, srv, baseline, first)
    grew: list[tuple[int, int]] = []
    while filling(wave) and len(grew) < GROW_WAVES - 1 and srv.alive:
        assert wave.new is not None
        runs = settle(srv.thread_runs, SETTLE_TIMEOUT, SETTLE_EVERY)  # the last wave's workers done with its clients
        if not keeps_workers(wave, len(stayed_threads(baseline, runs))):
            break
        grew.append((wave.clients, wave.new))
        first += wave.clients
        wave = reuse_wave(_fresh(ctx, srv), srv, baseline, first)
    wave.grew = grew
    return wave


def reuse_wave(ctx: Context, srv: ServerRun, baseline: Runs | None, first: int) -> Wave:
    """Watch the threads that stayed after a run (not in ``baseline``) for a quiet second, then while as many fresh
    clients (indexes from ``first``) connect at once and hold on until all are answered (``harness/reuse.py``)."""
    before = srv.thread_runs()
    stayed = stayed_threads(baseline, before)
    if before is None or not stayed or len(stayed) > MAX_WAVE:
        return Wave(len(stayed))
    time.sleep(QUIET)  # a measured interval: which threads run with nothing asked of them
    quiet = srv.thread_runs()
    if quiet is None:
        return Wave(len(stayed))
    h, clients = ctx.history, len(stayed)
    wave = range(first, first + clients)
    ctx, patience = _patient(ctx)
    done = threading.Event()
    held: list[int | None] = []
    waits: list[set[int] | None] = []  # threads waiting on a wave client's connection: two looks, HOLD / 2 apart

    def watch() -> None:
        seen, all_at, looked_at = len(h.records), None, 0.0
        acked: set[int] = set()
        ports: set[int] = set()  # the wave clients' own ports: the far ends of their connections at the server
        give_up = time.monotonic() + patience
        while not done.is_set():
            new = h.records[seen:]
            seen += len(new)
            for r in new:
                if r.client in wave and (r.f == "send" and r.type in (OK, FAIL)):
                    acked.add(r.client)
                elif r.client in wave and r.f == "connect" and r.type == OK and isinstance(r.get("port"), int):
                    ports.add(r.get("port"))
            now = time.monotonic()
            if all_at is None and len(acked) == clients:
                all_at = now
            if all_at is not None and not waits and now - all_at >= HOLD / 2:
                waits.append(srv.connection_waits(ports))
                looked_at = time.monotonic()
            held_on = all_at is not None and now - all_at >= HOLD and waits and now - looked_at >= HOLD / 2
            if held_on or now >= give_up:
                if held_on:
                    held.append(srv.threads())  # every wave client connected and answered: the threads now
                    waits.append(srv.connection_waits(ports))
                ctx.stop.set()  # the clients leave (they pause until this; unanswered ones end as stopped)
                return
            done.wait(WATCH_EVERY)

    plans = [ClientPlan([Op(SEND, "reuse check"), Op(PAUSE, seconds=patience + HOLD)]) for _ in wave]
    watcher = threading.Thread(target=watch, name="reuse-watch", daemon=True)
    watcher.start()
    try:
        _drive_wave(ctx, first, plans, patience, "reuse wave")
    finally:
        done.set()
        watcher.join(5)
    others = set(baseline or ()) - {srv.pid}  # the baseline's threads but the main one: idle workers, helpers
    during, replies = srv.thread_runs(), answered(h.records, first, clients)
    # asleep on a wave client's connection at both looks: a worker holding it, not one that just passed by
    waiting = waits[0] & waits[1] if len(waits) == 2 and waits[0] is not None and waits[1] is not None else None
    result = watched(stayed, before, quiet, during, clients, replies, others, waiting)
    result.new = held[0] - len(before) if held and held[0] is not None else None
    return result
