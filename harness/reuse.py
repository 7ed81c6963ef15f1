"""Tell a pool from a leak: does a second wave of clients run on what the server kept? (No sockets here.)

Threads still there after every client left are either leaked (each stuck on a connection that
is over) or a pool (idle workers waiting for the next client: ``ThreadPoolExecutor``, a Java
executor, the Go runtime), and so are the descriptors such workers keep (a database connection
each). A count cannot tell them apart; reuse can. A wave of as many clients as threads stayed
connects at once; each sends one message, waits for its answer and holds the connection while
the server's threads and descriptors are counted (``runner.reuse_wave``). Beside stuck threads,
a thread per connection shows one new thread per wave client; a pool serves the wave on the
threads it kept, and opens nothing new but the wave's own sockets. A client socket still open
after its client left is never a pool's: descriptors are a pool's only if no socket stayed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.history import OK

MAX_WAVE = 500  # clients in a wave at most (threads beyond it are judged by the same share)
SAMPLE_EVERY = 0.02  # seconds between counts during the wave
Sample = tuple[float, int | None, int | None]  # history time, server threads, descriptors other than sockets


@dataclass
class Wave:
    """What a reuse wave saw."""

    clients: int
    acked: int  # wave clients whose message was answered
    window: float  # seconds during which every wave client was answered and still connected
    peak: int | None  # the most server threads counted in that window (None: no count in it)
    other_fds: int | None = None  # descriptors other than sockets when the wave began (None: not counted)
    other_fds_peak: int | None = None  # and the most of them in the window
    sockets_stayed: int | None = None  # sockets open after the run that were not before it (None: not known)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the history's ``resources`` record keeps it)."""
        return {
            "clients": self.clients,
            "acked": self.acked,
            "window": round(self.window, 3),
            "peak": self.peak,
            "other_fds": self.other_fds,
            "other_fds_peak": self.other_fds_peak,
            "sockets_stayed": self.sockets_stayed,
        }


def hold_for(clients: int) -> float:
    """How long each wave client keeps its connection after its answer."""
    return 1.0 + clients / 500


def other_fds(targets: Counter[str] | None) -> int | None:
    """Descriptors that are not sockets (a wave's clients add a socket each, whatever the server)."""
    return None if targets is None else sum(n for kind, n in targets.items() if kind != "socket")


def judged(records: Sequence[Any], samples: Sequence[Sample], first: int, clients: int) -> Wave:
    """The wave's answers, its all-connected window and the peak counts in it, from its history records."""
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
    if len(acks) < clients:
        return Wave(clients, len(acks), 0.0, None)
    start = max(acks.values())
    end = min((leaves.get(c, float("inf")) for c in wave), default=start)
    inside = [s for s in samples if start <= s[0] <= end]
    threads = [n for _, n, _ in inside if n is not None]
    others = [n for _, _, n in inside if n is not None]
    return Wave(
        clients, len(acks), max(0.0, end - start), max(threads, default=None), other_fds_peak=max(others, default=None)
    )


def reused(wave: dict[str, Any] | None, after: int) -> bool:
    """Whether the threads that stayed (``after``) served the wave: fewer new threads than half its clients."""
    if not wave or wave.get("peak") is None or wave.get("acked") != wave.get("clients"):
        return False
    return 2 * (int(wave["peak"]) - after) < int(wave["clients"])


def fds_reused(wave: dict[str, Any] | None, threads_after: int) -> bool:
    """Whether the descriptors that stayed are the pool's: its threads were reused, no client socket stayed,
    and the wave opened fewer descriptors besides its sockets than half its clients."""
    if not wave or not reused(wave, threads_after) or wave.get("sockets_stayed") != 0:
        return False
    before, peak = wave.get("other_fds"), wave.get("other_fds_peak")
    return before is not None and peak is not None and 2 * (int(peak) - int(before)) < int(wave["clients"])
