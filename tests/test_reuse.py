"""Telling a pool from a leak (harness/reuse.py): which threads stayed, which ran quiet, which ran for the wave."""

from __future__ import annotations

import pytest

from harness.history import FAIL, INFO, INVOKE, OK, History
from harness.reuse import (
    GROW_WAVES,
    MAX_WAVE,
    answered,
    files_in_words,
    filling,
    held_by_pool,
    held_by_workers,
    held_until_next,
    in_words,
    keeps_workers,
    log_files_only,
    next_in_words,
    ran_since,
    reused,
    stayed_threads,
    watched,
    workers_in_words,
)

BASE = {1: 50, 2: 7}  # the baseline's threads: thread id -> times it was scheduled so far


def test_the_threads_that_stayed_are_the_ones_the_baseline_did_not_have() -> None:
    assert stayed_threads(BASE, {1: 90, 2: 7, 30: 4, 31: 4}) == {30, 31}
    assert stayed_threads(BASE, {1: 90, 30: 4}) == {30}  # a baseline thread ended, a new one stayed
    assert stayed_threads(None, {30: 4}) == set() and stayed_threads(BASE, None) == set()


def test_a_pool_runs_every_thread_that_stayed_and_a_stuck_one_never_runs() -> None:
    before, quiet = {30: 4, 31: 4, 32: 4}, {30: 4, 31: 4, 32: 4}
    pool = watched({30, 31, 32}, before, quiet, {30: 6, 31: 6, 32: 9}, 3, 3)
    pool.new = 0  # and the wave needed no new thread
    assert (pool.still, pool.restless) == ([], []) and reused(pool.to_dict())
    stuck = watched({30, 31, 32}, before, quiet, {30: 6, 31: 4, 32: 9}, 3, 3)  # 31 never ran: stuck
    assert stuck.still == [31] and not reused(stuck.to_dict()) and stuck.to_dict()["still_ids"] == [31]
    ended = watched({30, 31}, {30: 4, 31: 4}, {30: 4, 31: 4}, {30: 6}, 2, 2)  # 31 ended during the wave: not stuck
    ended.new = 0
    assert ended.still == [] and reused(ended.to_dict())


def test_idle_workers_from_before_the_run_may_take_the_clients_of_as_many_that_stayed() -> None:
    # A pool's worker from before the run (the warm-up's) competes for the wave's clients: whichever idle
    # workers the pool wakes, as many threads that stayed as baseline threads ran may sit the wave out.
    before = quiet = {30: 4, 31: 4, 32: 4, 2: 9, 1: 50}
    during = {30: 6, 31: 4, 32: 9, 2: 12, 1: 60}  # 31 sat it out; baseline worker 2 ran (1 is the main thread)
    wave = watched({30, 31, 32}, before, quiet, during, 3, 3, {2})
    assert (wave.still, wave.helped) == ([31], 1)
    assert reused({**wave.to_dict(), "new": 0})
    alone = watched({30, 31, 32}, before, quiet, {**during, 2: 9}, 3, 3, {2})  # no baseline thread ran: 31 is stuck
    assert (alone.still, alone.helped) == ([31], 0) and not reused({**alone.to_dict(), "new": 0})


def test_a_thread_that_runs_on_its_own_is_not_taken_for_a_pool_worker() -> None:
    timer = watched({30, 31}, {30: 4, 31: 4}, {30: 4, 31: 9}, {30: 6, 31: 12}, 2, 2)  # 31 ran with nothing asked
    assert timer.restless == [31] and not reused(timer.to_dict())
    unread = watched({30, 31}, {30: 4, 31: 4}, {30: 4, 31: 4}, None, 2, 2)  # the wave's counts could not be read
    assert unread.still == [30, 31] and not reused(unread.to_dict())


