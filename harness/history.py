"""The operation log of a run: invoke / ok / fail / info records with monotonic timestamps.

Modelled on Jepsen's history: every client operation is an ``invoke`` followed by ``ok`` (it
happened, e.g. acknowledged), ``fail`` (it definitely did not happen) or ``info`` (unknown: sent,
then the connection broke). Other events (connection closes, relays received, audits, faults,
server lifecycle) are ``info`` records. Records are appended from many threads and streamed to
``history.jsonl`` as they happen (in batches, flushed twice a second during a run), so a killed run
still leaves its history behind.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import orjson

INVOKE, OK, FAIL, INFO = "invoke", "ok", "fail", "info"
PENDING_LINES = 512  # history lines held before one write (a flush, twice a second during a run, writes the rest)
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode  # ASCII: a lone surrogate is escaped, not unwritable
_ORJSON = orjson.OPT_APPEND_NEWLINE
# Only when a key is not a str: 44 % more instructions for a send record (6,051 against 4,199).
_ORJSON_ANY_KEYS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def json_line(record: dict[str, Any]) -> bytes:
    """One record as a compact JSON line (UTF-8, newline-terminated)."""
    line = _orjson_line(record)
    return _json_line(record) if line is None else _floats_kept(line, record)


def _orjson_line(record: dict[str, Any]) -> bytes | None:
    """``json_line`` by orjson, but for NaN and infinities, which it writes as null (``_floats_kept`` mends
    them); None for what orjson refuses and json takes: an integer beyond 64 bits (a hostile server's row
    id), a lone surrogate."""
    try:
        return orjson.dumps(record, option=_ORJSON)  # about four times faster than json
    except TypeError:
        return _orjson_any_keys(record)


def _orjson_any_keys(record: dict[str, Any]) -> bytes | None:
    """``_orjson_line`` for a record plain orjson refused: a key that is not a str, or what json takes."""
    try:
        return orjson.dumps(record, option=_ORJSON_ANY_KEYS)
    except TypeError:
        return None


def _json_line(record: dict[str, Any]) -> bytes:
    return (_ENCODE(record) + "\n").encode("ascii")


def _floats_kept(line: bytes, record: dict[str, Any]) -> bytes:
    """orjson's ``line``, or json's line for ``record`` when orjson wrote one of its NaNs or infinities as null."""
    if line.find(b"null") >= 0 and not _finite(record):  # find: ``in`` first tries the needle as an int
        return _json_line(record)
    return line


def _mended(line: bytes, record: dict[str, Any] | None) -> bytes:
    """``_floats_kept`` for a line of a batch (``record`` None: json wrote it); a record it cannot mend
    (nested too deep to look into, or a value only orjson can write) keeps orjson's line, not lost."""
    if record is None:
        return line
    try:
        return _floats_kept(line, record)
    except (RecursionError, TypeError, ValueError):
        return line


def _finite(value: Any) -> bool:
    """Whether no float in ``value`` (nested in lists, tuples and dicts) is NaN or infinite."""
    if type(value) is float:
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


TYPES = (INVOKE, OK, FAIL, INFO)


@dataclass(slots=True)
class Record:
    """One line of the history."""

    index: int
    time: float
    type: str
    f: str
    client: int = -1
    conn: int = -1
    value: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as the history file holds it."""
        return {
            "index": self.index,
            "time": self.time,
            "type": self.type,
            "f": self.f,
            "client": self.client,
            "conn": self.conn,
            "value": self.value,
        }

    def to_json(self) -> str:
        """One JSON line (without its newline)."""
        return json_line(self.to_dict())[:-1].decode("utf-8", "surrogatepass")

    @classmethod
    def from_json(cls, line: str) -> Record:
        """Parse one JSON line; raise ValueError on malformed input."""
        data = json.loads(line)
        if not isinstance(data, dict) or data.get("type") not in TYPES:
            raise ValueError(f"not a history record: {line[:80]!r}")
        return cls(**data)

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the value."""
        return self.value.get(key, default)


