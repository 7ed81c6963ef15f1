"""Invariants over a run's history and the server's log: a verdict, counts, and anomalies with evidence.

The invariants are numbered as in the design brief:

1. no acked message lost — each acked message is in the log exactly once
2. no duplicates — no sent message is stored twice
3. no phantoms — no row no client sent; no empty or partial rows
4. integrity — stored content equals sent content (after the target's normalisation)
5. per-connection order — one connection's messages are stored in send order
6. ack consistency — the ack comes after the row is visible; its row id and timestamp match
7. delivery (relaying servers) — a member connected throughout receives each message once, in log order
8. liveness — after the run, a fresh probe client is still served
9. clean shutdown — exit 0 in time, acked rows durable, integrity ok, no traceback, port rebindable
10. resources — server threads and descriptors return to baseline after the clients leave

A message sent but never acknowledged is *indeterminate*: stored at most once, never an error
by itself. The verdict is ``True`` (valid), ``False`` (an anomaly) or ``None`` (unknown: the
harness could not observe enough, e.g. the log was unreadable or a client thread failed).
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.history import FAIL, INVOKE, OK, Record
from harness.log import Row

INVARIANTS = {
    1: "no acked message lost",
    2: "no duplicates",
    3: "no phantoms, empty or partial rows",
    4: "stored content equals sent content",
    5: "per-connection order",
    6: "ack consistency",
    7: "relay delivery",
    8: "liveness",
    9: "clean shutdown",
    10: "resources return to baseline",
}
POLITE_ENDS = frozenset({"close", "reconnect", "exit"})
MAX_EVIDENCE = 5


@dataclass
class Anomaly:
    """One violation, with what proves it."""

    kind: str
    invariant: int
    message: str
    token: str | None = None
    client: int | None = None
    history: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


@dataclass
class Counts:
    """How many messages ended up where."""

    sent: int = 0
    acked: int = 0
    failed: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    indeterminate: int = 0
    rows: int = 0


@dataclass
class CheckResult:
    """The verdict of one run."""

    valid: bool | None
    anomalies: list[Anomaly]
    counts: Counts
    invariants: dict[int, str]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for report.json."""
        return {
            "valid": self.valid,
            "counts": asdict(self.counts),
            "invariants": {str(k): {"name": INVARIANTS[k], "status": v} for k, v in sorted(self.invariants.items())},
            "anomalies": [a.to_dict() for a in self.anomalies],
            "notes": self.notes,
        }

    def summary(self) -> str:
        """One paragraph for people."""
        verdict = {True: "valid", False: "INVALID", None: "unknown"}[self.valid]
        c = self.counts
        text = (
            f"{verdict}: sent {c.sent}, acked {c.acked}, stored {c.stored}, lost {c.lost}, "
            f"duplicated {c.duplicated}, indeterminate {c.indeterminate}, failed {c.failed}"
        )
        kinds: dict[str, int] = defaultdict(int)
        for a in self.anomalies:
            kinds[a.kind] += 1
        if kinds:
            text += "; anomalies: " + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text


@dataclass
class Message:
    """Everything the history says about one token."""

    token: str
    client: int
    text: str = ""
    invokes: list[Record] = field(default_factory=list)
    oks: list[Record] = field(default_factory=list)
    fails: list[Record] = field(default_factory=list)
    infos: list[Record] = field(default_factory=list)
    partial: bool = False

    @property
    def acked(self) -> bool:
        """The server acknowledged it."""
        return bool(self.oks)

    @property
    def failed(self) -> bool:
        """The server said it was not stored (and never acknowledged it)."""
        return bool(self.fails) and not self.oks

    def evidence(self) -> list[int]:
        """History indexes about this message (a few)."""
        recs = sorted(self.invokes + self.oks + self.fails + self.infos, key=lambda r: r.index)
        return [r.index for r in recs][: MAX_EVIDENCE * 2]


