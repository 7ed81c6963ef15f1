"""The chat wire protocol with no sockets in it: bytes in, events out (sans-IO, like h11).

Every line is UTF-8 text ended by ``\\n``; one trailing ``\\r`` is dropped, so ``nc -C``
and Windows telnet work. A line may hold at most ``max_line`` bytes (default 4096), not
counting the line ending. The full grammar, with examples to type into ``nc``, is in
``docs/protocol.md``.

Client to server::

    TEXT                 a chat message (TEXT must not start with "/" nor be an exit word)
    /say TEXT            a chat message taken literally (any TEXT)
    /id CID TEXT         a chat message with a client message id, for idempotent resends
    /quit | éxito        end the session politely (also "exito", any case, spaces around)

Server to client::

    HELLO YOU MAX_LINE                            once, after the connection is admitted
    Mensaje recibido: TS id=ROW [cid=CID] [dup]   the message is committed as row ROW
    MSG ROW TS SENDER TEXT                        a message another client sent
    HIST ROW TS SENDER TEXT                       a stored message replayed on join
    ERROR CODE [cid=CID] DETAIL                   something went wrong (CODE is one word)
    BYE DETAIL                                    the server ends this session
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

DEFAULT_MAX_LINE = 4096
#: Room a server line needs beyond the text it carries (keyword, row id, timestamp, sender).
SERVER_LINE_OVERHEAD = 256

EXIT_WORDS = frozenset({"éxito", "exito"})
QUIT_COMMAND = "/quit"
SAY_COMMAND = "/say"
ID_COMMAND = "/id"
ACK_PREFIX = "Mensaje recibido:"

CID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Control characters (C0 other than TAB, DEL and C1) are refused: they are never part of a chat message.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # C0 but TAB, DEL, C1

# Error codes (the word after ERROR).
E_TOO_LONG = "too-long"
E_BAD_UTF8 = "bad-utf8"
E_BAD_CHAR = "bad-char"
E_EMPTY = "empty"
E_BAD_ID = "bad-id"
E_BAD_COMMAND = "bad-command"
E_ID_CONFLICT = "id-conflict"
E_STORE = "store"
E_BUSY = "busy"
E_FULL = "full"
E_IDLE = "idle"
E_SLOW = "slow"
E_SHUTDOWN = "shutdown"


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LineTooLong:
    """A line exceeded the maximum length; its bytes up to the next newline are dropped."""

    max_line: int


@dataclass(slots=True)
class Message:
    """A chat message from a client, with its optional client message id."""

    text: str
    cid: str | None = None


@dataclass(frozen=True)
class Quit:
    """The client ends its session politely."""


@dataclass(frozen=True)
class ProtocolError:
    """A client line that cannot be accepted; the server answers ``ERROR code [cid=CID] detail``."""

    code: str
    detail: str
    cid: str | None = None  # the /id the line carried, when it could be read


ClientEvent = Message | Quit | ProtocolError


@dataclass(frozen=True)
class Hello:
    """The server admitted the connection."""

    you: str
    max_line: int


@dataclass(frozen=True)
class Ack:
    """The server committed a message as row ``row`` at time ``ts``."""

    row: int
    ts: str
    cid: str | None = None
    duplicate: bool = False


@dataclass(frozen=True)
class Relay:
    """A stored message from another client (``history`` when replayed on join)."""

    row: int
    ts: str
    sender: str
    text: str
    history: bool = False


@dataclass(frozen=True)
class ServerError:
    """An ``ERROR`` line from the server (``cid`` names the message it is about, if any)."""

    code: str
    detail: str
    cid: str | None = None


@dataclass(frozen=True)
class Bye:
    """The server ends the session."""

    detail: str


@dataclass(frozen=True)
class Unknown:
    """A server line this module does not understand (kept verbatim)."""

    line: str


ServerEvent = Hello | Ack | Relay | ServerError | Bye | Unknown


# ---------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------


class LineFramer:
    """Split a byte stream into lines of at most ``max_line`` bytes, resynchronising after overlong ones.

    Memory stays bounded: at most ``max_line + 1`` bytes are ever buffered.
    """

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        """Create a framer for lines of at most ``max_line`` bytes (line ending excluded)."""
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self.max_line = max_line
        self._buf = bytearray()
        self._discarding = False

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held back (never more than ``max_line + 1``)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        """Take the next chunk of the stream; return the complete lines (without endings) it finishes."""
        out: list[bytes | LineTooLong] = []
        if self._discarding:
            nl = data.find(b"\n")
            if nl < 0:
                return out
            self._discarding = False
            data = data[nl + 1 :]
        if self._buf:
            data = bytes(self._buf) + data
            self._buf.clear()
        *lines, rest = data.split(b"\n")
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            out.append(line if len(line) <= self.max_line else LineTooLong(self.max_line))
        if len(rest) > self.max_line + 1:  # room for a trailing "\r"
            out.append(LineTooLong(self.max_line))
            self._discarding = True
        else:
            self._buf += rest
        return out

    def discard_partial(self) -> int:
        """Drop an unfinished line at end of stream (it is never a message); return its size."""
        n = len(self._buf)
        self._buf.clear()
        self._discarding = False
        return n


# ---------------------------------------------------------------------------
# Client -> server
# ---------------------------------------------------------------------------


def is_exit_word(text: str) -> bool:
    """Whether ``text`` is an exit word (``éxito``/``exito``, any case, spaces around)."""
    return unicodedata.normalize("NFC", text.strip()).casefold() in EXIT_WORDS


def text_problem(text: str) -> ProtocolError | None:
    """Why ``text`` cannot be a chat message, or None when it can."""
    if not text.strip():
        return ProtocolError(E_EMPTY, "empty message: nothing stored")
    bad = _CONTROL.search(text)
    if bad:
        return ProtocolError(E_BAD_CHAR, f"control character U+{ord(bad.group()):04X} not allowed: nothing stored")
    return None


def parse_client_line(line: bytes | LineTooLong) -> ClientEvent:
    """Turn one framed client line into an event."""
    if isinstance(line, LineTooLong):
        return ProtocolError(E_TOO_LONG, f"line longer than {line.max_line} bytes: nothing stored")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ProtocolError(E_BAD_UTF8, f"invalid UTF-8 at byte {exc.start}: nothing stored")
    cid: str | None = None
    if text.startswith("/"):
        word, _, rest = text.partition(" ")
        if word == QUIT_COMMAND and not rest.strip():
            return Quit()
        if word == SAY_COMMAND:
            text = rest
        elif word == ID_COMMAND:
            cid, _, text = rest.partition(" ")
            if not CID_PATTERN.fullmatch(cid):
                return ProtocolError(E_BAD_ID, "usage: /id CID TEXT, CID is 1-64 of A-Z a-z 0-9 . _ : -")
        else:
            return ProtocolError(
                E_BAD_COMMAND,
                f"unknown command {word[:32]!r}: use /say TEXT to send text starting with /",
            )
    elif is_exit_word(text):
        return Quit()
    problem = text_problem(text)
    if problem:
        return ProtocolError(problem.code, problem.detail, cid)
    return Message(text, cid)


class ClientStreamParser:
    """Server side of a connection: client bytes in, client events out."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        """Create a parser accepting lines of at most ``max_line`` bytes."""
        self.framer = LineFramer(max_line)

    def feed(self, data: bytes) -> list[ClientEvent]:
        """Take the next chunk from the client; return the events it completes."""
        return [parse_client_line(line) for line in self.framer.feed(data)]


def encode_message(text: str, cid: str | None = None, max_line: int = DEFAULT_MAX_LINE) -> bytes:
    """Encode a chat message as a client line; raise ValueError if it cannot be sent as is."""
    problem = text_problem(text)
    if problem:
        raise ValueError(problem.detail)
    if cid is not None:
        if not CID_PATTERN.fullmatch(cid):
            raise ValueError(f"invalid client message id {cid!r}")
        line = f"{ID_COMMAND} {cid} {text}"
    elif text.startswith("/") or is_exit_word(text):
        line = f"{SAY_COMMAND} {text}"
    else:
        line = text
    data = line.encode("utf-8")
    if len(data) > max_line:
        raise ValueError(f"message too long: {len(data)} bytes encoded, the maximum is {max_line}")
    return data + b"\n"


def encode_quit() -> bytes:
    """The line a client sends to end its session."""
    return QUIT_COMMAND.encode() + b"\n"


# ---------------------------------------------------------------------------
# Server -> client
# ---------------------------------------------------------------------------


def encode_hello(you: str, max_line: int) -> bytes:
    """The greeting sent once a connection is admitted."""
    return f"HELLO {you} {max_line}\n".encode()


def encode_ack(row: int, ts: str, cid: str | None = None, duplicate: bool = False) -> bytes:
    """The acknowledgement of a committed message."""
    line = f"{ACK_PREFIX} {ts} id={row}"
    if cid is not None:
        line += f" cid={cid}"
    if duplicate:
        line += " dup"
    return line.encode() + b"\n"


def encode_relay(row: int, ts: str, sender: str, text: str, history: bool = False) -> bytes:
    """A stored message forwarded to the other clients (or replayed on join)."""
    return f"{'HIST' if history else 'MSG'} {row} {ts} {sender} {text}\n".encode()


def encode_error(code: str, detail: str, cid: str | None = None) -> bytes:
    """One error line, naming the client message id it concerns when there is one."""
    about = f"cid={cid} " if cid is not None else ""
    return f"ERROR {code} {about}{detail}\n".encode()


def encode_bye(detail: str) -> bytes:
    """The last line of a session the server ends."""
    return f"BYE {detail}\n".encode()


_ACK = re.compile(re.escape(ACK_PREFIX) + r" (?P<ts>\S+) id=(?P<row>\d+)(?: cid=(?P<cid>\S+))?(?P<dup> dup)?")


def parse_server_line(line: bytes | str) -> ServerEvent:
    """Turn one server line (without its newline) into an event; never raises."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    if line.endswith("\r"):
        line = line[:-1]
    m = _ACK.fullmatch(line)
    if m:
        return Ack(int(m["row"]), m["ts"], m["cid"], bool(m["dup"]))
    word, _, rest = line.partition(" ")
    if word in ("MSG", "HIST"):
        parts = rest.split(" ", 3)
        if len(parts) == 4 and parts[0].isdigit():
            return Relay(int(parts[0]), parts[1], parts[2], parts[3], history=word == "HIST")
    elif word == "HELLO":
        you, _, size = rest.partition(" ")
        if size.isdigit():
            return Hello(you, int(size))
    elif word == "ERROR":
        code, _, detail = rest.partition(" ")
        cid = None
        if detail.startswith("cid="):
            cid, _, detail = detail[4:].partition(" ")
        return ServerError(code, detail, cid)
    elif word == "BYE":
        return Bye(rest)
    return Unknown(line)


class ServerStreamParser:
    """Client side of a connection: server bytes in, server events out."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        """Create a parser for a server whose client lines are at most ``max_line`` bytes."""
        self.framer = LineFramer(max_line + SERVER_LINE_OVERHEAD)

    def resize(self, max_line: int) -> None:
        """The server announced its line limit (in HELLO): accept relays of messages that long."""
        self.framer.max_line = max_line + SERVER_LINE_OVERHEAD

    def feed(self, data: bytes) -> list[ServerEvent]:
        """Take the next chunk from the server; return the events it completes."""
        out: list[ServerEvent] = []
        for line in self.framer.feed(data):
            if isinstance(line, LineTooLong):
                out.append(Unknown(f"<server line longer than {line.max_line} bytes>"))
            else:
                out.append(parse_server_line(line))
        return out
