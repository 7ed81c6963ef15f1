"""One immutable index of a run, built once, read by every checker.

From the history and the log rows it holds: every message (its sends, answers and where it is
stored, even in pieces), every connection (its proxy link, why it ended, what touched it), and
the records by kind. Checkers never re-parse the history and never run in a particular order.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter
from typing import Any

from harness import exposure
from harness.ends import End
from harness.exposure import Touch
from harness.framing import EXIT_TOKEN, Framing, Outline, Sent, analyse, sent
from harness.history import FAIL, INFO, INVOKE, OK, Record
from harness.log import Row

MAX_EVIDENCE = 5
_INDEX = attrgetter("index")  # a record's place in the history (a sort key without a Python call per record)
CHAT_EXIT_WORDS = ("éxito", "exito", "/quit")


@dataclass(slots=True)
class Message:
    """Everything the history says about one token."""

    token: str
    client: int
    text: str = ""
    invokes: list[Record] = field(default_factory=list)
    oks: list[Record] = field(default_factory=list)
    # Nearly always none: an empty tuple, not a list per message that every collection walks.
    fails: Sequence[Record] = ()
    infos: Sequence[Record] = ()
    partial: bool = False  # only half of it was sent (then the client broke the connection)
    raw: bool = False  # bad input, sent as is
    _conns: tuple[int, set[int]] | None = field(default=None, repr=False, compare=False)  # conns, for so many invokes

    @property
    def acked(self) -> bool:
        """The server acknowledged it."""
        return bool(self.oks)

    @property
    def failed(self) -> bool:
        """The server said it was not stored (and never acknowledged it)."""
        return bool(self.fails) and not self.oks

    @property
    def one_conn(self) -> bool:
        """It was sent on one connection (nearly always: sent once)."""
        return len(self.invokes) == 1 or len(self.conns) == 1

    @property
    def conns(self) -> set[int]:
        """The connections it was sent on."""
        if self._conns is None or self._conns[0] != len(self.invokes):
            self._conns = (len(self.invokes), {r.conn for r in self.invokes})
        return self._conns[1]

    def evidence(self) -> list[int]:
        """History indexes about this message (a few)."""
        recs = sorted([*self.invokes, *self.oks, *self.fails, *self.infos], key=_INDEX)
        return [r.index for r in recs][: MAX_EVIDENCE * 2]

    def about(self) -> dict[str, Any]:
        """What an anomaly about this message names: the message, its client, its history lines."""
        return {"token": self.token, "client": self.client, "history": self.evidence()}


@dataclass
class Connection:
    """One connection a simulated client made."""

    conn: int
    client: int
    link: str | None = None
    opened: float = 0.0
    connected: float | None = None  # when the connect returned
    hello: float | None = None
    end: End | None = None  # as the client saw it; None if it never ended (or never opened)
    end_at: float | None = None  # when it began to end
    closed_at: float | None = None  # when the end was recorded
    errors: list[str] = field(default_factory=list)  # connection-level errors the server sent
    relays: list[list[Any]] = field(default_factory=list)
    record: Record | None = None
    touches: list[Touch] = field(default_factory=list)
    failed: bool = False  # the connect failed

    @property
    def connect_seconds(self) -> float | None:
        """How long the connect took (None if it never returned)."""
        return None if self.connected is None else self.connected - self.opened

    @property
    def cause(self) -> End | None:
        """Why it really ended: a fault or a nemesis that ended it explains what the client saw."""
        if self.end is None or self.end.client_broke or self.end.harness:
            return self.end
        until = (self.closed_at or 0.0) + exposure.EARLY
        for t in sorted(self.touches, key=lambda t: t.start):
            if t.final and t.start <= until:
                return End.FAULT if t.source == "fault" else End.NEMESIS
        return self.end

    def touched(self, t0: float, t1: float) -> Touch | None:
        """A fault or nemesis acting on it at some moment of ``t0..t1``."""
        return exposure.touched_during(self.touches, t0, t1)


def _wire_encoder(settings: dict[str, Any]) -> tuple[Any, bool]:
    """How the run's clients put messages on the wire (encode, frame) and whether they sent ids."""
    from harness import wire  # the wire profiles know the framing; imported late (wire imports target)

    if settings.get("protocol") == "pfo1":
        words = settings.get("exit_words") or ["éxito"]
        return wire.Pfo1Wire(".", str(words[0]), str(settings.get("framing", "raw"))), False
    return wire.ChatWire(), True


