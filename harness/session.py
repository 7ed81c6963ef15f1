"""A simulated client's protocol state on one connection, with no sockets in it (sans-IO, like h11).

The driver (``harness.clients``) moves bytes and keeps time; the session decides what they mean:
which send an ack answers, which errors refuse a line and which end the connection, what is a
relay, what the server said that fits nothing, and why the connection ended. Every decision is a
history record, so a test drives a session with bytes and reads the records back.

Records written here (``f`` field): ``connect`` invoke/ok/fail; ``send`` invoke, then ``ok``
(acked), ``fail`` (refused) or ``info`` (unknown, with the ``End`` that settled it);
``stray-ack`` (an ack for nothing outstanding), ``unexpected-reply`` (server text that is neither
an ack, an error nor a relay), ``server-error`` (an error about the connection), ``exit``, and
``conn-end`` (why the connection ended, when it joined and began to end, its proxy link, the
connection-level errors and the relays it received).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.ends import CONNECTION_ERRORS, End
from harness.history import FAIL, INFO, INVOKE, OK
from harness.wire import ACK, BYE, ERROR, HELLO, OTHER, RELAY, Relay, Reply, Wire, relay_entry

MAX_QUOTE = 200  # characters of an unexpected reply kept in the history


class Recorder(Protocol):
    """Appends a history record (``History.append``)."""

    def __call__(self, type: str, f: str, client: int, conn: int, value: dict[str, Any]) -> object:
        """Record one event."""


def token_text(run_id: str, client: int, seq: int, body: str) -> tuple[str, str]:
    """The token and the full text of a message."""
    token = f"{run_id}.{client}.{seq}"
    return token, f"[{token}] {body}" if body else f"[{token}]"


@dataclass
class ClientState:
    """What one simulated client keeps across its connections."""

    index: int
    run_id: str
    seq: int = 0
    connects: int = 0
    unacked: dict[str, str] = field(default_factory=dict)  # ids wire: resent on reconnect, oldest first

    def next_token(self, body: str) -> tuple[str, str]:
        """A fresh token and the message text that carries it."""
        self.seq += 1
        return token_text(self.run_id, self.index, self.seq, body)


class Session:
    """One connection: what was sent on it, what each reply meant, and how it ended."""

    def __init__(
        self,
        wire: Wire,
        state: ClientState,
        conn: int,
        record: Recorder,
        now: Callable[[], float],
        link: str | None = None,
        on_ack: Callable[[str, int | None, int, int], object] | None = None,
    ) -> None:
        """A session for connection ``conn`` of ``state``'s client; ``link`` names it to the fault proxy;
        ``on_ack(token, row, client, conn)`` hears of every credited ack (the auditor)."""
        self.wire = wire
        self.state = state
        self.conn = conn
        self.record = record
        self.now = now
        self.link = link
        self.on_ack = on_ack
        self.decoder = wire.decoder()
        self.hello_at: float | None = None
        self.outstanding: dict[str, str] = {}  # sent here, not answered yet, oldest first
        self.relays: list[Relay] = []  # every relay received
        self.decoder.relays = self.relays
        self.ended = False  # the server ended the session (EOF or BYE)
        self.eof_at: float | None = None
        self.said_bye = False
        self.exit_sent = False
        self.conn_errors: list[str] = []  # connection-level error codes received
        self.last_error = ""
        self.last_acked: str | None = None
        self.settle_until = 0.0  # no new send before this: acks of one message may still be arriving
        self.sent = 0  # messages sent on this connection
        self.finished = False
        self.replies = 0  # well-formed replies handled (relays the decoder collects are counted in ``relays``)
        self.lines = 0  # line ends received: whole lines of text a target cannot describe (a PFO1 broadcast) too

    # -- connecting -------------------------------------------------------------------

    def _rec(self, type: str, f: str, **value: Any) -> None:
        self.record(type, f, self.state.index, self.conn, value)

    def connecting(self) -> None:
        """The client is about to connect."""
        self._rec(INVOKE, "connect", link=self.link)

    def connect_failed(self, why: str, port: int | None = None) -> None:
        """The connection could not be made (or the server never greeted it)."""
        self._rec(FAIL, "connect", error=why, port=port, link=self.link)
        self.finished = True

    def connected(self, port: int) -> None:
        """The connection is up (and greeted, where the protocol greets)."""
        if self.hello_at is None:
            self.hello_at = self.now()
        self._rec(OK, "connect", port=port, link=self.link)

    @property
    def greeted(self) -> bool:
        """Whether the server said hello (always true for protocols without a greeting)."""
        return self.hello_at is not None

    # -- sending -----------------------------------------------------------------------

    def send(self, batch: list[tuple[str, str]], resend: bool = False) -> bytes:
        """Record the sends in ``batch`` (token, text) and return the bytes that carry them."""
        wire = self.wire
        data = b"".join([wire.encode(text, token if wire.ids else None) for token, text in batch])
        for token, text in batch:
            self._sending(token, text, resend)
        return data

    def send_one(self, token: str, text: str) -> bytes:
        """``send([(token, text)])``, for nearly every send (a closed-loop client's, one at a time)."""
        data = self.wire.encode(text, token if self.wire.ids else None)
        self._sending(token, text, False)
        return data

    def _sending(self, token: str, text: str, resend: bool) -> None:
        # The hot records skip _rec's frame and keyword packing (so does _ack's).
        self.record(INVOKE, "send", self.state.index, self.conn, {"token": token, "text": text, "resend": resend})
        self.outstanding[token] = text
        if self.wire.ids:
            self.state.unacked[token] = text
        self.sent += 1

    def send_trickled(self, token: str, text: str, seconds: float) -> bytes:
        """Record a message that will go out one byte at a time; return its bytes."""
        data = self.wire.encode(text, token if self.wire.ids else None)
        self._rec(INVOKE, "send", token=token, text=text, trickle=seconds)
        self.outstanding[token] = text
        if self.wire.ids:
            self.state.unacked[token] = text
        self.sent += 1
        return data

    def send_half(self, token: str, text: str) -> bytes:
        """Record a message of which only the first half will be sent; return that half."""
        data = self.wire.encode(text, token if self.wire.ids else None)
        half = data[: max(1, len(data) // 2)]
        self._rec(INVOKE, "send", token=token, text=text, partial=len(half))
        return half

    def send_raw(self, token: str, payload: bytes, data_hex: str) -> bytes:
        """Record a raw (possibly invalid) line that starts with ``token``; return its framed bytes."""
        text = self.wire.as_received(payload).decode("utf-8", errors="replace")
        self._rec(INVOKE, "send", token=token, text=text, raw=data_hex)
        self.outstanding[token] = text
        self.sent += 1
        return self.wire.frame(payload)

    def send_exit(self, spelling: str = "") -> bytes:
        """Record the exit word going out; return its bytes."""
        self._rec(INFO, "exit", word=spelling or None)
        self.exit_sent = True
        return self.wire.frame(spelling.encode()) if spelling else self.wire.exit_bytes()

    def half_sent(self, token: str, then: End, partial: int) -> None:
        """The half message is out and the client breaks the connection (``then``): its fate is unknown."""
        self._rec(INFO, "send", token=token, error=f"half sent, then {then.value}", end=then.value, partial=partial)

    @property
    def full(self) -> bool:
        """The server takes no more messages on this connection (``messages_per_connection``)."""
        return bool(self.wire.per_connection) and self.sent >= self.wire.per_connection

    # -- receiving ---------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Handle bytes from the server."""
        self.lines += data.count(b"\n")
        for reply in self.decoder.feed(data):
            self.handle(reply)

    @property
    def holding(self) -> bool:
        """A reply may be complete but waits for more bytes or a quiet moment (``quiet``)."""
        return self.decoder.pending

    def quiet(self) -> None:
        """Nothing arrived for a while: replies held back are complete."""
        for reply in self.decoder.flush():
            self.handle(reply)

    def eof(self) -> None:
        """The server closed its side."""
        self.quiet()
        self.ended = True
        self.eof_at = self.now()

    @property
    def heard(self) -> int:
        """Replies and whole lines received so far: whether the server is making progress (an endless line is not)."""
        return self.replies + len(self.relays) + self.lines

    def handle(self, reply: Reply) -> None:
        """Record one server reply."""
        kind = reply.kind
        if kind != OTHER:
            self.replies += 1
        if kind == ACK:
            self._ack(reply)
        elif kind == RELAY:
            if not reply.dup:  # HIST replays are not relays
                self.relays.append(relay_entry(reply.row, reply.text or ""))
        elif kind == ERROR:
            self._error(reply)
        elif kind == HELLO:
            self.hello_at = self.now()
        elif kind == BYE:
            self.said_bye = True
            self.ended = True
        elif kind == OTHER:
            self._unexpected(reply.line)

    def _ack(self, reply: Reply) -> None:
        # Answers come in the order of the lines: an ack without an id is for the oldest line.
        token = reply.cid if reply.cid is not None else next(iter(self.outstanding), None)
        if self.wire.settle:
            self.settle_until = self.now() + self.wire.settle
        if token is None or token not in self.outstanding:
            self._rec(INFO, "stray-ack", line=reply.line[:MAX_QUOTE], token=token, after=self.last_acked, row=reply.row)
            if token is not None:
                self.state.unacked.pop(token, None)  # an ack for an earlier connection's send
            return
        self.outstanding.pop(token)
        self.state.unacked.pop(token, None)
        self.last_acked = token
        self.record(
            OK,
            "send",
            self.state.index,
            self.conn,
            {"token": token, "row": reply.row, "ts": reply.ts, "dup": reply.dup},
        )
        if self.on_ack is not None:
            self.on_ack(token, reply.row, self.state.index, self.conn)

    def _error(self, reply: Reply) -> None:
        code = reply.code or "error"
        self.last_error = f"{code} {reply.text or ''}".strip()
        token = reply.cid
        if token is None and code not in CONNECTION_ERRORS:
            token = next(iter(self.outstanding), None)
        if token is not None and token in self.outstanding:
            self.outstanding.pop(token)
            self.state.unacked.pop(token, None)
            self._rec(FAIL, "send", token=token, code=code, error=(reply.text or "")[:MAX_QUOTE])
            return
        if code in CONNECTION_ERRORS:
            self.conn_errors.append(code)
        self._rec(INFO, "server-error", code=code, error=(reply.text or "")[:MAX_QUOTE])

    def _unexpected(self, text: str) -> None:
        if text.strip():
            self._rec(INFO, "unexpected-reply", line=text[:MAX_QUOTE], waiting=list(self.outstanding)[:3])

    # -- ending ------------------------------------------------------------------------

    def give_up(self, token: str, waited: float | None = None) -> None:
        """No answer to ``token`` within the ack timeout (``waited`` seconds)."""
        self.quiet()  # a reply held back until more text came is complete now
        if token not in self.outstanding:
            return
        self._leftover()
        self.outstanding.pop(token)
        self._rec(
            INFO,
            "send",
            token=token,
            error="no answer within the ack timeout",
            end=End.ACK_TIMEOUT.value,
            waited=waited,
        )

    def _leftover(self) -> None:
        text = self.decoder.take_leftover()
        if text.strip():
            self._unexpected(text)

    def server_end(self) -> End:
        """Why the server ended the session, as far as the client can tell."""
        if self.said_bye or (self.exit_sent and not self.conn_errors):
            return End.EXIT_WORD
        return End.SERVER_ERROR_CLOSE if self.conn_errors else End.SERVER_CLOSE

    def end(self, reason: End, detail: str = "", began: float | None = None, waited: float | None = None) -> None:
        """The connection is over: what is still outstanding becomes unknown; record why it ended."""
        if self.finished:
            return
        self.finished = True
        self.quiet()
        self._leftover()
        if reason.polite and self.conn_errors:
            reason = End.SERVER_ERROR_CLOSE  # dropped by the server (idle, slow, shutdown) while leaving
        why = detail or reason.value
        for token in self.outstanding:
            extra = {"waited": waited} if waited is not None else {}
            self._rec(INFO, "send", token=token, error=why, end=reason.value, **extra)
        self.outstanding.clear()
        end_at = began if began is not None else (self.eof_at if self.eof_at is not None else self.now())
        self._rec(
            INFO,
            "conn-end",
            reason=reason.value,
            detail=detail or None,
            hello=self.hello_at,
            end=end_at,
            link=self.link,
            errors=self.conn_errors,
            relays=self.relays,
        )
