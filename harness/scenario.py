"""The scenario toolkit: what a named scenario is given, what it returns, and the pieces they share.

The scenarios themselves live in the ``scenarios`` package, one module each. A scenario runs one
or more plans (``run``), may act on the server while clients run (a nemesis), and adds
expectations of its own (``Check``) to the ten invariants: "a second instance exits non-zero",
"the client prints one clear line", and so on.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

from harness.checker import CheckResult, merge
from harness.checks import INVARIANTS, scenario_check
from harness.checks.answers import LateEvidence, held_late
from harness.clients import Options
from harness.history import Record, latencies
from harness.index import RunIndex
from harness.log import LogError, LogReader
from harness.nemesis import stop_and_record as stop_and_record
from harness.pbt import SearchOutcome
from harness.plan import PAUSE, SEND, ClientPlan, Op, Plan, Shape
from harness.runner import LiveServer, RunConfig, RunOutcome, run_plan
from harness.target import Target, TargetError

SINGLE_SESSION_CLIENTS = 4  # clients per scenario for a target that serves one session, then exits


def percentile(values: list[float], q: float) -> float | None:
    """Exact nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    return values[max(1, min(len(values), int(q * len(values) + 0.999999))) - 1]


@dataclass
class ScenarioContext:
    """What a scenario is given to run."""

    target: Target
    rundir: Path
    seed: int
    clients: int | None = None
    duration: float | None = None
    config: RunConfig = field(default_factory=RunConfig)
    say: Callable[[str], None] = lambda text: None
    done: list[RunOutcome] = field(default_factory=list)  # every run so far, kept if a later start fails
    started: float = field(default_factory=time.monotonic)

    def rng(self, salt: str = "") -> random.Random:
        """A random generator derived from the run's seed (and ``salt``), for building plans."""
        return random.Random(f"{self.seed}:{salt}")

    def n(self, default: int) -> int:
        """How many clients: ``--clients`` or the scenario's default (a few, for a server started per session)."""
        n = self.clients if self.clients is not None else default
        return min(n, SINGLE_SESSION_CLIENTS) if self.target.single_session else n


@dataclass
class Check:
    """A scenario's own expectation, beyond the invariants."""

    name: str
    ok: bool | None  # None: could not tell
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "name": self.name,
            "status": {True: "pass", False: "fail", None: "unknown"}[self.ok],
            "detail": self.detail,
        }


@dataclass
class ScenarioResult:
    """What a scenario found."""

    name: str
    description: str
    verdict: bool | None
    applicable: bool = True
    reason: str = ""
    check: CheckResult | None = None
    runs: list[RunOutcome] = field(default_factory=list)
    search: SearchOutcome | None = None
    seconds: float = 0.0
    replay: str | None = None
    checks: list[Check] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class AnyTarget:
    """Base of a scenario every target can take; ``begin`` marks the start of a run on disk."""

    name: str
    description: str
    expected_seconds = 3.0  # about how long it takes against the reference; orders scenarios run side by side

    def not_applicable(self, target: Target) -> str | None:
        """Any server."""
        return None

    def begin(self, ctx: ScenarioContext) -> float:
        """Write ``scenario.json`` before anything runs; return the start time for ``conclude``."""
        start_marker(ctx, self.name)
        ctx.started = time.monotonic()
        return ctx.started


