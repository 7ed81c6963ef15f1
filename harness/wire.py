"""Wire profiles: how simulated clients encode messages and read replies, with no sockets in here.

* ``chat`` — the reference protocol (``docs/protocol.md``): lines, client message ids, acks with
  row ids, relays. Written independently of ``chat.protocol`` on purpose, so a bug there cannot
  hide itself from the harness.
* ``pfo1`` — the raw assignment protocol: one message per send, a reply that matches a loose ack
  regex, optional newline or 64-byte length-prefix framing, no ids, no relays.
"""

from __future__ import annotations

import codecs
import re
import zlib
from dataclasses import dataclass

from harness.target import Target

ACK, ERROR, RELAY, HELLO, BYE, OTHER = "ack", "error", "relay", "hello", "bye", "other"


@dataclass(slots=True)
class Reply:
    """One thing the server said."""

    kind: str
    line: str = ""
    row: int | None = None
    ts: str | None = None
    cid: str | None = None
    dup: bool = False
    code: str | None = None
    sender: str | None = None
    text: str | None = None


class Decoder:
    """Server bytes in, replies out."""

    pending = False  # a reply may be complete but is held until more arrives or the stream goes quiet
    relays: list[Relay] | None = None  # set: relays go here (``relay_entry``), not returned as replies

    def feed(self, data: bytes) -> list[Reply]:
        """Take the next chunk; return the replies it completes."""
        raise NotImplementedError

    def flush(self) -> list[Reply]:
        """The stream went quiet or ended: return what was held."""
        return []

    @property
    def leftover(self) -> str:
        """Received text that is no reply (yet)."""
        return ""

    def take_leftover(self) -> str:
        """The leftover text, forgotten once taken."""
        return ""


class Wire:
    """What a profile knows: encoding, decoding, and what the server offers."""

    name = "abstract"
    ids = False  # messages carry client message ids, so resends are safe
    greeting = False  # the server says something first, on connect
    pipelining = False  # several messages may be in flight on one connection
    settle = 0.0  # seconds to wait after an ack for more acks of the same message (no framing)
    per_connection = 0  # the server takes this many messages per connection, then closes (0: any)
    server_sees_exit_word = True  # the exit word goes to the server (not only to the server's own client)

    def encode(self, text: str, cid: str | None) -> bytes:
        """The bytes that send ``text`` (with ``cid`` where the profile has ids)."""
        raise NotImplementedError

    def exit_bytes(self) -> bytes:
        """The bytes that end a session politely."""
        raise NotImplementedError

    def frame(self, payload: bytes) -> bytes:
        """``payload`` as one message on the wire (bytes sent as they are)."""
        raise NotImplementedError

    def as_received(self, payload: bytes) -> bytes:
        """What a correct server takes as the message when ``payload`` is framed and sent."""
        return payload

    def decoder(self) -> Decoder:
        """A fresh decoder for one connection."""
        raise NotImplementedError


# ---------------------------------------------------------------------------
# chat
# ---------------------------------------------------------------------------

_CHAT_ACK = re.compile(r"Mensaje recibido: (\S+) id=(\d+)(?: cid=(\S+))?( dup)?")
_CHAT_RELAY = re.compile(r"(MSG|HIST) (\d+) (\S+) (\S+) (.*)", re.DOTALL)
_CHAT_ERROR = re.compile(r"ERROR (\S+)(?: cid=(\S+))?(?: (.*))?", re.DOTALL)
# _CHAT_RELAY for a line that starts with "MSG ", with the token relay_entry() finds: what a "[" opens up to the first "]"
_CHAT_MSG = re.compile(r"MSG (\d+) \S+ \S+ ((?:\[([^\]]*)\])?.*)", re.DOTALL)


#: What a client keeps of a relay: (row id, CRC-32 of the text's UTF-8, the token the text starts with). A tuple:
#: once the collector has seen it holds no containers it stops tracking it, and a burst keeps millions.
Relay = tuple[int | None, int, str | None]


def relay_entry(row: int | None, text: str) -> Relay:
    """What a client keeps of a relay (``Relay``)."""
    token = None
    if text.startswith("["):
        end = text.find("]")
        if end > 0:
            token = text[1:end]
    return (row, zlib.crc32(text.encode("utf-8")), token)


