"""Full garbage collections are held off during a run and come back after, however holders overlap."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

from support import free_port

from harness.checker import check
from harness.clients import Context, SimClient, drive
from harness.gcpause import NEVER, YOUNG, collections_held, full_collections_held
from harness.history import INFO, History, Record
from harness.plan import SEND, ClientPlan, Op
from harness.wire import ChatWire


def test_the_threshold_is_held_inside_and_restored_after_nested_holders() -> None:
    before = gc.get_threshold()
    with full_collections_held():
        assert gc.get_threshold() == (max(before[0], YOUNG), before[1], NEVER)
        with full_collections_held():
            assert gc.get_threshold()[2] == NEVER
        assert gc.get_threshold()[2] == NEVER  # the outer holder still holds
    assert gc.get_threshold() == before


def test_overlapping_holders_on_two_threads_restore_the_original_whichever_leaves_first() -> None:
    before = gc.get_threshold()
    entered, release_first = threading.Event(), threading.Event()

    def first() -> None:
        with full_collections_held():
            entered.set()
            release_first.wait(10)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert entered.wait(10)
        with full_collections_held():  # enters while the other holds, leaves after it
            release_first.set()
            t.join(10)
            assert gc.get_threshold()[2] == NEVER
    finally:
        release_first.set()
        t.join(10)
    assert gc.get_threshold() == before


def test_young_collections_still_free_cycles_while_held() -> None:
    class Node:
        other: object = None

    freed = threading.Event()
    with full_collections_held():
        a, b = Node(), Node()
        a.other, b.other = b, a
        weakref.finalize(a, freed.set)
        del a, b
        kept: list[list[int]] = [
            [] for _ in range(gc.get_threshold()[0] * 3)
        ]  # enough new objects for automatic young collections
        assert freed.is_set()
        del kept


def test_an_error_inside_still_restores() -> None:
    before = gc.get_threshold()
    try:
        with full_collections_held():
            raise KeyError("boom")
    except KeyError:
        pass
    assert gc.get_threshold() == before


def test_collection_switched_off_stays_off() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(0, before[1], before[2])
        with full_collections_held():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)


def test_driving_clients_and_checking_a_history_hold_them() -> None:
    seen: list[tuple[int, ...]] = []
    ctx = Context(
        "127.0.0.1", free_port(), ChatWire(), History(), "abcdef", gate=lambda: seen.append(gc.get_threshold())
    )
    drive([SimClient(0, ClientPlan([Op(SEND, "x")]), ctx)], ctx)  # nobody listens: the connect fails after the gate
    assert seen and seen[0][2] == NEVER

    def records() -> Iterator[Record]:
        seen.append(gc.get_threshold())  # read while the checker indexes them
        yield Record(0, 0.0, INFO, "run", value={"run_id": "abcdef"})

    check(records(), [])
    assert seen[-1][0] == 0 and seen[-1][2] == NEVER  # judging: no automatic collection at all
    assert gc.get_threshold()[2] != NEVER and gc.get_threshold()[0] != 0


def test_judging_inside_a_run_holds_every_collection_and_gives_the_run_its_young_ones_back() -> None:
    before = gc.get_threshold()
    with full_collections_held():
        with collections_held():
            assert gc.get_threshold() == (0, before[1], NEVER)
            with full_collections_held():
                assert gc.get_threshold()[0] == 0  # the judging holder still holds everything
        assert gc.get_threshold() == (max(before[0], YOUNG), before[1], NEVER)
        with collections_held():
            pass
    assert gc.get_threshold() == before
    with collections_held():
        with full_collections_held():
            pass
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold() == before
