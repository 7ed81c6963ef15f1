"""Read a target's SQLite message log through its mapping (path, table, id, content, timestamp).

The checker never asks the server what it stored: it reads the file. Reads run in autocommit
mode, so every query sees the latest committed state, on a fresh connection each, or (``keep_open``,
the auditor's many small queries) on one kept while the file at ``path`` stays the same file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from harness.target import LogMapping

SQLITE_INT = (-(2**63), 2**63 - 1)  # the integers SQLite stores (a server may acknowledge any number)


class LogError(Exception):
    """The log cannot be read; the message says why."""


class LogBusy(LogError):
    """The log is locked by a writer (a query that may not wait for it)."""


class Row(NamedTuple):
    """One stored message (a named tuple: made once per row read, in half a frozen dataclass's time)."""

    id: int
    content: str | None
    ts: str | None = None


class LogReader:
    """Queries against one log file."""

    def __init__(self, path: Path, mapping: LogMapping, timeout: float = 5.0, keep_open: bool = False) -> None:
        """Prepare to read ``path`` with ``mapping`` (the file may not exist yet); ``close`` ends a kept connection."""
        self.path = path
        self.m = mapping
        self.timeout = timeout
        self.keep_open = keep_open
        self._kept: sqlite3.Connection | None = None
        self._kept_file: tuple[int, int] | None = None  # (device, inode) of the file it was opened on

    def close(self) -> None:
        """Close the kept connection, if any."""
        if self._kept is not None:
            self._kept.close()
            self._kept = self._kept_file = None

    def _connection(self) -> sqlite3.Connection:
        """The kept connection, opened again when the file was replaced (a server that starts a new log)."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self.close()
            raise LogError(f"no database at {self.path}") from exc
        if self._kept is None or self._kept_file != (st.st_dev, st.st_ino):
            self.close()
            self._kept, self._kept_file = self._connect(), (st.st_dev, st.st_ino)
        return self._kept

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise LogError(f"no database at {self.path}")
        # mode=rw opens an existing file only: a log deleted since the check above is not created anew
        # (an empty file there would turn the server's lost rows into an unreadable log).
        uri = f"{Path(self.path).absolute().as_uri()}?mode=rw"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only = 1")
            return conn
        except sqlite3.Error as exc:
            raise LogError(f"cannot open {self.path}: {exc}") from exc

    def _query(self, sql: str, params: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        conn = self._connection() if self.keep_open else self._connect()
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            self.close()
            busy = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
            raise (LogBusy if busy else LogError)(f"cannot read table {self.m.table!r} of {self.path}: {exc}") from exc
        finally:
            if not self.keep_open:
                conn.close()

    def max_id(self) -> int:
        """The largest id in the log (0 when empty or when the table does not exist yet)."""
        if not self.path.exists():
            return 0
        try:
            rows = self._query(f"SELECT MAX({self.m.id}) FROM {self.m.table}")
        except LogError as exc:
            if "no such table" in str(exc):
                return 0
            raise
        value = rows[0][0]
        return int(value) if isinstance(value, int) else 0

    def rows_after(self, after: int) -> list[Row]:
        """Every row with an id above ``after``, by id."""
        if not self.path.exists():
            return []
        ts = self.m.ts or "NULL"
        try:
            rows = self._query(
                f"SELECT {self.m.id}, {self.m.content}, {ts} FROM {self.m.table}"
                f" WHERE {self.m.id} > ? ORDER BY {self.m.id}",
                (after,),
            )
        except LogError as exc:
            if "no such table" in str(exc) and after == 0:
                return []
            raise
        return [Row(int(i), None if c is None else str(c), None if t is None else str(t)) for i, c, t in rows]

    def visible_ids(self, ids: list[int]) -> set[int]:
        """Which of ``ids`` are committed now."""
        found: set[int] = set()
        ids = [i for i in ids if SQLITE_INT[0] <= i <= SQLITE_INT[1]]  # another id cannot be stored
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                int(r[0])
                for r in self._query(f"SELECT {self.m.id} FROM {self.m.table} WHERE {self.m.id} IN ({marks})", chunk)
            )
        return found

    def all_visible(self, lo: int, hi: int) -> bool:
        """Whether every id from ``lo`` to ``hi`` is committed now (one count over the range, no rows fetched)."""
        if lo < SQLITE_INT[0] or hi > SQLITE_INT[1]:
            return False
        rows = self._query(
            f"SELECT COUNT(DISTINCT {self.m.id}) FROM {self.m.table}"
            f" WHERE {self.m.id} BETWEEN ? AND ? AND typeof({self.m.id}) = 'integer'",
            (lo, hi),
        )
        return bool(rows) and rows[0][0] == hi - lo + 1

    def contains(self, needle: str, after: int) -> bool:
        """Whether a row above ``after`` contains ``needle`` now."""
        rows = self._query(
            f"SELECT 1 FROM {self.m.table} WHERE {self.m.id} > ? AND instr({self.m.content}, ?) > 0 LIMIT 1",
            (after, needle),
        )
        return bool(rows)

    def integrity(self) -> str:
        """``PRAGMA integrity_check`` (``ok`` when the file is sound)."""
        try:
            rows = self._query("PRAGMA integrity_check")
        except LogError as exc:
            return str(exc)
        return "; ".join(str(r[0]) for r in rows)
