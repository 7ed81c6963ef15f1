"""Check, moments after each acknowledgement, that the acknowledged row is already visible in the log.

A server that acknowledges before it commits shows up here as an ``audit`` record with
``visible: false``: the checker's "ack before commit" anomaly. Acks that carry a row id are all
audited in batches (one query per batch); the rows a batch found, one ``audit`` record for all
(``visible: true``, their ``rows`` and ``tokens``). Acks without one (``pfo1``) are audited by
token, at most ``token_rate`` per second, since that query scans the table.
"""

from __future__ import annotations

import threading
import time

from harness.history import INFO, History
from harness.log import LogError, LogReader


class Auditor:
    """A thread that audits acknowledgements against the log."""

    def __init__(
        self, reader: LogReader, history: History, after: int, token_rate: float = 20.0, batch_every: float = 0.002
    ) -> None:
        """Audit rows above id ``after`` in ``reader``'s log, recording into ``history``.

        Acks with a row id are audited at most every ``batch_every`` seconds, all of those that came
        meanwhile in one query: one query per ack would cost more than the clients themselves.
        """
        self.reader = reader
        self.history = history
        self.after = after
        self.token_rate = token_rate
        self.batch_every = batch_every
        self._last_row_audit = 0.0
        self._cond = threading.Condition()
        self._by_row: list[tuple[str, int, float, int, int]] = []
        self._by_token: list[tuple[str, float, int, int]] = []
        self._stopping = False
        self._last_token_audit = 0.0
        self._thread = threading.Thread(target=self._run, name="auditor", daemon=True)

    def start(self) -> Auditor:
        """Start auditing."""
        self._thread.start()
        return self

    def acked(self, token: str, row: int | None, client: int, conn: int) -> None:
        """An ack for ``token`` (row ``row`` if the ack said so) was just received."""
        with self._cond:
            idle = not (self._by_row or self._by_token)
            if row is not None:
                self._by_row.append((token, row, self.history.now(), client, conn))
            else:
                self._by_token.append((token, self.history.now(), client, conn))
            if idle:  # otherwise the auditor already sleeps until its next batch is due
                self._cond.notify()

    def stop(self, timeout: float = 10.0) -> None:
        """Audit what is queued, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        period = 1.0 / self.token_rate
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    token_due = bool(self._by_token) and now - self._last_token_audit >= period
                    rows_due = bool(self._by_row) and now - self._last_row_audit >= self.batch_every
                    if rows_due or token_due or self._stopping:
                        break
                    waits = [0.5]
                    if self._by_token:
                        waits.append(period - (now - self._last_token_audit))
                    if self._by_row:
                        waits.append(self.batch_every - (now - self._last_row_audit))
                    self._cond.wait(max(0.0005, min(waits)))
                by_row, self._by_row = self._by_row, []
                if by_row:
                    self._last_row_audit = now
                token = None
                if token_due:
                    token = self._by_token[-1]  # the newest: the one most likely to be uncommitted
                    self._by_token = []
                    self._last_token_audit = now
                stopping = self._stopping
            if by_row:
                self._audit_rows(by_row)
            if token is not None:
                self._audit_token(token)
            if stopping and not by_row and token is None:
                return

    def _audit_rows(self, batch: list[tuple[str, int, float, int, int]]) -> None:
        try:
            visible = self.reader.visible_ids([row for _, row, _, _, _ in batch])
        except LogError as exc:
            self.history.add(INFO, "audit-error", error=str(exc))
            return
        checked = self.history.now()
        found = [item for item in batch if item[1] in visible]
        if found:
            self.history.add(
                INFO,
                "audit",
                visible=True,
                rows=[row for _, row, _, _, _ in found],
                tokens=[token for token, _, _, _, _ in found],
                checked_at=checked,
            )
        for token, row, acked_at, client, conn in batch:
            if row not in visible:
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

    def _audit_token(self, item: tuple[str, float, int, int]) -> None:
        token, acked_at, client, conn = item
        try:
            # A server without framing may store the message in pieces, its token cut: the checker then
            # asks whether the first piece's row was committed by now, by id (read first: no race).
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
            acked_at=acked_at,
            checked_at=self.history.now(),
        )