def test_threads_on_a_timer_ran_for_the_wave_only_if_they_waited_on_its_connections() -> None:
    # 30 and 31 wake on a timer (they ran in the quiet second); what decides is what they waited on while the wave,
    # all answered, held on: a worker holding a wave client's connection waits on it, a stuck thread on its lock.
    before, quiet, during = {30: 4, 31: 4, 2: 9}, {30: 6, 31: 6, 2: 9}, {30: 9, 31: 9, 2: 9}
    pool = watched({30, 31}, before, quiet, during, 2, 2, waiting={30, 31})
    assert (pool.restless, pool.timers, pool.still) == ([], [30, 31], [])
    assert reused({**pool.to_dict(), "new": 0}) and pool.to_dict()["timers"] == 2
    stuck = watched({30, 31}, before, quiet, during, 2, 2, waiting={30})  # 31 ran as often, waited on no connection
    assert stuck.still == [31] and not reused({**stuck.to_dict(), "new": 0})
    words = in_words({**stuck.to_dict(), "new": 0})
    assert words.endswith("left 1 of the 2 that stayed without running for it: stuck"), words
    assert "(the 2 that stayed run on a timer, so each counts as running for it only if it waited on a" in words
    # a thread that does not tick keeps being judged by whether it ran, and so do the baseline's idle threads
    mixed = watched({30, 31}, {**before, 31: 6}, quiet, during, 2, 2, {2}, waiting={30})
    assert (mixed.timers, mixed.still, mixed.helped) == ([30], [], 0)
    helper = watched({30, 31}, before, quiet, {**during, 2: 12}, 2, 2, {2}, waiting={30})
    assert (helper.still, helper.helped) == ([31], 1) and reused({**helper.to_dict(), "new": 0})
    # where the calls could not be read, threads on a timer stay undecided, as before
    unknown = watched({30, 31}, before, quiet, during, 2, 2)
    assert (unknown.restless, unknown.timers) == ([30, 31], []) and not reused({**unknown.to_dict(), "new": 0})


def test_a_wave_smaller_than_what_stayed_or_none_at_all_decides_nothing() -> None:
    pool = watched({30, 31, 32}, {30: 4, 31: 4, 32: 4}, {30: 4, 31: 4, 32: 4}, {30: 5, 31: 5, 32: 5}, 3, 3).to_dict()
    pool["new"] = 0
    assert reused(pool) and not reused({**pool, "clients": 2}) and not reused({**pool, "clients": 0})
    assert not reused(None)


def test_threads_that_all_ran_are_no_pool_if_the_wave_needed_a_new_thread_beside_them() -> None:
    # Stuck threads woken by what the wave does (a broadcast to every waiting thread) run too; a thread per
    # connection then serves the wave beside them. A pool that hands every idle worker a client needs none.
    ran = {"stayed": 40, "clients": 40, "answered": 40, "restless": 0, "still": 0}
    assert reused({**ran, "new": 0})
    assert not reused({**ran, "new": 1}) and not reused({**ran, "new": 40})
    assert not reused({**ran, "new": None})  # never all answered and connected at once


def test_a_wave_that_ran_every_thread_that_stayed_but_needed_new_ones_asks_for_another() -> None:
    # A pool that starts a worker for each client until it is full (Java's fixed executor) needs new threads for a
    # wave until it is full; a thread per connection always does. Only a wave that would pass but for them asks.
    before = quiet = {30: 4, 31: 4}
    ran = watched({30, 31}, before, quiet, {30: 6, 31: 6}, 2, 2)
    ran.new = 2
    assert filling(ran) and not reused(ran.to_dict())
    for new in (0, None):  # a pool, or never all answered and connected at once: no more waves either way
        ran.new = new
        assert not filling(ran)
    sat_out = watched({30, 31}, before, quiet, {30: 6, 31: 4}, 2, 2)  # 31 sat it out: a new worker took its client
    sat_out.new = 1
    assert filling(sat_out)
    timer = watched({30, 31}, before, {30: 4, 31: 9}, {30: 6, 31: 12}, 2, 2)  # 31 ran on its own
    timer.new = 2
    assert not filling(timer)
    unanswered = watched({30, 31}, before, quiet, {30: 6, 31: 6}, 2, 1)  # one wave client got no answer
    unanswered.new = 2
    assert not filling(unanswered)


