"""The SQLite message log: schema, WAL, idempotent inserts, and one writer thread that group-commits.

The table keeps the assignment's four columns (``id, contenido, fecha_envio, ip_cliente``) and
adds what the reference needs: ``puerto_cliente``, ``remitente`` and ``id_cliente`` (the client
message id, unique per client address). Only the writer thread touches the connection, so
writes are serialised without a lock around SQLite, and one commit covers every message that
arrived while the previous commit was running.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS mensajes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    contenido      TEXT NOT NULL,
    fecha_envio    TEXT NOT NULL,
    ip_cliente     TEXT NOT NULL,
    puerto_cliente INTEGER,
    remitente      TEXT,
    id_cliente     TEXT
)
"""
EXTRA_COLUMNS = {"puerto_cliente": "INTEGER", "remitente": "TEXT", "id_cliente": "TEXT"}
REQUIRED_COLUMNS = ("id", "contenido", "fecha_envio", "ip_cliente")
INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS mensajes_id_cliente ON mensajes (ip_cliente, id_cliente)"


log = logging.getLogger("chat.store")


class StoreError(Exception):
    """The log cannot be opened or written; the message says why in plain words."""


@dataclass(slots=True)
class NewMessage:
    """A message to store, with where it came from."""

    contenido: str
    ip_cliente: str
    puerto_cliente: int
    remitente: str
    id_cliente: str | None = None


@dataclass(slots=True)
class Stored:
    """A message that is in the log (``duplicate`` when an earlier send already stored it)."""

    id: int
    fecha_envio: str
    contenido: str
    remitente: str
    duplicate: bool = False


@dataclass(frozen=True)
class Rejected:
    """A message that was not stored, and why."""

    code: str
    reason: str


Outcome = Stored | Rejected


def now_iso() -> str:
    """The current local time in ISO-8601 with its UTC offset, to the millisecond."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


class Store:
    """One SQLite connection to the log; use it from a single thread (the writer)."""

    def __init__(self, path: str | Path, busy_timeout: float = 5.0, synchronous: str = "FULL") -> None:
        """Open (creating if needed) the log at ``path``; raise StoreError if it is not usable."""
        self.path = str(path)
        try:
            self.conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path!r}: {exc}") from exc
        try:
            self._prepare(synchronous)
        except sqlite3.Error as exc:
            self.conn.close()
            raise StoreError(f"cannot use database {self.path!r}: {exc}") from exc

    def _prepare(self, synchronous: str) -> None:
        c = self.conn
        c.execute("PRAGMA journal_mode=WAL").fetchone()
        c.execute(f"PRAGMA synchronous={synchronous}")
        c.execute("BEGIN IMMEDIATE")  # proves the file is writable before the server says it is ready
        try:
            c.execute(SCHEMA)
            have = {row[1] for row in c.execute("PRAGMA table_info(mensajes)")}
            missing = [col for col in REQUIRED_COLUMNS if col not in have]
            if missing:
                raise sqlite3.DatabaseError(f"table mensajes exists but lacks column(s) {', '.join(missing)}")
            for col, kind in EXTRA_COLUMNS.items():
                if col not in have:
                    c.execute(f"ALTER TABLE mensajes ADD COLUMN {col} {kind}")
            c.execute(INDEX)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def insert_many(self, items: Sequence[NewMessage]) -> list[Outcome]:
        """Store ``items`` in one transaction; an already-known client message id returns its row."""
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [Rejected("store", f"database unavailable ({exc}); not stored, send again")] * len(items)
        out: list[Outcome] = []
        try:
            ts = now_iso()
            for m in items:
                if m.id_cliente is not None:
                    row = c.execute(
                        "SELECT id, fecha_envio, contenido, remitente FROM mensajes"
                        " WHERE ip_cliente = ? AND id_cliente = ?",
                        (m.ip_cliente, m.id_cliente),
                    ).fetchone()
                    if row is not None:
                        if row[2] == m.contenido:
                            out.append(Stored(row[0], row[1], row[2], row[3] or "", duplicate=True))
                        else:
                            out.append(
                                Rejected(
                                    "id-conflict",
                                    f"cid {m.id_cliente} already names row {row[0]} with other text; not stored",
                                )
                            )
                        continue
                cur = c.execute(
                    "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente, puerto_cliente,"
                    " remitente, id_cliente) VALUES (?, ?, ?, ?, ?, ?)",
                    (m.contenido, ts, m.ip_cliente, m.puerto_cliente, m.remitente, m.id_cliente),
                )
                assert cur.lastrowid is not None
                out.append(Stored(cur.lastrowid, ts, m.contenido, m.remitente))
            c.execute("COMMIT")
        except sqlite3.Error as exc:
            if c.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    c.execute("ROLLBACK")
            return [Rejected("store", f"write failed ({exc}); not stored, send again")] * len(items)
        return out

    def recent(self, n: int) -> list[Stored]:
        """The last ``n`` stored messages, oldest first."""
        if n <= 0:
            return []
        rows = self.conn.execute(
            "SELECT id, fecha_envio, contenido, COALESCE(remitente, ip_cliente) FROM mensajes ORDER BY id DESC LIMIT ?",
            (n,),
        ).fetchall()
        return [Stored(r[0], r[1], r[2], r[3]) for r in reversed(rows)]

    def close(self) -> None:
        """Checkpoint the WAL and close the connection."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # a busy checkpoint is harmless: the WAL is replayed on next open
        finally:
            self.conn.close()


