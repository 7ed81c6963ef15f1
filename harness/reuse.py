"""Tell a pool from a leak: does a second wave of clients run on the server threads that stayed? (No sockets here.)

Threads still there after every client left are either leaked (each stuck on a connection that
is over) or a pool (idle workers waiting for the next client: ``ThreadPoolExecutor``, a Java
executor, the Go runtime). A count cannot tell them apart; reuse can. A wave of as many clients
as threads stayed connects at once; each sends one message and holds its connection until every
one is answered, while the server's threads are counted (``runner.reuse_wave``). Beside stuck
threads, a thread per connection shows one new thread per wave client; a pool serves the whole
wave on the threads it kept, and one with stuck workers needs a new thread for each of those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.history import OK

MAX_WAVE = 2000  # more threads than this stayed: no wave, and the count alone judges
SAMPLE_EVERY = 0.02  # seconds between thread counts during the wave
HOLD = 0.5  # seconds every wave client stays connected after the last of them was answered
NEW_EVERY = 10  # a pool may start one new thread (a timer, a helper) per this many wave clients
Sample = tuple[float, int | None]  # history time, server threads (None: not readable)


@dataclass
class Wave:
    """What a reuse wave saw."""

    stayed: int  # threads above the baseline after the run
    clients: int  # wave clients (as many as stayed, or none above MAX_WAVE)
    acked: int = 0  # wave clients whose message was answered
    window: float = 0.0  # seconds during which every wave client was answered and still connected
    peak: int | None = None  # the most server threads counted in that window (None: no count in it)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the history's ``resources`` record keeps it)."""
        return {
            "stayed": self.stayed,
            "clients": self.clients,
            "acked": self.acked,
            "window": round(self.window, 3),
            "peak": self.peak,
        }


def judged(records: Sequence[Any], samples: Sequence[Sample], first: int, stayed: int, clients: int) -> Wave:
    """The wave's answers, its all-connected window and the peak thread count in it, from its history records."""
    wave = range(first, first + clients)
    acks: dict[int, float] = {}
    leaves: dict[int, float] = {}
    for r in records:
        if r.client not in wave:
            continue
        if r.f == "send" and r.type == OK:
            acks.setdefault(r.client, r.time)
        elif r.f in ("exit", "conn-end"):
            began = r.get("end") if r.f == "conn-end" else None
            at = min(r.time, began) if isinstance(began, (int, float)) else r.time
            leaves[r.client] = min(at, leaves.get(r.client, at))
    if len(acks) < clients or not clients:
        return Wave(stayed, clients, len(acks))
    start = max(acks.values())
    end = min((leaves.get(c, float("inf")) for c in wave), default=start)
    inside = [n for t, n in samples if start <= t <= end and n is not None]
    return Wave(stayed, clients, len(acks), max(0.0, end - start), max(inside, default=None))


def reused(wave: dict[str, Any] | None, after: int) -> bool:
    """Whether the threads that stayed (``after``) served a wave as large as they are, with few new ones."""
    if not wave or wave.get("peak") is None or wave.get("acked") != wave.get("clients"):
        return False
    clients = int(wave.get("clients") or 0)
    if not clients or clients < int(wave.get("stayed") or 0):
        return False
    return int(wave["peak"]) - after <= clients // NEW_EVERY
