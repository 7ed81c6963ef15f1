"""Telling a pool from a leak (harness/reuse.py): the wave's window and peak from its history records alone."""

from __future__ import annotations

from collections import Counter

from harness.history import INFO, INVOKE, OK, History, Record
from harness.reuse import fds_reused, judged, other_fds, reused


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
    samples = [(0.5, 90, 9), (1.1, 40, 9), (1.3, 41, 7), (1.9, 42, 8), (2.05, 95, 9), (3.0, 99, 9)]  # outside 1.2..2.0
    wave = judged(records, samples, 10, 3)
    assert (wave.clients, wave.acked, wave.peak, wave.other_fds_peak) == (3, 3, 42, 8) and abs(wave.window - 0.8) < 1e-9
    uncounted = judged(records, [(1.5, None, None), (1.6, 40, None)], 10, 3)  # a count that failed is no reading
    assert (uncounted.peak, uncounted.other_fds_peak) == (40, None)


def test_a_wave_not_all_answered_or_never_all_connected_has_no_peak() -> None:
    unanswered = judged(wave_history([1.0, 1.2], [2.0, 2.3])[:-4], [(1.5, 40, None)], 10, 2)  # the second's records cut
    assert (unanswered.acked, unanswered.peak) == (1, None)
    apart = judged(
        wave_history([1.0, 3.0], [2.0, 4.0]), [(1.5, 40, None), (3.5, 41, None)], 10, 2
    )  # one left before the other
    assert apart.acked == 2 and apart.peak is None and apart.window == 0.0


def test_threads_are_reused_when_the_wave_adds_fewer_than_half_its_clients() -> None:
    assert reused({"clients": 32, "acked": 32, "peak": 34 + 15}, 34)
    assert not reused({"clients": 32, "acked": 32, "peak": 34 + 16}, 34)
    assert reused({"clients": 1, "acked": 1, "peak": 5}, 5) and not reused({"clients": 1, "acked": 1, "peak": 6}, 5)
    assert not reused({"clients": 32, "acked": 31, "peak": 34}, 34)  # not all answered: unknown, so not a pool
    assert not reused({"clients": 32, "acked": 32, "peak": None}, 34)
    assert not reused(None, 34)


def test_descriptors_are_the_pools_only_when_its_threads_were_reused_and_no_client_socket_stayed() -> None:
    pool = {"clients": 32, "acked": 32, "peak": 34, "other_fds": 70, "other_fds_peak": 70, "sockets_stayed": 0}
    assert fds_reused(pool, 34)
    assert not fds_reused({**pool, "other_fds_peak": 70 + 16}, 34)  # a database connection per wave client
    assert not fds_reused({**pool, "sockets_stayed": 3}, 34)  # sockets of clients that left: never a pool's
    assert not fds_reused({**pool, "sockets_stayed": None}, 34)  # not known
    assert not fds_reused({**pool, "peak": 34 + 32}, 34)  # the threads were not reused: not a pool at all
    assert not fds_reused({**pool, "other_fds": None}, 34) and not fds_reused(None, 34)
    assert other_fds(Counter({"socket": 40, "chat.db": 32, "pipe": 2})) == 34 and other_fds(None) is None