def test_a_wave_new_threads_served_alone_asks_for_another_only_if_they_stayed() -> None:
    # Java's fixed executor hands each client to a new worker until it is full: the idle workers sit the wave out,
    # as stuck threads would, while as many new threads serve it, and stay. A thread per connection beside stuck
    # threads serves it the same way, but its threads end with their clients.
    before = quiet = {30: 4, 31: 4}
    none_ran = watched({30, 31}, before, quiet, {30: 4, 31: 4}, 2, 2)
    none_ran.new = 2
    assert filling(none_ran) and not reused(none_ran.to_dict())
    assert keeps_workers(none_ran, 4)  # the two that served it stayed: a pool still filling up, maybe
    assert keeps_workers(none_ran, 3)
    assert not keeps_workers(none_ran, 2)  # they ended with their clients: the two that stayed are stuck, a leak
    assert "left 2 of the 2 that stayed without running once: stuck" in in_words(none_ran.to_dict())
    fewer = watched({30, 31, 32}, {30: 4, 31: 4, 32: 4}, {30: 4, 31: 4, 32: 4}, {30: 4, 31: 4, 32: 4}, 3, 3)
    fewer.new = 2  # three sat it out but only two new threads (and no idle one from before) took their clients
    assert not filling(fewer)
    fewer.helped = 1
    assert filling(fewer)
    ran = watched({30, 31}, before, quiet, {30: 6, 31: 6}, 2, 2)
    ran.new = 2
    assert keeps_workers(ran, 2)  # some that stayed ran: the next wave tells, whatever stayed


def test_the_waves_a_filling_pool_took_in_words() -> None:
    full = {"stayed": 31, "clients": 31, "answered": 31, "restless": 0, "still": 0, "new": 0, "helped": 0}
    grew = [[4, 4], [8, 8], [16, 15]]
    assert reused({**full, "grew": grew})  # the last wave decides, as with one
    assert in_words({**full, "grew": grew}) == (
        "3 waves of clients each started more threads that stayed (4 new for 4, 8 new for 8, 15 new for 16); then a"
        " wave of 31 clients (31 answered) ran every one of the 31 that stayed, and no new thread"
    )
    assert in_words({**full, "new": 31, "grew": [[31, 31]]}).endswith(
        "then a wave of 31 clients (31 answered) ran the 31 that stayed, but needed 31 new threads beside them:"
        " they did not serve it"
    )
    assert in_words(full).startswith("a second wave of 31 clients")


def test_the_waves_go_on_while_a_pool_fills_until_no_wave_may_test_what_stayed() -> None:
    # Each wave may double the threads: from one that stayed, the last wave allowed still finds more than a wave may
    # test, so no pool that a wave could test is cut off while it fills (a pool of 256 from 4 that stayed took 7 waves).
    assert 2 ** (GROW_WAVES - 1) > MAX_WAVE
    grew = [[2**k, 2**k] for k in range(11)]
    assert in_words({"stayed": 2048, "clients": 0, "grew": grew}) == (
        "11 waves of clients each started more threads that stayed (1 new for 1, 2 new for 2, 4 new for 4, 8 new for 8,"
        " 16 new for 16, 32 new for 32, 64 new for 64, 128 new for 128, 256 new for 256, 512 new for 512, 1024 new for"
        " 1024); then 2048 new threads stayed, more than the 2000 a wave of clients may test: every wave needed new"
        " threads, and they stayed"
    )
    assert (
        in_words({"stayed": 2048, "clients": 0})
        == "2048 new threads stayed, more than the 2000 a wave of clients may test"
    )


def test_refused_wave_messages_count_as_answered() -> None:
    h = History(start=0.0)
    for c, outcome in ((10, OK), (11, FAIL), (12, None)):
        h.add(INVOKE, "send", c, c, token=f"t{c}")
        if outcome is not None:
            h.add(outcome, "send", c, c, token=f"t{c}")
    h.add(INFO, "conn-end", 12, 12, reason="stopped")
    h.add(OK, "send", 3, 3, token="a run client's, not the wave's")
    assert answered(h.records, 10, 3) == 2


