"""The auditor on the clients' event loop: it never stops the loop, waits out a locked log, and follows a replaced file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from harness.audit import Auditor
from harness.history import History, Record
from harness.log import LogError, LogReader
from harness.target import LogMapping


def make_log(path: Path, rows: int, journal: str = "DELETE") -> None:
    """A message log holding ids 1..rows."""
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA journal_mode={journal}")
        db.execute("CREATE TABLE mensajes (id INTEGER PRIMARY KEY, contenido TEXT)")
        db.executemany("INSERT INTO mensajes (id, contenido) VALUES (?, ?)", [(i, f"m{i}") for i in range(1, rows + 1)])
    db.close()


def audits(history: History) -> tuple[dict[int, bool], list[Record]]:
    """Row -> visible, over every audit record; and the audit errors."""
    seen: dict[int, bool] = {}
    for r in history:
        if r.f == "audit" and r.get("visible"):
            seen.update(dict.fromkeys(r.get("rows"), True))
        elif r.f == "audit":
            seen[r.get("row")] = False
    return seen, [r for r in history if r.f == "audit-error"]


async def ticking_while(acks: list[tuple[str, int]], auditor: Auditor, seconds: float) -> int:
    """Hand ``acks`` to the auditor, then count how often the loop gets to run in ``seconds``."""
    for token, row in acks:
        auditor.acked(token, row, 0, 0)
    ticks = 0
    end = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < end:
        await asyncio.sleep(0.01)
        ticks += 1
    return ticks


def test_a_locked_log_does_not_stop_the_loop_and_is_waited_out(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    make_log(db, 3)
    history = History()
    auditor = Auditor(LogReader(db, LogMapping()), history, 0, patience=10.0)
    writer = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN EXCLUSIVE")  # readers of a rollback-journal log must wait
    writer.execute("INSERT INTO mensajes (id, contenido) VALUES (4, 'm4')")
    release = threading.Timer(0.6, writer.execute, ("COMMIT",))
    release.start()
    try:
        ticks = asyncio.run(ticking_while([("a", 2), ("b", 4)], auditor, 1.0))
    finally:
        release.join()
        writer.close()
    auditor.stop()
    assert ticks >= 50  # the loop ran all along (a blocking query would have held it 0.6 s)
    seen, errors = audits(history)
    assert seen == {2: True, 4: True} and not errors  # both committed by the time the lock let go


def test_rows_that_never_come_are_not_visible_and_a_lock_held_too_long_is_an_audit_error(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    make_log(db, 3)
    history = History()
    auditor = Auditor(LogReader(db, LogMapping()), history, 0, patience=0.3)
    asyncio.run(ticking_while([("a", 3), ("b", 9)], auditor, 0.1))
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        asyncio.run(ticking_while([("c", 1)], auditor, 0.5))
    finally:
        writer.close()
    auditor.stop()
    seen, errors = audits(history)
    assert seen == {3: True, 9: False}
    assert len(errors) == 1 and "locked" in errors[0].get("error") and errors[0].get("acks") == 1


def test_a_replaced_log_file_is_read_anew(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    make_log(db, 5, journal="WAL")
    history = History()
    auditor = Auditor(LogReader(db, LogMapping()), history, 0)
    asyncio.run(ticking_while([("a", 5)], auditor, 0.05))  # the kept connection is open on the first file
    fresh = tmp_path / "new.db"
    make_log(fresh, 2, journal="WAL")
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    os.replace(fresh, db)  # a server that starts a new, empty log
    asyncio.run(ticking_while([("b", 2), ("c", 4)], auditor, 0.05))
    auditor.stop()
    seen, errors = audits(history)
    assert seen == {5: True, 2: True, 4: False} and not errors  # row 4 is only in the old file


def test_acks_heard_outside_an_event_loop_are_audited_at_once(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    make_log(db, 2)
    history = History()
    auditor = Auditor(LogReader(db, LogMapping()), history, 0)
    auditor.acked("a", 1, 0, 0)
    assert audits(history)[0] == {1: True}
    auditor.stop()
    auditor.acked("b", 2, 0, 0)  # after the stop (the harness's probe): not audited
    assert audits(history)[0] == {1: True}


def test_a_batch_is_seen_whole_in_one_count_and_a_gap_is_looked_up_id_by_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "log.db"
    make_log(db, 50, journal="WAL")
    with sqlite3.connect(db) as w:
        w.execute("DELETE FROM mensajes WHERE id = 20")
    w.close()
    odd = tmp_path / "odd.db"  # a third party's table: ids without a key, one twice and one a real number
    with sqlite3.connect(odd) as w:
        w.execute("CREATE TABLE mensajes (id, contenido TEXT)")
        w.executemany("INSERT INTO mensajes VALUES (?, 'm')", [(1,), (1,), (2.5,), (3,)])
    w.close()
    lookups: list[list[int]] = []
    visible_ids = LogReader.visible_ids

    def counted(self: LogReader, ids: list[int]) -> set[int]:
        lookups.append(list(ids))
        return visible_ids(self, ids)

    monkeypatch.setattr(LogReader, "visible_ids", counted)
    history = History()
    auditor = Auditor(LogReader(db, LogMapping()), history, 0)
    asyncio.run(ticking_while([(f"t{i}", i) for i in range(31, 41)], auditor, 0.05))
    assert lookups == []  # all of 31..40 are there: one count said so
    asyncio.run(ticking_while([(f"t{i}", i) for i in range(10, 31)], auditor, 0.05))
    asyncio.run(ticking_while([("big", 2**70), ("neg", -(2**70))], auditor, 0.05))
    auditor.stop()
    seen, errors = audits(history)
    assert seen == {**{i: i != 20 for i in range(10, 41)}, 2**70: False, -(2**70): False} and not errors
    assert lookups and lookups[0] == list(range(10, 31))  # the gap: looked up id by id
    history = History()
    auditor = Auditor(LogReader(odd, LogMapping()), history, 0)
    asyncio.run(ticking_while([("a", 1), ("b", 2), ("c", 3)], auditor, 0.05))
    auditor.stop()
    assert audits(history) == ({1: True, 2: False, 3: True}, [])


def test_a_reader_never_creates_the_log_it_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that deletes its log between the reader's look and its open finds no empty file made there."""
    db = tmp_path / "dir with spaces & #hash" / "log.db"
    db.parent.mkdir()
    make_log(db, 3)
    assert [r.id for r in LogReader(db, LogMapping()).rows_after(0)] == [1, 2, 3]  # any path, quoted right
    db.unlink()
    monkeypatch.setattr(Path, "exists", lambda self: True)  # deleted just after the reader looked
    with pytest.raises(LogError):
        LogReader(db, LogMapping()).rows_after(0)
    monkeypatch.undo()
    assert not db.exists()


