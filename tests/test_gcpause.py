"""Full garbage collections are held off during a run and come back after, however holders overlap."""

from __future__ import annotations

import gc
import threading
import weakref

from harness.gcpause import NEVER, YOUNG, full_collections_held


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
        kept = [[] for _ in range(gc.get_threshold()[0] * 3)]  # enough new objects for automatic young collections
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
