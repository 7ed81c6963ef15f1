"""Hold off the garbage collector while a run drives clients (full collections) or is judged (all).

A run keeps every history record (two or more per message) and the checker builds an index over
them: hundreds of thousands of live objects, which each full collection walks again. Measured on
a 20,000-message run, three full collections took 73-82 ms of a 100 ms checking phase's garbage
collection, about a fifth of the checker's time; young collections took the rest, halved by
letting more new objects in before each. While clients are driven, young collections keep
running (a reference cycle among new objects is still freed: a long run makes new ones all the
time); only the full ones wait. While a run is judged, none run: the checker's work is bounded,
nearly everything it makes is its index, kept to the end, which young collections only walked
again (1.5 of 13 µs per message). The thresholds go back to what they were when the last holder
lets go, and a process that switched automatic collection off keeps it off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

NEVER = 2**31 - 1  # a third threshold no count reaches: no automatic full collection
YOUNG = 10_000  # new objects between young collections (Python's default 700: a collection per ~40 messages)
_lock = threading.Lock()
_holders = {"full": 0, "all": 0}
_saved: tuple[int, ...] = ()


def _apply() -> None:
    """Set the thresholds the current holders ask for (the lock is held)."""
    if not any(_holders.values()):
        gc.set_threshold(*_saved)
        return
    # 0: no automatic collection at all; a process that switched it off (0) keeps it off.
    young = 0 if _holders["all"] else _saved[0] and max(_saved[0], YOUNG)
    gc.set_threshold(young, _saved[1], NEVER)


@contextmanager
def _held(kind: str) -> Iterator[None]:
    global _saved
    with _lock:
        if not any(_holders.values()):
            _saved = gc.get_threshold()
        _holders[kind] += 1
        _apply()
    try:
        yield
    finally:
        with _lock:
            _holders[kind] -= 1
            _apply()


@contextmanager
def full_collections_held() -> Iterator[None]:
    """No automatic full collection inside (nested and concurrent holders allowed; the last one restores)."""
    with _held("full"):
        yield


@contextmanager
def collections_held() -> Iterator[None]:
    """No automatic collection at all inside (for bounded work that keeps what it makes: judging a run)."""
    with _held("all"):
        yield