def test_descriptors_a_pool_keeps_are_its_threads_connections_to_the_log_one_each() -> None:
    assert log_files_only({"chat.db": 3, "chat.db-wal": 3, "chat.db-shm": 1}, "chat.db")
    assert not log_files_only({"chat.db": 3, "socket": 1}, "chat.db") and not log_files_only({}, "chat.db")
    assert not log_files_only({"other.db": 1}, "chat.db")
    assert held_by_pool({"chat.db": 32}, "chat.db", 32)  # one connection per pool thread
    assert held_by_pool({"chat.db": 32, "chat.db-wal": 32, "chat.db-shm": 1}, "chat.db", 32)  # WAL
    assert held_by_pool({"chat.db": 30}, "chat.db", 32, still=2)  # two sat the wave out: they may have none
    assert not held_by_pool({"chat.db": 33}, "chat.db", 32)  # more connections than threads: a leak
    assert not held_by_pool({"chat.db": 15}, "chat.db", 32)  # fewer than the threads that ran: not theirs
    assert not held_by_pool({"chat.db-wal": 1}, "chat.db", 1)  # files with no connection
    assert not held_by_pool({"chat.db": 1, "chat.db-wal": 3}, "chat.db", 1)
    assert not held_by_pool({"chat.db": 2, "socket": 1}, "chat.db", 2)
    assert not held_by_pool({"chat.db": 1}, "chat.db", 0) and not held_by_pool(None, "chat.db", 1)


def test_what_the_descriptor_waves_showed_in_words() -> None:
    kept = {"db": "chat.db", "stayed": 32, "grown": {"chat.db": 32}}
    waves = "after the second wave and a third of 32 clients that reset"
    assert (
        files_in_words(kept)
        == f"{waves}, they are +32 chat.db: one connection to the log for each pool thread that ran for the wave"
    )
    assert files_in_words({**kept, "grown": {"chat.db": 64}}).endswith(
        "more connections to the log than the 32 pool threads"
    )
    assert files_in_words({**kept, "grown": {"chat.db": 15}}).endswith(
        "fewer connections to the log than the 32 pool threads that ran for it"
    )
    assert files_in_words({**kept, "grown": {"chat.db": 32, "socket": 1}}).endswith("not only the log's files")
    assert files_in_words({**kept, "grown": None}) == f"{waves}, the server's descriptors could not be read"


def test_the_threads_of_the_baseline_that_ran_again_but_the_main_one() -> None:
    before = {1: 50, 2: 7, 3: 7, 4: 7}
    assert ran_since(before, {1: 90, 2: 9, 3: 7, 4: 8, 30: 4}, main=1) == 2  # a new thread is not one of them
    assert ran_since(before, {1: 90, 2: 9}, main=1) == 1  # ended since: not counted
    assert ran_since(None, before, 1) == 0 and ran_since(before, None, 1) == 0


# What runner.worker_waves records: rounds of waves of 17 clients that close and 17 that reset, the log descriptors
# beyond the baseline before them and after each round, and the baseline's threads that ran (pool_previo, 16 workers).
WORKERS = {"db": "chat.db", "clients": 17, "workers": 16, "before": {"chat.db": 4}, "rounds": [{"chat.db": 15}] * 2}


