"""Domain-aware shrinking: cut a failing plan down by what it is made of, keeping only cuts that still fail.

Hypothesis shrinks the choices a plan was drawn from; this shrinks the plan itself, in the order
that removes the most per live run: whole clients (delta debugging: halves, then quarters, ...),
fault and nemesis steps, operations, pauses and start offsets (to zero), then texts (halved, then trimmed). A candidate is
kept only if it still fails *the same way* — an anomaly of a kind the original failure had — in
``need`` of at most ``tries`` runs, so a flaky failure cannot shrink into a plan that rarely fails.
Every run goes through ``fails``, which the caller binds to a live server; this module has no
sockets in it, so it is tested with a plain function.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from harness.faults import parse_schedule
from harness.plan import PAUSE, SECONDS_KINDS, TEXT_KINDS, ClientPlan, Op, Plan, fit_utf8

#: A run of a candidate: the anomaly kinds it reported (empty when it passed).
Runner = Callable[[Plan], set[str]]


@dataclass
class Shrunk:
    """The smallest failing plan found, and what finding it cost."""

    plan: Plan
    runs: int
    accepted: int
    seconds: float


def reproduces(plan: Plan, run: Runner, kinds: set[str], tries: int = 3, need: int = 2) -> tuple[bool, int]:
    """Whether ``plan`` fails with one of ``kinds`` in ``need`` of at most ``tries`` runs; also the runs used."""
    hits = runs = 0
    while runs < tries:
        runs += 1
        hits += bool(run(plan) & kinds)
        if hits >= need:
            return True, runs
        if hits + (tries - runs) < need:
            return False, runs
    return False, runs


def shrink(plan: Plan, run: Runner, kinds: set[str], deadline: float, tries: int = 3, need: int = 2) -> Shrunk:
    """Cut ``plan`` (which failed with ``kinds``) as far as possible before ``deadline`` (monotonic seconds)."""
    started = time.monotonic()
    best, runs, accepted = plan, 0, 0
    progress = True
    while progress and time.monotonic() < deadline:
        progress = False
        for candidate in candidates(best):
            if time.monotonic() >= deadline:
                break
            if key(candidate) >= key(best) or not _valid(candidate):
                continue
            ok, used = reproduces(candidate, run, kinds, tries, need)
            runs += used
            if ok:
                best, accepted, progress = candidate, accepted + 1, True
                break  # start again from the smaller plan: the biggest cuts come first
    return Shrunk(best, runs, accepted, time.monotonic() - started)


def key(plan: Plan) -> tuple[int, int, float]:
    """Smaller is simpler: structure, then text, then time spent waiting."""
    waits = sum(c.start + c.pacing + sum(op.seconds for op in c.ops) for c in plan.clients)
    return plan.size(), plan.text_bytes, round(waits, 3)


def candidates(plan: Plan) -> Iterator[Plan]:
    """Smaller plans, biggest cuts first."""
    yield from _drop_clients(plan)
    yield from _drop_faults(plan)
    for i in range(len(plan.nemesis)):
        yield replace(plan, nemesis=plan.nemesis[:i] + plan.nemesis[i + 1 :])
    yield from _drop_ops(plan)
    yield from _zero_times(plan)
    yield from _shorten_texts(plan)


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    """Ranges to delete from a list of ``n``: halves, then quarters, ... then single items."""
    size = n // 2
    while size >= 1:
        for start in range(0, n, size):
            yield start, min(n, start + size)
        size //= 2


def _drop_clients(plan: Plan) -> Iterator[Plan]:
    for a, b in _chunks(len(plan.clients)):
        if b - a < len(plan.clients):
            yield replace(plan, clients=plan.clients[:a] + plan.clients[b:])


def _drop_faults(plan: Plan) -> Iterator[Plan]:
    steps = plan.faults
    if steps:
        yield replace(plan, faults=[])
    for i in range(len(steps)):
        name = steps[i].get("name") or steps[i].get("fault", {}).get("name")
        paired = [
            j
            for j, s in enumerate(steps)
            if j != i and name and (s.get("name") or s.get("fault", {}).get("name")) == name
        ]
        if steps[i].get("action") == "down":  # a partition and the heal that follows it
            paired = [j for j in range(i + 1, len(steps)) if steps[j].get("action") == "up"][:1]
        drop = {i, *paired}
        yield replace(plan, faults=[s for j, s in enumerate(steps) if j not in drop])


def _drop_ops(plan: Plan) -> Iterator[Plan]:
    for ci, client in enumerate(plan.clients):
        for a, b in _chunks(len(client.ops)) if len(client.ops) > 1 else [(0, 1)] * bool(client.ops):
            yield _with_client(plan, ci, replace(client, ops=client.ops[:a] + client.ops[b:]))


def _zero_times(plan: Plan) -> Iterator[Plan]:
    for ci, client in enumerate(plan.clients):
        if client.start or client.pacing:
            yield _with_client(plan, ci, replace(client, start=0.0, pacing=0.0))
        for oi, op in enumerate(client.ops):
            if op.kind in SECONDS_KINDS and op.seconds > 0:
                shorter = 0.0 if op.kind == PAUSE else round(op.seconds / 2, 3)
                yield _with_op(plan, ci, oi, replace(op, seconds=shorter))


def _shorten_texts(plan: Plan) -> Iterator[Plan]:
    for ci, client in enumerate(plan.clients):
        for oi, op in enumerate(client.ops):
            size = len(op.text.encode())
            if op.kind in TEXT_KINDS and size > 1:
                for keep in dict.fromkeys((size // 2, size * 3 // 4, size - 1)):  # halve, then trim
                    yield _with_op(plan, ci, oi, replace(op, text=fit_utf8(op.text, max(1, keep))))


def _with_client(plan: Plan, ci: int, client: ClientPlan) -> Plan:
    return replace(plan, clients=[client if i == ci else c for i, c in enumerate(plan.clients)])


def _with_op(plan: Plan, ci: int, oi: int, op: Op) -> Plan:
    client = plan.clients[ci]
    return _with_client(plan, ci, replace(client, ops=[op if i == oi else o for i, o in enumerate(client.ops)]))


def _valid(plan: Plan) -> bool:
    """A plan worth running: at least one client with an operation, and a schedule that parses."""
    if not plan.clients or not any(c.ops for c in plan.clients):
        return False
    try:
        parse_schedule(plan.faults)
    except ValueError:
        return False
    return True
