"""Hold off the garbage collector's full collections while a run drives clients or is judged.

A run keeps every history record (two or more per message) and the checker builds an index over
them: hundreds of thousands of live objects, which each full collection walks again. Measured on
a 20,000-message run, three full collections took 73-82 ms of a 100 ms checking phase's garbage
collection, about a fifth of the checker's time; young collections took the rest, halved by
letting more new objects in before each. Young collections keep running (a reference cycle
among new objects is still freed); only the full ones wait until the outermost holder lets go,
when the thresholds go back to what they were.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

NEVER = 2**31 - 1  # a third threshold no count reaches: no automatic full collection
YOUNG = 10_000  # new objects between young collections (Python's default 700: a collection per ~40 messages)
_lock = threading.Lock()
_holders = 0
_saved: tuple[int, ...] = ()


@contextmanager
def full_collections_held() -> Iterator[None]:
    """No automatic full collection inside (nested and concurrent holders allowed; the last one restores)."""
    global _holders, _saved
    with _lock:
        if _holders == 0:
            _saved = gc.get_threshold()
            young = _saved[0] and max(_saved[0], YOUNG)  # 0 (collection switched off) stays 0
            gc.set_threshold(young, _saved[1], NEVER)
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                gc.set_threshold(*_saved)