class RunIndex:
    """A run's history and log rows, indexed."""

    def __init__(self, records: Iterable[Record], rows: Iterable[Row], log_error: str | None = None) -> None:
        """Index ``records`` and ``rows`` (``log_error`` says why the log could not be read)."""
        self.records: list[Record] = list(records)
        self.rows: list[Row] = list(rows)
        self.log_error = log_error
        self.by_f: dict[str, list[Record]] = defaultdict(list)
        for r in self.records:
            self.by_f[r.f].append(r)
        run = next(iter(self.by_f.get("run", [])), None)
        self.settings: dict[str, Any] = dict(run.value) if run else {}
        self.run_id = str(self.settings.get("run_id", ""))
        self.normalize = str(self.settings.get("normalize", "exact"))
        self.relay = str(self.settings.get("relay", "none"))
        self.protocol = str(self.settings.get("protocol", "chat"))
        self.ack_timeout = float(self.settings.get("ack_timeout", 10.0))
        self.held_to = float(self.settings.get("held_to") or self.ack_timeout)  # longer: the wait is a device
        words = self.settings.get("exit_words")
        self.exit_words: tuple[str, ...] = tuple(words) if words else CHAT_EXIT_WORDS
        token = rf"\[({re.escape(self.run_id)}\.\d+\.\d+)\]" if self.run_id else r"\[([0-9a-z]+\.\d+\.\d+)\]"
        self.token_re = re.compile(token)
        self.foreign_re = re.compile(r"^\s*\[[0-9a-f]{6}\.\d+\.\d+\]")  # a token of another run on a reused server
        self.row_by_id = {r.id: r for r in self.rows}
        self.messages = self._messages()
        self.conns = self._connections()

    def of(self, f: str) -> list[Record]:
        """The records of kind ``f``."""
        return self.by_f.get(f, [])

    # -- messages ------------------------------------------------------------------------

    def _messages(self) -> dict[str, Message]:
        out: dict[str, Message] = {}
        fails: dict[str, list[Record]] = defaultdict(list)
        infos: dict[str, list[Record]] = defaultdict(list)
        for rec in self.of("send"):
            value = rec.value
            token = value.get("token")
            if token is None:
                continue
            m = out.get(token)
            if m is None:
                m = out[token] = Message(token, rec.client)
            if rec.type == INVOKE:
                m.invokes.append(rec)
                m.text = value.get("text", m.text)
                if value.get("partial") is not None:
                    m.partial = True
                if value.get("raw") is not None:
                    m.raw = True
            elif rec.type == OK:
                m.oks.append(rec)
            elif rec.type == FAIL:
                fails[token].append(rec)
            else:
                infos[token].append(rec)
        for token, recs in fails.items():
            out[token].fails = recs
        for token, recs in infos.items():
            out[token].infos = recs
        return out

    def _on_the_wire(self) -> list[Record]:
        """The send and exit records, in history order."""
        return sorted(self.of("send") + self.of("exit"), key=_INDEX)

    def sends(self) -> list[Sent]:
        """Every send as it went on the wire, for the framing analysis."""
        wire, ids = _wire_encoder(self.settings)
        out = []
        for rec in self._on_the_wire():
            if rec.f == "exit":  # the exit word went on the wire too: a server without framing may store it
                word = rec.get("word")
                data = wire.frame(word.encode()) if word else wire.exit_bytes()
                out.append(sent(f"{EXIT_TOKEN}{rec.index}", rec.conn, word or data.decode().strip(), data))
                continue
            if rec.type != INVOKE or rec.get("token") is None:
                continue
            token, text = rec.get("token"), rec.get("text", "")
            raw = rec.get("raw")
            if raw is not None:
                data = wire.frame(f"[{token}] ".encode() + bytes.fromhex(raw))
            else:
                data = wire.encode(text, token if ids else None)
            out.append(sent(token, rec.conn, text, data, rec.get("partial")))
        return out

    @cached_property
    def sends_by_conn(self) -> dict[int, list[Sent]]:
        """``sends()`` by connection, each in the order its bytes went out (made once, and only when asked)."""
        out: dict[int, list[Sent]] = defaultdict(list)
        for s in self.sends():
            out[s.conn].append(s)
        return dict(out)

    def outline(self) -> list[Outline]:
        """``sends()`` without the bytes on the wire: what attributing whole rows needs, in the same order."""
        out = []
        for rec in self._on_the_wire():
            value = rec.value
            if rec.f == "exit":
                word = value.get("word")
                text = word or _wire_encoder(self.settings)[0].exit_bytes().decode().strip()
                out.append((f"{EXIT_TOKEN}{rec.index}", rec.conn, text, False))
            elif rec.type == INVOKE and value.get("token") is not None:
                out.append((value["token"], rec.conn, value.get("text", ""), value.get("partial") is not None))
        return out

    @cached_property
    def framing(self) -> Framing:
        """Where every message is stored (computed once, and only when asked)."""
        return analyse(
            self.sends,
            self.rows,
            self.token_re,
            self.foreign_re,
            self.normalize,
            self.exit_words,
            outline=self.outline(),
        )

    # -- connections -------------------------------------------------------------------------

    def _connections(self) -> dict[int, Connection]:
        out: dict[int, Connection] = {}
        for rec in self.of("connect"):
            c = out.setdefault(rec.conn, Connection(rec.conn, rec.client))
            if rec.type == INVOKE:
                c.opened = rec.time
            elif rec.type == OK:
                c.connected = rec.time
            if rec.get("link"):
                c.link = str(rec.get("link"))
            if rec.type == FAIL:
                c.failed = True
        for rec in self.of("conn-end"):
            c = out.setdefault(rec.conn, Connection(rec.conn, rec.client))
            c.end = End.parse(rec.get("reason"))
            c.hello = rec.get("hello")
            c.end_at = rec.get("end")
            c.closed_at = rec.time
            c.errors = list(rec.get("errors") or [])
            c.relays = list(rec.get("relays") or [])
            c.record = rec
        for conn, touched in exposure.touches(self.records).items():
            if conn in out:
                out[conn].touches = touched
        return out

    def answers(self, conn: int) -> list[Record]:
        """Acks (credited or stray) received on ``conn``, in order."""
        return [r for r in self.records if r.conn == conn and ((r.f == "send" and r.type == OK) or r.f == "stray-ack")]

    @cached_property
    def unexpected(self) -> dict[int, list[Record]]:
        """Replies that were neither an ack, an error nor a relay, by connection."""
        out: dict[int, list[Record]] = defaultdict(list)
        for r in self.of("unexpected-reply"):
            out[r.conn].append(r)
        return out

    def settled(self, token: str, conn: int) -> Record | None:
        """The record that settled ``token``'s send on ``conn`` (ok, fail, or info), if any."""
        m = self.messages.get(token)
        if m is None:
            return None
        if len(m.oks) == 1 and not m.fails and not m.infos:  # nearly always: one send, one ack
            return m.oks[0] if m.oks[0].conn == conn else None
        for rec in sorted([*m.oks, *m.fails, *m.infos], key=_INDEX):
            if rec.conn == conn:
                return rec
        return None

    def end_of_run(self) -> float:
        """The last moment the history mentions."""
        return max((r.time for r in self.records), default=0.0)


def index(records: Sequence[Record], rows: Sequence[Row], log_error: str | None = None) -> RunIndex:
    """Index one run."""
    return RunIndex(records, rows, log_error)


__all__ = ["INFO", "Connection", "Message", "RunIndex", "index"]
