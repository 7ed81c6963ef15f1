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
from dataclasses import dataclass

from harness.target import Target

ACK, ERROR, RELAY, HELLO, BYE, OTHER = "ack", "error", "relay", "hello", "bye", "other"


@dataclass
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

    def feed(self, data: bytes) -> list[Reply]:
        """Take the next chunk; return the replies it completes."""
        raise NotImplementedError


class Wire:
    """What a profile knows: encoding, decoding, and what the server offers."""

    name = "abstract"
    ids = False  # messages carry client message ids, so resends are safe
    greeting = False  # the server says something first, on connect
    pipelining = False  # several messages may be in flight on one connection

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


def parse_chat_line(line: str) -> Reply:
    """Classify one line of the reference protocol."""
    if m := _CHAT_ACK.fullmatch(line):
        return Reply(ACK, line, row=int(m[2]), ts=m[1], cid=m[3], dup=bool(m[4]))
    if m := _CHAT_RELAY.fullmatch(line):
        return Reply(RELAY, line, row=int(m[2]), ts=m[3], sender=m[4], text=m[5], dup=m[1] == "HIST")
    if m := _CHAT_ERROR.fullmatch(line):
        return Reply(ERROR, line, code=m[1], cid=m[2], text=m[3] or "")
    if line.startswith("HELLO "):
        return Reply(HELLO, line)
    if line.startswith("BYE"):
        return Reply(BYE, line)
    return Reply(OTHER, line)


class ChatDecoder(Decoder):
    """Newline-framed lines of the reference protocol."""

    def __init__(self) -> None:
        """Start with nothing buffered."""
        self._buf = b""

    def feed(self, data: bytes) -> list[Reply]:
        """Take the next chunk; return the replies it completes."""
        *lines, self._buf = (self._buf + data).split(b"\n")
        return [parse_chat_line(raw.rstrip(b"\r").decode("utf-8", "replace")) for raw in lines]


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
    """Counts ack matches in whatever the server sends, however it is split or merged."""

    KEEP = 4096

    def __init__(self, ack: re.Pattern[str]) -> None:
        """Count matches of ``ack``."""
        self.ack = ack
        self._text = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> list[Reply]:
        """Take the next chunk; one ack reply per match of the ack regex."""
        self._text += self._utf8.decode(data)
        out: list[Reply] = []
        end = 0
        for m in self.ack.finditer(self._text):
            out.append(Reply(ACK, m.group(0), ts=m.groupdict().get("ts")))
            end = m.end()
        self._text = self._text[end:][-self.KEEP :]
        return out


class Pfo1Wire(Wire):
    """The raw assignment protocol, with the target's ack regex and framing."""

    name = "pfo1"

    def __init__(self, ack: str, exit_word: str, framing: str) -> None:
        """Configure from a target's ``[pfo1]`` table."""
        self.ack = re.compile(ack)
        self.exit_word = exit_word
        self.framing = framing

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
        """An ack counter."""
        return Pfo1Decoder(self.ack)


def for_target(target: Target) -> Wire:
    """The wire profile a target speaks."""
    if target.protocol == "pfo1":
        return Pfo1Wire(target.pfo1.ack, target.pfo1.exit_word, target.pfo1.framing)
    return ChatWire()