def test_a_watching_auditor_reads_the_largest_id_without_acks_and_goes_on_past_a_locked_log(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    make_log(db, 3)
    history = History()
    auditor = Auditor(LogReader(db, LogMapping()), history, 0, watch=0.02)
    writer = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    try:
        deadline = time.monotonic() + 10.0
        while not any(r.f == "log-read" for r in history) and time.monotonic() < deadline:
            time.sleep(0.01)
        writer.execute("BEGIN EXCLUSIVE")  # a locked log: the watch skips its reads, it never waits
        writer.execute("INSERT INTO mensajes (id, contenido) VALUES (4, 'm4')")
        time.sleep(0.1)
        writer.execute("COMMIT")
        while not any(r.f == "log-read" and r.get("max_id") == 4 for r in history) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        auditor.stop()
        writer.close()
    reads = [(r.get("max_id"), r.get("max_id_at")) for r in history if r.f == "log-read"]
    assert reads and reads[0][0] == 3
    assert any(top == 4 for top, _ in reads)
    assert not auditor._watcher or not auditor._watcher.is_alive()
    assert not [r for r in history if r.f == "audit-error"]


def test_an_auditor_without_watch_reads_nothing_on_its_own(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    make_log(db, 3)
    history = History()
    auditor = Auditor(LogReader(db, LogMapping()), history, 0)
    try:
        assert auditor._watcher is None
    finally:
        auditor.stop()
    assert not [r for r in history if r.f == "log-read"]