# ---------------------------------------------------------------------------
# The writer thread
# ---------------------------------------------------------------------------

Publish = Callable[[Sequence[tuple[object, NewMessage, Outcome]]], None]
StoreCall = Callable[[Store], None]
_STOP = object()


class Writer:
    """The single thread that writes the log, committing in batches and publishing in log order.

    ``submit`` queues a message; after its batch is committed (or failed), ``publish`` is called
    on the writer thread with ``(tag, message, outcome)`` for every message of the batch, in the
    order they were submitted. ``call`` runs a function on the writer thread between batches,
    which is how readers see a consistent log (history on join). The writer takes everything
    queued at once, so one commit covers every message that arrived during the previous one.
    """

    def __init__(self, store: Store, publish: Publish, max_batch: int = 512, max_queue: int = 20000) -> None:
        """Wrap ``store``; ``publish`` receives each committed batch."""
        self.store = store
        self.publish = publish
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._items: list[object] = []
        self._refusing = False
        self._thread = threading.Thread(target=self._run, name="chat-writer", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def _put(self, item: object, timeout: float, stop: bool = False) -> bool:
        with self._lock:
            if self._refusing and not stop:
                return False
            if len(self._items) >= self.max_queue and not self._not_full.wait_for(
                lambda: len(self._items) < self.max_queue or (self._refusing and not stop), timeout
            ):
                return False
            if self._refusing and not stop:
                return False
            self._items.append(item)
            if len(self._items) == 1:
                self._not_empty.notify()
            return True

    def submit(self, tag: object, message: NewMessage, timeout: float) -> bool:
        """Queue a message; False if the queue stayed full for ``timeout`` seconds."""
        return self._put((tag, message), timeout)

    def call(self, fn: StoreCall, timeout: float) -> bool:
        """Run ``fn(store)`` on the writer thread, after everything queued before it."""
        return self._put(fn, timeout)

    def refuse_new(self) -> None:
        """Accept no more work (what is queued still gets done); wakes everyone waiting for room."""
        with self._lock:
            self._refusing = True
            self._not_full.notify_all()

    def stop(self, timeout: float) -> bool:
        """Finish what is queued, then stop; True if the thread ended within ``timeout``."""
        deadline = time.monotonic() + timeout
        if not self._put(_STOP, timeout, stop=True):
            return False
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # keep the reason for the server to report
            self.error = exc
            raise

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._items:
                    self._not_empty.wait(1.0)
                items, self._items = self._items, []
                self._not_full.notify_all()
            batch: list[tuple[object, NewMessage]] = []
            for item in items:
                if isinstance(item, tuple):
                    batch.append(item)
                    if len(batch) < self.max_batch:
                        continue
                if batch:
                    self._commit(batch)
                    batch = []
                if item is _STOP:
                    return
                if callable(item):
                    try:
                        item(self.store)
                    except sqlite3.Error as exc:  # one failed read must not stop every write after it
                        log.warning("writer: %s", exc)
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[tuple[object, NewMessage]]) -> None:
        outcomes = self.store.insert_many([m for _, m in batch])
        self.publish([(tag, m, o) for (tag, m), o in zip(batch, outcomes, strict=True)])