class History:
    """Thread-safe, append-only list of records, optionally streamed to a JSONL file."""

    def __init__(self, path: Path | None = None, start: float | None = None) -> None:
        """Start a history whose clock reads 0 now (or at ``start``, a ``time.monotonic()`` value)."""
        self.start = time.monotonic() if start is None else start
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self.path = path
        self._out: IO[bytes] | None = open(path, "wb") if path else None  # noqa: SIM115
        self._pending: list[bytes] = []  # lines not handed to the file yet (written in batches and at every flush)
        # What each line encodes (None: json wrote it): the record, not the dict orjson wrote, which is then freed
        # at once (kept, two dicts a message would outlive young collections, each of which walks them).
        self._pending_records: list[Record | None] = []

    def now(self) -> float:
        """Seconds since the history started."""
        return time.monotonic() - self.start

    def add(self, type: str, f: str, client: int = -1, conn: int = -1, **value: Any) -> Record:
        """Append a record stamped now; return it."""
        return self.append(type, f, client, conn, value)

    def append(self, type: str, f: str, client: int, conn: int, value: dict[str, Any]) -> Record:
        """``add`` with the value as a dict (the sessions' path: two records a message)."""
        lock = self._lock
        lock.acquire()  # not ``with``: two records a message, and a with makes two bound methods
        try:
            index = len(self.records)
            # Microseconds: round(x * 1e6) / 1e6 is round(x, 6) without its slow decimal path.
            at = round((time.monotonic() - self.start) * 1e6) / 1e6
            rec = Record(index, at, type, f, client, conn, value)
            self.records.append(rec)
            if self._out is not None:
                pending = self._pending
                # rec.to_dict(), without the call (two records a message)
                record = {
                    "index": index,
                    "time": at,
                    "type": type,
                    "f": f,
                    "client": client,
                    "conn": conn,
                    "value": value,
                }
                try:  # _orjson_line's first try, without its call (a batch's NaNs are looked for when it is written)
                    line: bytes | None = orjson.dumps(record, option=_ORJSON)
                except TypeError:
                    line = _orjson_any_keys(record)
                if line is None:
                    pending.append(_json_line(record))
                    self._pending_records.append(None)
                else:
                    pending.append(line)
                    self._pending_records.append(rec)
                if len(pending) >= PENDING_LINES:
                    self._write_pending()
            return rec
        finally:
            lock.release()

    def _write_pending(self) -> None:
        lines, records = self._pending, self._pending_records
        self._pending, self._pending_records = [], []  # taken first: a failed write is not repeated by the next one
        if self._out is not None and lines:
            data = b"".join(lines)
            if data.find(b"null") >= 0:  # some line has a null: NaN or an infinity, or just None
                data = b"".join(map(_mended, lines, [None if r is None else r.to_dict() for r in records]))
            self._out.write(data)

    def merge(self, records: Iterable[Record]) -> None:
        """Take in records made elsewhere on this history's clock (a worker's shard): all in time order, renumbered."""
        with self._lock:
            merged = sorted([*self.records, *records], key=lambda r: r.time)  # stable: each source keeps its order
            self.records = [replace(r, index=i) for i, r in enumerate(merged)]
            self._pending.clear()  # every record is written again below
            self._pending_records.clear()
            if self._out is not None:
                self._out.seek(0)
                self._out.truncate()
                self._out.writelines(json_line(r.to_dict()) for r in self.records)

    def flush(self) -> None:
        """Push buffered lines to the file."""
        with self._lock:
            self._write_pending()
            if self._out is not None:
                self._out.flush()

    def close(self) -> None:
        """Flush and close the file (the records stay in memory)."""
        with self._lock:
            try:
                self._write_pending()
            finally:
                if self._out is not None:
                    self._out.close()
                    self._out = None

    def __iter__(self) -> Iterator[Record]:
        """A snapshot of the records."""
        with self._lock:
            return iter(list(self.records))

    def __len__(self) -> int:
        """How many records."""
        with self._lock:
            return len(self.records)


def latencies(records: Iterable[Record], refusals: bool = False) -> list[tuple[float, float, int]]:
    """(answer time, seconds from the send to its ack, client) for every acked send (and refused one)."""
    sent: dict[str, float] = {}
    answers = (OK, FAIL) if refusals else (OK,)
    out = []
    for r in records:
        if r.f != "send":
            continue
        token = r.get("token")
        if r.type == INVOKE:
            sent[token] = r.time
        elif r.type in answers and token in sent:
            out.append((r.time, r.time - sent[token], r.client))
    return out


def load(path: Path) -> list[Record]:
    """Read a ``history.jsonl`` file; raise ValueError naming the bad line."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(Record.from_json(line))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: {exc}") from exc
    return out


def write(records: Iterable[Record], path: Path) -> None:
    """Write records as JSONL (used by tests that fabricate histories)."""
    with open(path, "wb") as fh:
        fh.writelines(json_line(rec.to_dict()) for rec in records)