def parse_chat_line(line: str) -> Reply:
    """Classify one line of the reference protocol."""
    # Each pattern starts with its own word, so the first one tried is the only one that can match.
    if line.startswith("M"):
        if line.startswith("MSG ") and (m := _CHAT_RELAY.fullmatch(line)):
            return Reply(RELAY, line, row=int(m[2]), ts=m[3], sender=m[4], text=m[5], dup=False)
        if m := _CHAT_ACK.fullmatch(line):  # nearly every line: positional, as Reply's fields go
            ts, row, cid, dup = m.groups()
            return Reply(ACK, line, int(row), ts, cid, dup is not None)
    elif line.startswith("HIST ") and (m := _CHAT_RELAY.fullmatch(line)):
        return Reply(RELAY, line, row=int(m[2]), ts=m[3], sender=m[4], text=m[5], dup=True)
    elif m := _CHAT_ERROR.fullmatch(line):
        return Reply(ERROR, line, code=m[1], cid=m[2], text=m[3] or "")
    if line.startswith("HELLO "):
        return Reply(HELLO, line)
    if line.startswith("BYE"):
        return Reply(BYE, line)
    return Reply(OTHER, line)


#: Bytes of one reply line a client holds; a longer line (a hostile server's endless stream) is reported
#: once, cut, and the rest of it dropped, so memory stays bounded whatever the server sends.
MAX_REPLY = 1 << 20


class ChatDecoder(Decoder):
    """Newline-framed lines of the reference protocol."""

    def __init__(self) -> None:
        """Start with nothing buffered."""
        self._buf = b""
        self._skipping = False  # inside a line already reported as too long

    def feed(self, data: bytes) -> list[Reply]:
        """Take the next chunk; return the replies it completes (relays go to ``relays`` when it is set)."""
        out = []
        if data and not self._buf and data.find(b"\n") == len(data) - 1 and not self._skipping:
            # One whole line and nothing held (nearly every read of a closed-loop client): what follows, in short.
            lines, rest = [data[:-1].decode("utf-8", "replace")], b""
        else:
            buf = self._buf + data
            end = buf.rfind(b"\n")
            # Decoded at once: a newline is never part of a UTF-8 sequence, so this is each line decoded alone.
            lines = buf[:end].decode("utf-8", "replace").split("\n") if end >= 0 else []
            rest = buf[end + 1 :]
            if self._skipping and lines:
                self._skipping = False
                del lines[0]
        relays = self.relays
        msg = _CHAT_MSG.fullmatch
        for line in lines:
            if line.endswith("\r"):
                line = line.rstrip("\r")
            # A burst brings every client N-1 relays per message: they skip the Reply and the dispatch.
            if relays is not None and line.startswith("MSG ") and (m := msg(line)):
                text = m[2]  # relay_entry(), inlined: the token comes from the match (property-tested alike)
                relays.append((int(m[1]), zlib.crc32(text.encode("utf-8")), m[3]))
                continue
            out.append(parse_chat_line(line))
        if len(rest) > MAX_REPLY:
            if not self._skipping:
                head = rest[:200].decode("utf-8", "replace")
                out.append(Reply(OTHER, f"{head}… (a line of over {MAX_REPLY} bytes, cut)"))
            self._skipping, rest = True, b""
        self._buf = rest
        return out


class ChatWire(Wire):
    """The reference protocol."""

    name = "chat"
    ids = True
    greeting = True
    pipelining = True

    def encode(self, text: str, cid: str | None) -> bytes:
        """``/id CID TEXT`` (or ``/say TEXT``) plus newline."""
        line = f"/id {cid} {text}" if cid else f"/say {text}"
        return line.encode("utf-8") + b"\n"

    def exit_bytes(self) -> bytes:
        """The exit word."""
        return "éxito\n".encode()

    def frame(self, payload: bytes) -> bytes:
        """One line."""
        return payload + b"\n"

    def as_received(self, payload: bytes) -> bytes:
        """The protocol drops one trailing carriage return (for nc -C and telnet)."""
        return payload[:-1] if payload.endswith(b"\r") else payload

    def decoder(self) -> Decoder:
        """A line decoder."""
        return ChatDecoder()


# ---------------------------------------------------------------------------
# pfo1
# ---------------------------------------------------------------------------