def test_log_connections_that_stay_with_no_thread_are_workers_started_up_front_when_the_waves_add_none() -> None:
    assert held_by_workers(WORKERS)
    assert held_by_workers({**WORKERS, "before": {"chat.db": 15}, "rounds": [{"chat.db": 15}]})  # all reached already
    limited = [{"chat.db": 8}, {"chat.db": 14}, {"chat.db": 16}, {"chat.db": 16}]  # 4 clients at a time of 16 workers
    assert held_by_workers({**WORKERS, "rounds": limited})
    wal = {"chat.db": 16, "chat.db-wal": 16, "chat.db-shm": 1}
    assert held_by_workers({**WORKERS, "rounds": [wal, wal]})
    assert not held_by_workers({**WORKERS, "rounds": [{"chat.db": 15}, {"chat.db": 16}]})  # the last round added one
    assert not held_by_workers({**WORKERS, "rounds": [{"chat.db": 32}]})  # more than threads: a leak
    assert not held_by_workers({**WORKERS, "rounds": [{"chat.db": 17}] * 2})  # more connections than threads that ran
    assert not held_by_workers({**WORKERS, "workers": 0})  # a server with one thread holds no worker's connection
    assert not held_by_workers({**WORKERS, "rounds": [{"chat.db": 15, "socket": 1}] * 2})
    assert not held_by_workers({**WORKERS, "rounds": [{"chat.db-wal": 2}] * 2})  # no connection to the log itself
    assert not held_by_workers({**WORKERS, "rounds": [None]}) and not held_by_workers({**WORKERS, "rounds": []})
    assert not held_by_workers({**WORKERS, "died": True}) and not held_by_workers({**WORKERS, "rounds": [{}]})


def test_what_the_waves_after_log_connections_stayed_showed_in_words() -> None:
    waves = "after 2 rounds of waves of 17 clients that close and 17 clients that reset"
    threads = "16 threads that were there before the clients and ran"
    assert workers_in_words(WORKERS) == (
        f"{waves}, they are +15 chat.db, as before the last round (the waves reached every worker): at most one"
        f" connection to the log for each of the {threads}"
    )
    assert workers_in_words({**WORKERS, "rounds": [{"chat.db": 32}]}) == (
        "after 1 round of waves of 17 clients that close and 17 clients that reset, they are +32 chat.db: more"
        f" connections to the log than the {threads}"
    )
    assert workers_in_words({**WORKERS, "rounds": [{"chat.db": 12}, {"chat.db": 13}]}) == (
        f"{waves}, they are +13 chat.db, and were +12 chat.db before the last round: still growing"
    )
    assert workers_in_words({**WORKERS, "rounds": [{"socket": 1}]}).endswith("not only the log's files")
    assert workers_in_words({**WORKERS, "rounds": [{"chat.db-wal": 1}] * 2}).endswith(
        "the log's other files, with no connection to it"
    )
    assert workers_in_words({**WORKERS, "rounds": [{}]}).endswith("they are back to the baseline")
    assert workers_in_words({**WORKERS, "rounds": [None]}).endswith("the server's descriptors could not be read")
    assert workers_in_words({**WORKERS, "died": True}).startswith("the server died during the waves")


@pytest.mark.parametrize(
    ("after", "held"),
    [
        ([{}, {}], True),  # multiprocessing: the processes that ended are joined, their pipes closed, at each start()
        ([{"pipe": 2}, {"pipe": 2}], False),  # still held after more clients came: not released by them
        ([{}, {"socket": 1}], False),  # one more client's connection kept
        ([{"socket": 1}, {"socket": 2}], False),  # one kept per client: a leak
        ([{}, None], False),  # unreadable
        ([{}], False),  # a wave missing
    ],
)
def test_descriptors_held_until_the_next_client_are_back_at_the_baseline_after_each_one(
    after: list[dict[str, int] | None], held: bool
) -> None:
    assert held_until_next({"clients": [1, 1], "after": after, "zombies": [0, 0]}) is held


def test_the_next_clients_in_words() -> None:
    assert next_in_words({"clients": [1, 1], "after": [{}, {}]}) == (
        "after one more client came and left they were back to the baseline, and after another back to the baseline"
    )
    assert next_in_words({"clients": [1, 1], "after": [{"pipe": 2}, None]}) == (
        "after one more client came and left they were +2 pipe, and after another unreadable"
    )
    assert next_in_words({"died": True}) == "the server died while more clients came one by one"
    assert not held_until_next({"died": True, "after": [{}, {}]})