class Scenario(Protocol):
    """A named way to attack a server."""

    name: str
    description: str

    def not_applicable(self, target: Target) -> str | None:
        """Why this scenario cannot run against ``target`` (None when it can)."""

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Run against ``ctx.target`` and judge the outcome."""


def verdict(checks: Iterable[Check], result: CheckResult | None) -> bool | None:
    """False if anything failed, None if anything is unknown, True otherwise."""
    oks = [c.ok for c in checks] + ([result.valid] if result is not None else [])
    if False in oks:
        return False
    if None in oks or not oks:
        return None
    return True


def conclude(
    scenario: Scenario,
    ctx: ScenarioContext,
    started: float,
    runs: list[RunOutcome],
    checks: list[Check] | None = None,
    **extra: Any,
) -> ScenarioResult:
    """The scenario's result: its runs' merged check plus its own checks; the replay points at the first failing run."""
    checks = checks or []
    merged = merge([r.result for r in runs]) if runs else None
    failing = next((r for r in runs if r.result.valid is False), None)
    replay = str(failing.rundir / "plan.json") if failing else None
    return ScenarioResult(
        scenario.name,
        scenario.description,
        verdict(checks, merged),
        check=merged,
        runs=runs,
        seconds=time.monotonic() - started,
        replay=replay,
        checks=checks,
        extra=extra,
    )


def start_marker(ctx: ScenarioContext, name: str) -> None:
    """Write ``scenario.json`` (name, seed, target) before anything runs, for a run killed by a timeout."""
    ctx.rundir.mkdir(parents=True, exist_ok=True)
    (ctx.rundir / "scenario.json").write_text(
        json.dumps({"scenario": name, "seed": ctx.seed, "target": ctx.target.source, "clients": ctx.clients}),
        encoding="utf-8",
    )


def run(
    ctx: ScenarioContext,
    plan: Plan,
    name: str,
    target: Target | None = None,
    server: LiveServer | None = None,
    target_options: dict[str, Any] | None = None,
    **config: Any,
) -> RunOutcome:
    """Run ``plan`` in ``ctx.rundir/name`` with the context's settings (``config`` overrides RunConfig fields).

    Client options, pipelining, the probe and ``target_options`` are written into the plan, so that
    replaying its file is the same experiment.
    """
    ctx.say(f"{name}: {len(plan.clients)} clients")
    settings: dict[str, Any] = {}
    if "options" in config:
        default = Options()
        changed = {f.name: getattr(config["options"], f.name) for f in fields(Options)}
        changed = {k: v for k, v in changed.items() if v != getattr(default, k)}
        if changed:
            settings["options"] = changed
    for key in ("pipelining", "probe"):
        if key in config:
            settings[key] = config[key]
    plan = replace(
        plan, client={**plan.client, **settings}, target_options={**plan.target_options, **(target_options or {})}
    )
    outcome = run_plan(
        target or ctx.target, plan, ctx.rundir / name, server=server, config=replace(ctx.config, **config)
    )
    ctx.done.append(outcome)
    return outcome


def run_scenario(scenario: Scenario, ctx: ScenarioContext) -> ScenarioResult:
    """Run ``scenario``; when the server cannot be started midway, keep the runs already made and say why."""
    try:
        return scenario.run(ctx)
    except TargetError as exc:
        check = Check("the server starts when the scenario needs it", None, str(exc)[:600])
        result = conclude(scenario, ctx, ctx.started, ctx.done, [check])
        result.reason = str(exc)[:600]
        return result


def chatter(
    clients: int,
    messages: int,
    pause: float = 0.05,
    start_spread: float = 0.0,
    rng: random.Random | None = None,
    text: str = "hola {i}",
    pipelined: bool = False,
) -> list[ClientPlan]:
    """Clients that each send ``messages`` messages with ``pause`` between them."""
    rng = rng or random.Random(0)
    plans = []
    for c in range(clients):
        ops: list[Op] = []
        for i in range(messages):
            ops.append(Op(SEND, text.format(i=i, c=c), pipelined=pipelined))
            if pause:
                ops.append(Op(PAUSE, seconds=round(pause * rng.uniform(0.5, 1.5), 3)))
        plans.append(ClientPlan(ops, start=round(rng.uniform(0, start_spread), 3) if start_spread else 0.0))
    return plans


def run_client(target: Target, host: str, port: int, text: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run the target's own client program with ``text`` on its input (raises TimeoutExpired)."""
    return subprocess.run(
        target.client_command(host, port),
        cwd=target.cwd,
        input=text.encode(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def fault(name: str, kind: str, at: float = 0.0, until: float | None = None, **params: Any) -> list[dict[str, Any]]:
    """Schedule steps adding a fault at ``at`` seconds (and removing it at ``until``), for ``Plan.faults``."""
    steps: list[dict[str, Any]] = [{"at": at, "action": "add", "fault": {"name": name, "kind": kind, **params}}]
    if until is not None:
        steps.append({"at": until, "action": "remove", "name": name})
    return steps


@scenario_check("acked-after")
def acked_after(outcome: RunOutcome, after: float, what: str) -> Check:
    """Every message first sent ``after`` seconds past the clients' start was acked ("once ``what``, ...")."""
    moment = run_start(outcome) + after
    first: dict[str, Record] = {}
    acked: set[str] = set()
    for r in events(outcome, "send"):
        if r.type == "invoke":
            first.setdefault(r.get("token"), r)
        elif r.type == "ok":
            acked.add(r.get("token"))
    later = [t for t, r in first.items() if r.time > moment]
    n = sum(t in acked for t in later)
    ev = LateEvidence(outcome.ix)
    late = sum(
        1 for t in later if t not in acked and (m := ev.ix.messages.get(t)) is not None and held_late(ev, m, first[t])
    )
    detail = f"{n}/{len(later)}" + (f" ({late} more stored, answered only after the clients' wait)" if late else "")
    return Check(f"once {what}, every message is acked", n + late == len(later) if later else None, detail)


@scenario_check("answer-latency")
def ack_within(outcome: RunOutcome, q: float, limit: float, clients: range | None = None) -> Check:
    """A check that the ``q`` quantile of ack latency (of ``clients``) stays under ``limit`` seconds."""
    values = sorted(lat for _, lat, c in latencies(outcome.records, refusals=True) if clients is None or c in clients)
    v = percentile(values, q)
    whose = "normal clients' " if clients is not None else ""
    return Check(
        f"{whose}p{round(q * 100)} ack latency stays under {limit:g} s",
        v is not None and v < limit,
        f"{v * 1000:.1f} ms" if v is not None else "no acks",
    )


def run_start(outcome: RunOutcome) -> float:
    """When the clients started, in history seconds (the schedule's zero)."""
    connects = [r.time for r in outcome.records if r.f == "connect" and r.type == "invoke"]
    return min(connects) if connects else 0.0


def shape_for(target: Target, max_clients: int = 8, max_ops: int = 8) -> Shape:
    """Plan bounds that fit a target: message sizes within its line limit, no pipelining for pfo1."""
    if target.protocol == "pfo1":
        framed = target.pfo1.framing != "raw"
        return Shape(
            max_clients=max_clients,
            max_ops=max_ops,
            max_text=200,
            pipelining=False,
            ack_safe=True,
            half_messages=framed,
            trickle=framed,
            faults=framed,  # a sliced or delayed stream looks like several messages without framing
            nemesis=nemesis_for(target),
        )
    return Shape(
        max_clients=max_clients,
        max_ops=max_ops,
        max_text=max(16, target.max_line - 64),
        faults=True,
        nemesis=nemesis_for(target),
        stop_method=target.stop,
    )


def nemesis_for(target: Target) -> tuple[str, ...]:
    """The nemesis steps random plans may draw for ``target``.

    A lock on the log suits any server. A stop or crash with a restart on the same port needs a
    server that can bind it again at once: PFO1 servers mostly cannot (no SO_REUSEADDR), which the
    restart and crash-recovery scenarios report; a fixed port would wait out TIME_WAIT; a server
    serving one session is started again by the harness anyway.
    """
    if target.protocol == "pfo1" or target.fixed_port or target.single_session:
        return ("lock",)
    return ("kill-restart", "lock") if target.stop == "kill" else ("kill-restart", "stop-restart", "lock")


def events(outcome: RunOutcome, f: str) -> list[Record]:
    """The run's history records of kind ``f``."""
    return [r for r in outcome.records if r.f == f]


# ---------------------------------------------------------------------------
# What a stopped server left behind
# ---------------------------------------------------------------------------


@scenario_check("still-stored")
def still_stored(outcome: RunOutcome, reader: LogReader, after: str) -> Check:
    """Durability only: every message ``outcome`` saw acknowledged is still in the log (invariant 1, again)."""
    run = next(r for r in outcome.records if r.f == "run")
    last = max((r.id for r in outcome.rows), default=int(run.get("baseline_id", 0)))
    name = f"every message acked before {after} is still stored"
    try:
        rows = [r for r in reader.rows_after(int(run.get("baseline_id", 0))) if r.id <= last]
    except LogError as exc:
        return Check(name, None, f"the log cannot be read: {exc}")
    judgement = INVARIANTS[1].check(RunIndex(outcome.records, rows))
    lost = [a.token for a in judgement.anomalies]
    acked = sum(m.acked for m in outcome.ix.messages.values())
    return Check(
        name,
        not lost,
        f"{acked - len(lost)}/{acked} still stored" + (f"; lost {', '.join(map(str, lost[:3]))}" if lost else ""),
    )