def normalise(text: str, how: str) -> str:
    """Apply the target's documented normalisation (``exact`` or ``strip``)."""
    return text.strip() if how == "strip" else text


def _row(r: Row) -> dict[str, Any]:
    content = r.content if r.content is None or len(r.content) <= 300 else r.content[:300] + "…"
    return {"id": r.id, "content": content, "ts": r.ts}


class Checker:
    """Checks one run: feed it the history records and the log rows added during the run."""

    def __init__(self, records: Sequence[Record], rows: Sequence[Row], log_error: str | None = None) -> None:
        """Index the history; the run's settings come from its ``run`` record."""
        self.records = list(records)
        self.rows = list(rows)
        self.log_error = log_error
        run = next((r for r in self.records if r.f == "run"), None)
        self.settings: dict[str, Any] = dict(run.value) if run else {}
        self.run_id = str(self.settings.get("run_id", ""))
        self.normalize = str(self.settings.get("normalize", "exact"))
        self.relay = str(self.settings.get("relay", "none"))
        self.anomalies: list[Anomaly] = []
        self.notes: list[str] = []
        self.messages: dict[str, Message] = {}
        self.rows_by_token: dict[str, list[Row]] = defaultdict(list)
        self.row_by_id: dict[int, Row] = {r.id: r for r in self.rows}
        token = rf"\[({re.escape(self.run_id)}\.\d+\.\d+)\]" if self.run_id else r"\[([0-9a-z]+\.\d+\.\d+)\]"
        self.token_re = re.compile(token)
        self.foreign_re = re.compile(r"^\s*\[[0-9a-f]{6}\.\d+\.\d+\]")  # a token of another run on a reused server

    def add(self, kind: str, invariant: int, message: str, **kw: Any) -> None:
        """Record an anomaly."""
        self.anomalies.append(Anomaly(kind, invariant, message, **kw))

    # -- indexing --------------------------------------------------------------------

    def _index_messages(self) -> None:
        for rec in self.records:
            if rec.f != "send":
                continue
            token = rec.get("token")
            if token is None:
                continue
            m = self.messages.get(token)
            if m is None:
                m = self.messages[token] = Message(token, rec.client)
            if rec.type == INVOKE:
                m.invokes.append(rec)
                m.text = rec.get("text", m.text)
                if rec.get("partial"):
                    m.partial = True
            elif rec.type == OK:
                m.oks.append(rec)
            elif rec.type == FAIL:
                m.fails.append(rec)
            else:
                m.infos.append(rec)

    # -- invariants 1-4 ------------------------------------------------------------------

    def _check_rows(self) -> None:
        phantoms_examined = 0
        foreign = 0
        for row in self.rows:
            content = row.content
            if content is None or not content.strip():
                self.add("empty-row", 3, f"row {row.id} is empty", rows=[_row(row)])
                continue
            tokens = self.token_re.findall(content)
            if not tokens and self.foreign_re.match(content):
                foreign += 1  # a late message of an earlier run against the same server
                continue
            if not tokens:
                kind, why = "phantom", f"row {row.id} matches no message any client sent"
                exit_words = {"éxito", "exito", "/quit"}
                if content.strip().casefold() in exit_words:
                    kind, why = (
                        "exit-word-stored",
                        f"row {row.id} stores the exit word {content.strip()!r} as a message",
                    )
                elif phantoms_examined < 50:
                    phantoms_examined += 1
                    source = next((m for m in self.messages.values() if m.text and content.strip() in m.text), None)
                    if source is not None:
                        kind = "partial-row"
                        why = f"row {row.id} holds a fragment of message {source.token} (its text was split)"
                        self.add(
                            kind,
                            3,
                            why,
                            token=source.token,
                            client=source.client,
                            history=source.evidence(),
                            rows=[_row(row)],
                        )
                        continue
                self.add(kind, 3, why, rows=[_row(row)])
                continue
            distinct = list(dict.fromkeys(tokens))
            if len(distinct) > 1:
                self.add(
                    "merged",
                    3,
                    f"row {row.id} holds {len(distinct)} messages run together ({', '.join(distinct[:4])})",
                    token=distinct[0],
                    rows=[_row(row)],
                    history=[i for t in distinct[:3] if t in self.messages for i in self.messages[t].evidence()[:2]],
                )
            for t in distinct:
                self.rows_by_token[t].append(row)
            if distinct[0] not in self.messages:
                self.add(
                    "phantom", 3, f"row {row.id} carries token {distinct[0]} that no client sent", rows=[_row(row)]
                )
        if foreign:
            self.notes.append(f"{foreign} row(s) from earlier runs against the same server were ignored")

    def _check_stray_acks(self) -> None:
        """An ack for nothing outstanding: twice for one message, for an unknown id, or an extra reply."""
        for rec in self.records:
            if rec.f == "stray-ack":
                self.add(
                    "stray-ack",
                    6,
                    f"connection {rec.conn} got an ack it did not wait for: {rec.get('line')}",
                    token=rec.get("token"),
                    client=rec.client,
                    history=[rec.index],
                )

    def _check_messages(self) -> Counts:
        c = Counts(rows=len(self.rows))
        for m in self.messages.values():
            rows = self.rows_by_token.get(m.token, [])
            c.sent += 1
            c.acked += m.acked
            c.failed += m.failed
            c.stored += bool(rows)
            if not m.acked and not m.failed:
                c.indeterminate += 1
            ev = m.evidence()
            if m.acked and not rows:
                c.lost += 1
                self.add(
                    "lost",
                    1,
                    f"message {m.token} was acknowledged but is not in the log",
                    token=m.token,
                    client=m.client,
                    history=ev,
                )
            if len(rows) > 1:
                c.duplicated += 1
                self.add(
                    "duplicate",
                    2,
                    f"message {m.token} is stored {len(rows)} times",
                    token=m.token,
                    client=m.client,
                    history=ev,
                    rows=[_row(r) for r in rows[:MAX_EVIDENCE]],
                )
            if not rows:
                continue
            row = rows[0]
            if m.partial:
                self.add(
                    "partial-row",
                    3,
                    f"half of message {m.token} was sent before a reset, yet row {row.id} stores it",
                    token=m.token,
                    client=m.client,
                    history=ev,
                    rows=[_row(row)],
                )
                continue
            if m.failed and len(m.invokes) == 1:  # resent: the stored row may come from an earlier send
                codes = ", ".join(str(f.get("code")) for f in m.fails)
                self.add(
                    "error-but-stored",
                    6,
                    f"the server refused message {m.token} ({codes}) but row {row.id} stores it",
                    token=m.token,
                    client=m.client,
                    history=ev,
                    rows=[_row(row)],
                )
            for r in rows:
                self._check_content(m, r, ev)
            self._check_acks(m, row, ev)
        return c

    def _check_content(self, m: Message, row: Row, ev: list[int]) -> None:
        sent = normalise(m.text, self.normalize)
        stored = normalise(row.content or "", self.normalize)
        if stored == sent or len(set(self.token_re.findall(stored))) > 1:
            return  # equal, or a merged row (reported as such)
        if sent.startswith(stored):
            kind, why = (
                "partial-row",
                f"row {row.id} holds only the first {len(stored)} of {len(sent)} characters of {m.token}",
            )
            invariant = 3
        elif stored.startswith(sent):
            kind = "merged"
            extra = len(stored) - len(sent)
            why = f"row {row.id} holds {m.token} followed by {extra} more characters (another message run in)"
            invariant = 3
        else:
            kind, why = "corrupted", f"row {row.id} differs from what was sent as {m.token}"
            invariant = 4
        self.add(
            kind, invariant, why, token=m.token, client=m.client, history=ev, rows=[_row(row), {"sent": sent[:300]}]
        )

    def _check_acks(self, m: Message, row: Row, ev: list[int]) -> None:
        for ok in m.oks:
            acked_row = ok.get("row")
            if acked_row is not None and acked_row != row.id:
                self.add(
                    "ack-mismatch",
                    6,
                    f"the ack of {m.token} names row {acked_row}, but it is stored as row {row.id}",
                    token=m.token,
                    client=m.client,
                    history=[ok.index, *ev[:3]],
                    rows=[_row(row)],
                )
            ts = ok.get("ts")
            if ts is not None and row.ts is not None and ts != row.ts:
                self.add(
                    "ack-mismatch",
                    6,
                    f"the ack of {m.token} says {ts}, row {row.id} says {row.ts}",
                    token=m.token,
                    client=m.client,
                    history=[ok.index],
                    rows=[_row(row)],
                )

    # -- invariant 5 -------------------------------------------------------------------

    def _check_order(self) -> None:
        # Only messages sent on a single connection: a resent one may have been stored from either send.
        conns: dict[str, set[int]] = defaultdict(set)
        for m in self.messages.values():
            conns[m.token] = {i.conn for i in m.invokes}
        by_conn: dict[int, list[Record]] = defaultdict(list)
        for rec in self.records:
            if rec.f == "send" and rec.type == INVOKE and not rec.get("partial") and len(conns[rec.get("token")]) == 1:
                by_conn[rec.conn].append(rec)
        for conn, invokes in by_conn.items():
            last_id, last_rec = -1, None
            for rec in invokes:
                rows = self.rows_by_token.get(rec.get("token"), [])
                if len(rows) != 1:
                    continue
                rid = rows[0].id
                if rid < last_id and last_rec is not None:
                    self.add(
                        "reordered",
                        5,
                        f"on connection {conn}, {rec.get('token')} (row {rid}) was sent after "
                        f"{last_rec.get('token')} (row {last_id}) but stored before it",
                        token=rec.get("token"),
                        client=rec.client,
                        history=[last_rec.index, rec.index],
                        rows=[_row(rows[0]), _row(self.row_by_id[last_id])],
                    )
                if rid > last_id:
                    last_id, last_rec = rid, rec

    # -- invariant 6: audits -----------------------------------------------------------------

    def _check_audits(self) -> None:
        for rec in self.records:
            if rec.f == "audit" and rec.get("visible") is False:
                token = rec.get("token")
                m = self.messages.get(token)
                stored = self.rows_by_token.get(token, [])
                self.add(
                    "ack-before-commit",
                    6,
                    f"{token} was acknowledged at {rec.get('acked_at'):.3f} s but its row was not in the log at "
                    f"{rec.get('checked_at'):.3f} s",
                    token=token,
                    client=rec.client,
                    history=([*m.evidence()[:3], rec.index] if m else [rec.index]),
                    rows=[_row(r) for r in stored[:1]],
                )
            elif rec.f == "audit-error":
                self.notes.append(f"an audit could not read the log: {rec.get('error')}")

    # -- invariant 7 ------------------------------------------------------------------------

    def _check_delivery(self) -> str:
        if self.relay == "none":
            return "n/a"
        stored_once = {t: rows[0] for t, rows in self.rows_by_token.items() if len(rows) == 1 and t in self.messages}
        crc = {r.id: zlib.crc32((r.content or "").encode("utf-8")) for r in self.rows}
        baseline = int(self.settings.get("baseline_id", 0))
        judged = 0
        for rec in self.records:
            if rec.f != "conn-end":
                continue
            received = [(int(x[0]), x[1], x[2]) for x in rec.get("relays", [])]
            seen: set[int] = set()
            last = -1
            for row_id, checksum, token in received:
                if row_id <= baseline:
                    continue
                if row_id in seen:
                    self.add(
                        "duplicate-relay",
                        7,
                        f"connection {rec.conn} received row {row_id} twice",
                        client=rec.client,
                        history=[rec.index],
                    )
                if row_id < last:
                    self.add(
                        "relay-order",
                        7,
                        f"connection {rec.conn} received row {row_id} after row {last}",
                        client=rec.client,
                        history=[rec.index],
                    )
                seen.add(row_id)
                last = max(last, row_id)
                if row_id not in crc:
                    self.add(
                        "phantom-relay",
                        7,
                        f"connection {rec.conn} received row {row_id}, which is not in the log",
                        client=rec.client,
                        history=[rec.index],
                    )
                elif checksum != crc[row_id]:
                    row = self.row_by_id[row_id]
                    self.add(
                        "relay-mismatch",
                        7,
                        f"connection {rec.conn} received row {row_id} with other text than stored",
                        client=rec.client,
                        history=[rec.index],
                        rows=[_row(row)],
                    )
                # Only the connection that stored a message must not get it back. A resent message
                # was sent on several connections (any of them may hold the stored send): not judged.
                if (
                    self.relay == "others"
                    and token in self.messages
                    and {i.conn for i in self.messages[token].invokes} == {rec.conn}
                ):
                    self.add(
                        "relay-to-sender",
                        7,
                        f"connection {rec.conn} received its own message {token}",
                        token=token,
                        client=rec.client,
                        history=[rec.index],
                    )
            hello, end = rec.get("hello"), rec.get("end")
            if rec.get("reason") not in POLITE_ENDS or hello is None or end is None:
                continue
            judged += 1
            missed = []
            for token, row in stored_once.items():
                m = self.messages[token]
                if self.relay == "others" and m.client == rec.client:
                    continue
                if not m.oks or not m.invokes:
                    continue
                if m.invokes[0].time > hello and m.oks[0].time < end and row.id not in seen:
                    missed.append((token, row, m))
            if missed:
                token, row, m = missed[0]
                self.add(
                    "missed-relay",
                    7,
                    f"connection {rec.conn} (client {rec.client}) was connected from {hello:.3f} s to {end:.3f} s "
                    "but did "
                    f"not receive {len(missed)} message(s) committed meanwhile, e.g. {token} (row {row.id})",
                    token=token,
                    client=rec.client,
                    history=[rec.index, *m.evidence()[:2]],
                    rows=[_row(r) for _, r, _ in missed[:MAX_EVIDENCE]],
                )
        return "pass" if judged else "n/a"  # no connection ended politely: nothing to judge

    # -- invariants 8-10 -----------------------------------------------------------------------

    def _check_liveness(self) -> str:
        status = "n/a"
        for rec in self.records:
            if rec.f == "probe" and rec.type in (OK, FAIL):
                status = "pass" if status in ("n/a", "pass") and rec.type == OK else "fail"
                if rec.type == FAIL:
                    self.add(
                        "not-live", 8, f"a fresh probe client was not served: {rec.get('error')}", history=[rec.index]
                    )
            elif rec.f == "server" and rec.get("event") == "crashed":
                status = "fail"
                self.add(
                    "server-crashed",
                    8,
                    f"the server process died during the run (exit code {rec.get('exit_code')}): "
                    f"{rec.get('stderr', '')}",
                    history=[rec.index],
                )
        return status

    def _check_shutdown(self) -> str:
        status = "n/a"
        for rec in self.records:
            if rec.f == "integrity":
                if rec.get("result") == "ok":
                    status = "pass" if status == "n/a" else status
                else:
                    status = "fail"
                    self.add(
                        "corrupt-log",
                        9,
                        f"integrity_check after {rec.get('after')}: {rec.get('result')}",
                        history=[rec.index],
                    )
            if rec.f != "shutdown":
                continue
            status = "pass" if status != "fail" else status
            problems = []
            code, seconds, deadline = rec.get("exit_code"), rec.get("seconds"), rec.get("deadline")
            if rec.get("forced"):
                problems.append(f"did not exit within {rec.get('timeout')} s of {rec.get('method')} and was killed")
            elif code != 0:
                problems.append(f"exit code {code} after {rec.get('method')}")
            if deadline is not None and seconds is not None and seconds > deadline:
                problems.append(f"took {seconds:.2f} s to stop, more than {deadline} s")
            if rec.get("integrity") not in (None, "ok"):
                problems.append(f"integrity_check: {rec.get('integrity')}")
            if rec.get("traceback"):
                problems.append("a traceback on stderr: " + str(rec.get("traceback"))[:200])
            if rec.get("rebind") is False:
                problems.append("the port could not be bound again right after the stop")
            for p in problems:
                status = "fail"
                self.add("unclean-shutdown", 9, f"server {p}", history=[rec.index])
        return status

    def _check_resources(self) -> str:
        status = "n/a"
        for rec in self.records:
            if rec.f != "resources":
                continue
            if status == "n/a":
                status = "pass"
            for what in ("threads", "fds"):
                before, after = rec.get(f"{what}_before"), rec.get(f"{what}_after")
                slack = int(rec.get(f"{what}_slack", 0))
                if before is None or after is None:
                    status = "unknown" if status == "pass" else status
                elif after > before + slack:
                    status = "fail"
                    self.add(
                        "resource-leak",
                        10,
                        f"server {what}: {before} before the clients, "
                        f"still {after} {rec.get('waited', 0):g} s after they left",
                        history=[rec.index],
                    )
        return status

    # -- all together ------------------------------------------------------------------------

    def check(self) -> CheckResult:
        """Run every invariant (those that need the log only when it could be read)."""
        self._index_messages()
        statuses = {k: "pass" for k in range(1, 7)}
        if self.log_error:
            self.notes.append(f"log unreadable: {self.log_error}")
            counts = Counts(sent=len(self.messages), acked=sum(m.acked for m in self.messages.values()))
            for k in (1, 2, 3, 4, 5, 7):
                statuses[k] = "unknown"
        else:
            self._check_rows()
            counts = self._check_messages()
            self._check_order()
            statuses[7] = self._check_delivery()
        self._check_stray_acks()
        self._check_audits()
        statuses[8] = self._check_liveness()
        statuses[9] = self._check_shutdown()
        statuses[10] = self._check_resources()
        for a in self.anomalies:
            statuses[a.invariant] = "fail"
        harness_errors = [r for r in self.records if r.f in ("client-error", "harness-error")]
        for r in harness_errors[:3]:
            self.notes.append(f"harness error: {r.get('error')}")
        if not self.settings:
            self.notes.append("the history has no run record")
        if self.anomalies:
            valid: bool | None = False
        elif self.log_error or harness_errors or not self.settings:
            valid = None
        else:
            valid = True
        return CheckResult(valid, self.anomalies, counts, statuses, self.notes)


def check(records: Iterable[Record], rows: Iterable[Row], log_error: str | None = None) -> CheckResult:
    """Check one run."""
    return Checker(list(records), list(rows), log_error).check()


STATUS_RANK = {"n/a": 0, "pass": 1, "unknown": 2, "fail": 3}


def merge(results: Sequence[CheckResult]) -> CheckResult:
    """One result for several runs: counts summed, anomalies joined, each invariant at its worst."""
    counts = Counts()
    anomalies: list[Anomaly] = []
    notes: list[str] = []
    statuses: dict[int, str] = {}
    for r in results:
        for name in vars(counts):
            setattr(counts, name, getattr(counts, name) + getattr(r.counts, name))
        anomalies.extend(r.anomalies)
        notes.extend(n for n in r.notes if n not in notes)
        for k, v in r.invariants.items():
            if STATUS_RANK[v] >= STATUS_RANK[statuses.get(k, "n/a")]:
                statuses[k] = v
    verdicts = [r.valid for r in results]
    valid: bool | None = False if False in verdicts else (None if None in verdicts or not verdicts else True)
    return CheckResult(valid, anomalies, counts, statuses, notes)
