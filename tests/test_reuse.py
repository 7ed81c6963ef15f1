"""Telling a pool from a leak (harness/reuse.py): the wave's window and peak from its history records alone."""

from __future__ import annotations

from harness.history import INFO, INVOKE, OK, History, Record
from harness.reuse import judged, reused


def wave_history(acks: list[float], leaves: list[float], first: int = 10) -> list[Record]:
    """Each wave client (from ``first``) sends, is answered at ``acks[i]`` and begins to leave at ``leaves[i]``."""
    h = History(start=0.0)
    for i, (acked, left) in enumerate(zip(acks, leaves, strict=True)):
        c = first + i
        h.add(INVOKE, "send", c, c, token=f"t{c}")
        h.add(OK, "send", c, c, token=f"t{c}").time = acked
        h.add(INFO, "conn-end", c, c, reason="client-close", end=left).time = left + 0.01
    h.add(OK, "send", 3, 3, token="not-in-the-wave").time = 9.0  # a client of the run, later: not the wave's
    return h.records


def test_the_peak_is_taken_while_every_wave_client_is_answered_and_connected() -> None:
    records = wave_history([1.0, 1.2, 1.1], [2.0, 2.3, 2.1])
    samples = [(0.5, 90), (1.1, 40), (1.3, 41), (1.5, None), (1.9, 42), (2.05, 95), (3.0, 99)]  # outside 1.2..2.0
    wave = judged(records, samples, 10, 3, 3)
    assert (wave.stayed, wave.clients, wave.acked, wave.peak) == (3, 3, 3, 42) and abs(wave.window - 0.8) < 1e-9


def test_a_wave_not_all_answered_or_never_all_connected_has_no_peak() -> None:
    unanswered = judged(wave_history([1.0, 1.2], [2.0, 2.3])[:-4], [(1.5, 40)], 10, 2, 2)  # the second's records cut
    assert (unanswered.acked, unanswered.peak) == (1, None)
    apart = judged(wave_history([1.0, 3.0], [2.0, 4.0]), [(1.5, 40), (3.5, 41)], 10, 2, 2)  # one left before the other
    assert apart.acked == 2 and apart.peak is None and apart.window == 0.0


def test_threads_are_a_pool_only_when_a_wave_as_large_as_they_are_needs_almost_no_new_ones() -> None:
    pool = {"stayed": 32, "clients": 32, "acked": 32, "peak": 34}
    assert reused(pool, 34) and reused({**pool, "peak": 34 + 3}, 34)  # one new thread per ten clients at most
    assert not reused({**pool, "peak": 34 + 4}, 34)  # a pool with 4 of its 32 workers stuck: a leak
    assert not reused({**pool, "peak": 34 + 32}, 34)  # a thread per wave client beside the stuck ones
    one = {"stayed": 1, "clients": 1, "acked": 1, "peak": 5}
    assert reused(one, 5) and not reused({**one, "peak": 6}, 5)
    assert not reused({**pool, "acked": 31}, 34)  # not all answered: cannot tell, so not a pool
    assert not reused({**pool, "peak": None}, 34)  # never all connected at once
    assert not reused({**pool, "stayed": 33}, 34)  # a wave smaller than what stayed tests only part of it
    assert not reused({"stayed": 2500, "clients": 0, "acked": 0, "peak": None}, 2502)  # too many to test
    assert not reused(None, 34)
