"""Check, moments after each acknowledgement, that the acknowledged row is already visible in the log.

A server that acknowledges before it commits shows up here as an ``audit`` record with
``visible: false``: the checker's "ack before commit" anomaly. Acks that carry a row id are all
audited in batches, at most every ``batch_every`` seconds, one indexed query per batch, on the
clients' event loop itself: a thread of its own would take the interpreter lock from the clients
at every wake-up (measured: it doubled the time of each client's send). The rows a batch found
make one ``audit`` record (``visible: true``, their ``rows`` and ``tokens``). Those queries never
wait for a lock: a log locked by its writer is asked again at the next batch, for at most
``patience`` seconds. Acks without a row id (``pfo1``) are audited by token, at most
``token_rate`` per second, on a thread of their own, since that query scans the table.

With ``watch`` (a run's auditor: ``LOG_WATCH``), a thread also reads the log's largest id every
``watch`` seconds, acks or not, without waiting for a lock: when a client gave up on an answer,
that says whether the server had stored the message yet (``log-read`` records), even while a
stalled server sends no acks to audit.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from harness.history import INFO, History
from harness.log import LogBusy, LogError, LogReader

LOG_WATCH = 0.1  # seconds between a run auditor's own reads of the log's largest id
SPAN_PER_ACK = 4  # ids a batch's range may span per ack for one count over it (more: a lookup per id)
RowAck = tuple[str, int, float, int, int]  # token, row, acked at, client, connection
TokenAck = tuple[str, float, int, int]  # token, acked at, client, connection


class Auditor:
    """Audits acknowledgements against the log, from the event loop that hears of them."""

    def __init__(
        self,
        reader: LogReader,
        history: History,
        after: int,
        token_rate: float = 20.0,
        batch_every: float = 0.002,
        patience: float = 5.0,
        watch: float = 0.0,
    ) -> None:
        """Audit rows above id ``after`` in ``reader``'s log, recording into ``history``; ``stop`` ends it."""
        self.reader = reader
        # The loop's queries: one kept connection, and a fresh one to ask again about rows it did not find.
        self.kept = LogReader(reader.path, reader.m, timeout=0.0, keep_open=True)
        self.fresh = LogReader(reader.path, reader.m, timeout=0.0)
        self.history = history
        self.after = after
        self.period = 1.0 / token_rate
        self.batch_every = batch_every
        self.patience = patience
        self._by_row: list[RowAck] = []
        self._by_token: list[TokenAck] = []
        self._timer: asyncio.TimerHandle | None = None
        self._busy_since: float | None = None
        self._last_token_audit = -1e9
        self._token_thread: ThreadPoolExecutor | None = None
        self._stopped = False
        self._watch_done = threading.Event()
        self._watcher: threading.Thread | None = None
        if watch > 0:
            self._watcher = threading.Thread(target=self._watch, args=(watch,), name="log-watch", daemon=True)
            self._watcher.start()

    def acked(self, token: str, row: int | None, client: int, conn: int) -> None:
        """An ack for ``token`` (row ``row`` if the ack said so) was just received."""
        if self._stopped:
            return
        if row is not None:
            self._by_row.append((token, row, self.history.now(), client, conn))
        else:
            self._by_token.append((token, self.history.now(), client, conn))
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on an event loop: audit at once
                self._tick(None)
                return
            self._timer = loop.call_later(self.batch_every, self._tick, loop)

    def stop(self) -> None:
        """Audit what is still queued (waiting for a locked log, as long as ``patience``), then close the log.

        Call it once the event loop that heard the acks has ended.
        """
        self._stopped = True
        self._watch_done.set()
        if self._watcher is not None:
            self._watcher.join(5.0)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            if self._token_thread is not None:
                self._token_thread.shutdown(wait=True)
            while self._by_row:
                if not self._audit_rows():
                    time.sleep(self.batch_every)
            if self._by_token:
                self._audit_token(self._by_token[-1])
                self._by_token = []
        finally:
            self.kept.close()

    def _watch(self, every: float) -> None:
        """Read the log's largest id every ``every`` seconds until ``stop`` (a locked or missing log: skipped)."""
        reader = LogReader(self.reader.path, self.reader.m, timeout=0.0, keep_open=True)
        try:
            while True:
                stopping = self._watch_done.wait(every)  # and one last read at the stop: after every wait ended
                at = self.history.now()  # the read comes after: a row it does not count was not committed then
                try:
                    top = reader.max_id()
                except LogError:
                    top = 0
                if top > 0:
                    self.history.add(INFO, "log-read", max_id=top, max_id_at=at)
                if stopping:
                    return
        finally:
            reader.close()

    def _tick(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._timer = None
        if self._by_row:
            self._audit_rows()
        now = time.monotonic()
        if self._by_token and now - self._last_token_audit >= self.period:
            newest, self._by_token = self._by_token[-1], []  # the newest: the one most likely to be uncommitted
            self._last_token_audit = now
            if loop is None:
                self._audit_token(newest)
            else:
                if self._token_thread is None:
                    self._token_thread = ThreadPoolExecutor(1, thread_name_prefix="token-audit")
                self._token_thread.submit(self._audit_token, newest)
        if loop is not None and (self._by_row or self._by_token):
            wait = self.batch_every
            if not self._by_row:
                wait = max(wait, self.period - (now - self._last_token_audit))
            self._timer = loop.call_later(wait, self._tick, loop)

    def _audit_rows(self) -> bool:
        """Audit the queued row acks in one query; False if the log was locked and some stay queued (within ``patience``)."""
        left, found = self._by_row, set()
        busy: LogBusy | None = None
        error: LogError | None = None
        try:
            ids = [row for _, row, _, _, _ in left]
            lo, hi = min(ids), max(ids)
            # Acks of one batch are for rows stored moments apart: nearly always every id in between
            # is committed, which one count over the range shows; otherwise each id is looked up.
            if hi - lo <= SPAN_PER_ACK * len(ids) and self.kept.all_visible(lo, hi):
                found, left = set(ids), []
            else:
                found = self.kept.visible_ids(ids)
                left = [item for item in left if item[1] not in found]
            if left:  # asked again on a fresh connection: never judged by a connection that went stale
                found |= self.fresh.visible_ids([row for _, row, _, _, _ in left])
                left = [item for item in left if item[1] not in found]
        except LogBusy as exc:
            busy = exc
        except LogError as exc:
            error = exc
        checked = self.history.now()
        seen = [item for item in self._by_row if item[1] in found]
        if seen:
            self.history.add(
                INFO,
                "audit",
                visible=True,
                rows=[row for _, row, _, _, _ in seen],
                tokens=[token for token, _, _, _, _ in seen],
                checked_at=checked,
            )
        if error is not None:  # what the first look found is recorded; the rest cannot be audited
            self._by_row, self._busy_since = [], None
            self.history.add(INFO, "audit-error", error=str(error), acks=len(left))
            return True
        if busy is not None and left:
            now = time.monotonic()
            self._busy_since = now if self._busy_since is None else self._busy_since
            if now - self._busy_since < self.patience:
                self._by_row = left  # asked again at the next batch
                return False
            self.history.add(INFO, "audit-error", error=str(busy), acks=len(left))
            left = []
        self._by_row, self._busy_since = [], None
        for token, row, acked_at, client, conn in left:
            self.history.add(
                INFO,
                "audit",
                client,
                conn,
                token=token,
                row=row,
                visible=False,
                acked_at=acked_at,
                checked_at=checked,
            )
        return True

    def _audit_token(self, item: TokenAck) -> None:
        token, acked_at, client, conn = item
        try:
            # A server without framing may store the message in pieces, its token cut: the checker then
            # asks whether the first piece's row was committed by now, by id (read first: no race).
            seen_at = self.history.now()  # the read comes after: a row not in ``seen`` was not committed then
            seen: int | None = self.reader.max_id()
            visible = self.reader.contains(f"[{token}]", self.after)
        except LogError as exc:
            self.history.add(INFO, "audit-error", error=str(exc))
            return
        self.history.add(
            INFO,
            "audit",
            client,
            conn,
            token=token,
            visible=visible,
            max_id=seen,
            max_id_at=seen_at,
            acked_at=acked_at,
            checked_at=self.history.now(),
        )