class Pfo1Decoder(Decoder):
    """Finds acks (and refusals) in whatever the server sends, however it is split or merged.

    A match that ends exactly where the received text ends may still grow (``Mensaje recibido:
    2026-11-29 10:1`` and then ``2:33``), so when the pattern captures anything it is held until
    more text arrives or the driver says the stream went quiet (``flush``). Text that matches
    neither pattern stays available as ``leftover``: the checker reports it when a message it
    followed got no answer.
    """

    KEEP = 4096

    def __init__(self, ack: re.Pattern[str], error: re.Pattern[str] | None = None) -> None:
        """Find matches of ``ack`` (and of ``error``, a refusal)."""
        self.ack = ack
        self.error = error
        self._text = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._may_grow = ack.groups > 0 or (error is not None and error.groups > 0)
        self.pending = False  # a match at the very end waits for more text or a quiet moment
        self._tail = False  # the last reply's line may still be arriving: its rest belongs to it

    def feed(self, data: bytes) -> list[Reply]:
        """Take the next chunk; one reply per complete match."""
        self._text += self._utf8.decode(data)
        return self._scan(final=False)

    def flush(self) -> list[Reply]:
        """The stream went quiet (or ended): a match at the end of the text is complete."""
        return self._scan(final=True)

    def _next(self, pos: int = 0) -> tuple[str, re.Match[str]] | None:
        found = [(ACK, m) for m in [self.ack.search(self._text, pos)] if m]
        if self.error is not None:
            found += [(ERROR, m) for m in [self.error.search(self._text, pos)] if m]
        return min(found, key=lambda km: (km[1].start(), km[0] != ERROR)) if found else None

    def _line_end(self, pos: int) -> int | None:
        """Where the reply whose match ends at ``pos`` ends: its newline, or the next reply (None: not yet seen)."""
        newline = self._text.find("\n", pos)
        nxt = self._next(pos)
        ends = [e for e in (newline + 1 if newline >= 0 else None, nxt[1].start() if nxt else None) if e is not None]
        return min(ends) if ends else None

    def _scan(self, final: bool) -> list[Reply]:
        out: list[Reply] = []
        self.pending = False
        while True:
            if self._tail:  # the rest of the previous reply's line is part of it, not text of its own
                end = self._line_end(0)
                if end is not None:
                    self._text, self._tail = self._text[end:], False
                elif final:
                    self._text, self._tail = "", False
                else:
                    self._text, self.pending = "", True
                    break
            hit = self._next()
            if hit is None:
                break
            kind, m = hit
            if not final and self._may_grow and m.end() >= len(self._text):
                self.pending = True
                break
            groups = m.groupdict()
            row = groups.get("id")
            line = self._text[m.start() : self._line_end(m.end()) or len(self._text)].strip()
            out.append(
                Reply(
                    kind,
                    line,
                    ts=groups.get("ts"),
                    row=int(row) if row and row.isdigit() else None,
                    text=line if kind == ERROR else None,
                    code="refused" if kind == ERROR else None,
                )
            )
            self._text = self._text[m.end() if m.end() > m.start() else m.start() + 1 :]
            self._tail = True
        self._text = self._text[-self.KEEP :]
        return out

    @property
    def leftover(self) -> str:
        """Text received since the last reply that is neither an ack nor a refusal (yet)."""
        return "" if self.pending or self._tail else self._text

    def take_leftover(self) -> str:
        """The leftover text, forgotten once taken."""
        text = self.leftover
        if text:
            self._text = ""
        return text


class Pfo1Wire(Wire):
    """The raw assignment protocol, with the target's ack regex and framing."""

    name = "pfo1"

    def __init__(
        self,
        ack: str,
        exit_word: str,
        framing: str,
        error: str | None = None,
        per_connection: int = 0,
        server_sees_exit_word: bool = True,
    ) -> None:
        """Configure from a target's ``[pfo1]`` table."""
        self.ack = re.compile(ack, re.MULTILINE)  # ^ and $ at line ends: replies are lines, often
        self.error = re.compile(error, re.MULTILINE) if error else None
        self.exit_word = exit_word
        self.framing = framing
        self.per_connection = per_connection
        self.server_sees_exit_word = server_sees_exit_word
        # Without framing, one message may be stored (and acknowledged) in pieces: a client waits
        # until the acks stop coming before it sends again, so every ack is credited to the right send.
        self.settle = RAW_SETTLE if framing == "raw" else 0.0

    def frame(self, payload: bytes) -> bytes:
        """The payload with the target's framing."""
        if self.framing == "newline":
            return payload + b"\n"
        if self.framing == "length64":
            return str(len(payload)).encode().ljust(64) + payload
        return payload

    def encode(self, text: str, cid: str | None) -> bytes:
        """The text, framed (pfo1 has no ids: ``cid`` is ignored)."""
        return self.frame(text.encode("utf-8"))

    def exit_bytes(self) -> bytes:
        """The exit word, framed."""
        return self.frame(self.exit_word.encode("utf-8"))

    def decoder(self) -> Decoder:
        """An ack (and refusal) finder."""
        return Pfo1Decoder(self.ack, self.error)


#: Seconds a client of a server without framing waits after an ack for more acks of the same message.
RAW_SETTLE = 0.05


def for_target(target: Target) -> Wire:
    """The wire profile a target speaks."""
    if target.protocol == "pfo1":
        p = target.pfo1
        return Pfo1Wire(p.ack, p.exit_word, p.framing, p.error, p.messages_per_connection, p.server_sees_exit_word)
    return ChatWire()
