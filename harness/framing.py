"""Where each sent message ended up in the log, even when the server cut or joined messages.

A correct server stores each message as one row, so the token at the start of a row names its
message. A server without framing stores whatever one ``recv()`` returned: a message may be cut
into pieces (its token cut too, a multibyte character cut in two) or run together with the next.
This module attributes every row by *position*: each connection's sends, concatenated, are the
bytes the server read from it; a row that is not exactly one message is
``stream[p:p+k].decode("utf-8", "replace")`` for some connection, byte offset ``p`` and length
``k``, and ``p`` is where that connection's previous piece ended. Working on bytes makes a cut
character exact: a row of one ``U+FFFD`` is one byte of one character.

Rows are placed in id order. A row that continues several connections equally well (identical
text on several connections) is a choice; a later row that continues none sends the search back
(chronological backtracking within a budget), and a result that leaves holes in messages is
retried from its latest choices a few times, keeping the best. Which of several connections that
sent identical text a small piece belongs to cannot always be told, so the analysis also counts,
without attributing, how many visible bytes of theirs are missing from the log: loss is claimed
only when bytes are missing.

No sockets, no files: sends and rows in, an analysis out (property-tested on its own).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property

from harness.log import Row

REPLACEMENT = "\ufffd"
EXIT_TOKEN = "exit:"  # sends whose token starts so are exit words, not messages
WINDOW = 8192  # bytes past a connection's last piece where a row that continues nothing exactly is looked for
BUDGET = 20_000  # backtracking steps per analysis
RETRIES = 64  # times a finished placement that leaves holes is retried from its latest choices
DEAD_STATES = 200_000  # states the search remembers as dead, at most (about 30 MB)
WHITESPACE = b" \t\n\r\x0b\x0c"
UTF8_MAX = 4  # bytes in one UTF-8 character, at most


class RowKind(str, Enum):
    """What one row holds."""

    EXACT = "exact"  # exactly one message
    MERGED = "merged"  # parts of several messages run together
    FRAGMENT = "fragment"  # a piece of one message
    EXTRA = "extra"  # one whole message plus bytes that were never part of it (framing bytes)
    CORRUPTED = "corrupted"  # carries a message's token but not its text
    PHANTOM = "phantom"  # nothing any client sent
    EXIT_WORD = "exit-word"  # the exit word, stored as a message
    EMPTY = "empty"  # empty or blank
    FOREIGN = "foreign"  # a message of an earlier run against the same server


@dataclass(frozen=True)
class Sent:
    """One send as it went on the wire."""

    token: str
    conn: int
    text: str  # what a correct server stores
    data: bytes  # what was written for it (ids and framing included; only the half of a half message)
    offset: int = 0  # where ``text`` starts in ``data``, in bytes
    size: int = 0  # bytes of ``text`` in ``data``
    partial: bool = False


@dataclass(slots=True)
class RowInfo:
    """One row and what it holds."""

    row: Row
    kind: RowKind
    tokens: list[str] = field(default_factory=list)  # messages it holds, whole or in part, in stream order
    conn: int | None = None
    mangled: bool = False  # a character at its edge was cut by a read (stored as U+FFFD)


@dataclass(slots=True)
class Storage:
    """Where one message is stored."""

    token: str
    whole: list[int] = field(default_factory=list)  # rows holding all of it (alone, or run together with others)
    pieces: list[int] | tuple[()] = ()  # rows holding a part of it (nearly always none: no list per message)
    pieces_complete: bool = False  # the pieces together hold all of it
    lost_cut_characters: bool = False  # what the pieces miss is only bytes of multibyte characters
    merged: bool = False  # it shares a row with another message

    @property
    def rows(self) -> list[int]:
        """Every row holding it, whole or in part, by id."""
        return sorted({*self.whole, *self.pieces})

    @property
    def stored(self) -> bool:
        """Some of it is in the log."""
        return bool(self.whole or self.pieces)

    @property
    def complete(self) -> bool:
        """All of it is in the log (in one row or in pieces)."""
        return bool(self.whole) or self.pieces_complete

    @property
    def split(self) -> bool:
        """It is stored in pieces, in several rows."""
        return self.pieces_complete and len(self.pieces) > 1

    @property
    def copies(self) -> int:
        """How many times all of it is stored."""
        return len(self.whole) + (1 if self.pieces_complete else 0)


@dataclass
class Framing:
    """The analysis of one run's log."""

    rows: list[RowInfo]
    storage: dict[str, Storage]
    broken_conns: set[int]  # connections with a message split or run together with another
    missing_ascii: int = 0  # visible ASCII bytes sent on those connections that no row holds
    missing_high: int = 0  # and other bytes (of multibyte characters, or invalid), as far as counting can tell

    @property
    def missing(self) -> int:
        """Visible bytes sent on the broken connections that no row holds."""
        return self.missing_ascii + self.missing_high

    @cached_property
    def only_cut_characters_missing(self) -> bool:
        """Whether what no row holds could be just one character at each place a read cut the stream."""
        cuts = sum(1 for i in self.rows if i.conn in self.broken_conns)
        return not self.missing_ascii and self.missing_high <= UTF8_MAX * cuts

    def of(self, token: str) -> Storage:
        """Where ``token``'s message is stored (an empty Storage when nowhere)."""
        return self.storage.get(token) or Storage(token)

    def pieces(self, conn: int) -> int:
        """Rows that hold something this connection sent."""
        return sum(1 for r in self.rows if r.conn == conn)


def normalise(text: str, how: str) -> str:
    """Apply the target's documented normalisation (``exact``, or ``strip`` surrounding whitespace)."""
    return text.strip() if how == "strip" else text


def _continuation(data: bytes) -> bool:
    """Whether ``data`` is nothing but UTF-8 continuation bytes (the middle and end of a character)."""
    return all(0x80 <= b < 0xC0 for b in data)


def _visible(data: bytes) -> int:
    """Bytes that are not whitespace (a target may strip whitespace off each piece it stores)."""
    return len(data) - sum(data.count(bytes([b])) for b in WHITESPACE)


class _Stream:
    """One connection's bytes: the sends concatenated, with each message's span."""

    def __init__(self, conn: int) -> None:
        self.conn = conn
        self.parts: list[bytes] = []
        self.spans: dict[str, tuple[int, int]] = {}  # token -> (start, end) of its text, in bytes
        self.order: list[tuple[int, int, str]] = []
        self.length = 0
        self._data: bytes | None = None

    def add(self, sent: Sent) -> None:
        start = self.length + sent.offset
        end = self.length + min(len(sent.data), sent.offset + sent.size)
        if end > start and sent.token not in self.spans:
            self.spans[sent.token] = (start, end)
            self.order.append((start, end, sent.token))
        self.parts.append(sent.data)
        self.length += len(sent.data)
        self._data = None

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = b"".join(self.parts)
        return self._data

    def tokens_in(self, start: int, end: int) -> list[str]:
        return [t for s, e, t in self.order if s < end and e > start]


@dataclass(frozen=True)
class _Piece:
    """A row's content as a piece of some stream."""

    text: str  # the row, normalised
    core: bytes  # its bytes with no replacement characters at the edges (what to look for)
    lead: int  # replacement characters it starts with: continuation bytes of a character cut before it
    trail: int  # replacement characters it ends with (the last may be 1-3 bytes of a character cut after it)
    inner: int  # replacement characters inside (invalid bytes a client sent, say)

    @property
    def mangled(self) -> bool:
        return bool(self.lead or self.trail)

    def sizes(self) -> range:
        """How many bytes of the stream it can stand for."""
        least = len(self.core) + self.lead + self.trail
        return range(max(1, least), least + (2 if self.trail else 0) + 3 * self.inner + 1)


Placement = tuple[int, int, int]  # (connection, start, end) in that connection's bytes


@dataclass
class _Choice:
    """A row that fitted several streams, and the search's state before it was placed."""

    row: int
    cursors: dict[int, int]
    fits: list[Placement]  # the first is the one taken
    mark: int  # length of the search's trail when it was made: states entered after it lie in its subtree
    key: int  # the hash of its cursors


#: What the analysis needs of a send to attribute whole rows: (token, connection, text, partial). The
#: bytes on the wire (``Sent``) are built only when some row is not one whole message.
Outline = tuple[str, int, str, bool]


def _move(cursors: dict[int, int], conn: int, end: int) -> int:
    """Move ``conn``'s cursor to ``end`` unless it is past it; return the change to the cursors' hash."""
    was = cursors[conn]
    if end <= was:
        return 0
    cursors[conn] = end
    return hash((conn, was)) ^ hash((conn, end))


class _Analysis:
    def __init__(
        self,
        sends: Sequence[Sent] | Callable[[], Sequence[Sent]],
        rows: Sequence[Row],
        token_re: re.Pattern[str],
        foreign_re: re.Pattern[str],
        normalize: str,
        exit_words: Iterable[str],
        budget: int,
        outline: Iterable[Outline] | None = None,
    ) -> None:
        if callable(sends):
            self._make_sends: Callable[[], Sequence[Sent]] | None = sends
            self._sends: list[Sent] | None = None
        else:
            self._make_sends, self._sends = None, list(sends)
        if outline is None:
            outline = [(s.token, s.conn, s.text, s.partial) for s in self.sends]
        self.rows = list(rows)
        self.token_re = token_re
        self.foreign_re = foreign_re
        self.normalize = normalize
        self.budget = budget
        self.exit_words = {w.strip().casefold() for w in exit_words if w.strip()}
        self.text: dict[str, str] = {}
        self.conns_of: dict[str, list[int]] = defaultdict(list)
        texts, conns_of = self.text, self.conns_of
        for token, conn, text, partial in outline:
            if not partial or token not in texts:
                texts[token] = text
            conns = conns_of.get(token)
            if conns is None:
                conns_of[token] = [conn]
            elif conn not in conns:
                conns.append(conn)
        self.storage: dict[str, Storage] = {}
        self.streams: dict[int, _Stream] = {}

    @property
    def sends(self) -> list[Sent]:
        if self._sends is None:
            assert self._make_sends is not None
            self._sends = list(self._make_sends())
        return self._sends

    def store(self, token: str) -> Storage:
        st = self.storage.get(token)
        if st is None:
            st = self.storage[token] = Storage(token)
        return st

    def run(self) -> Framing:
        quick = self.classify_all()
        placements: list[Placement | None] = [None] * len(self.rows)
        pieces: list[_Piece | None] = [None] * len(self.rows)
        if any(q is None for q in quick):
            for s in self.sends:
                self.streams.setdefault(s.conn, _Stream(s.conn)).add(s)
            pieces = [None if q is not None else self.piece(r) for r, q in zip(self.rows, quick, strict=True)]
            placements = self.search(quick, pieces)
        infos: list[RowInfo] = []
        covered: dict[str, list[tuple[int, int]]] = defaultdict(list)
        storage, exact = self.storage, RowKind.EXACT
        for row, q, piece, at in zip(self.rows, quick, pieces, placements, strict=True):
            if q is not None:
                if q.kind is exact:  # ``store(token).whole.append(row.id)``, without its call: nearly every row
                    token = q.tokens[0]
                    st = storage.get(token)
                    if st is None:
                        storage[token] = Storage(token, [row.id])
                    else:
                        st.whole.append(row.id)
                infos.append(q)
            elif at is not None and piece is not None:
                infos.append(self._placed(row, *at, piece.mangled, covered))
            else:
                infos.append(self._unplaced(row, row.content or ""))
        for token, spans in covered.items():
            st = self.store(token)
            st.pieces_complete = self._complete(token, spans)
            st.lost_cut_characters = not st.pieces_complete and self._complete(token, spans, high=True)
        cut = (RowKind.MERGED, RowKind.FRAGMENT)
        broken = {i.conn for i in infos if i.conn is not None and i.kind in cut}
        for st in self.storage.values():
            if st.merged or (st.pieces_complete and st.split):  # nearly always neither, without asking split
                broken.update(self.conns_of.get(st.token, []))
        return Framing(infos, self.storage, broken, *self._missing(broken, infos, placements))

    # -- rows that are exactly one message ------------------------------------------------------------------

    def classify_all(self) -> list[RowInfo | None]:
        """Each row that is empty, foreign or exactly one message, as such; None for a row that needs the streams."""
        out: list[RowInfo | None] = []
        findall, foreign, texts, conns_of = self.token_re.findall, self.foreign_re.match, self.text, self.conns_of
        strip, exact = self.normalize == "strip", RowKind.EXACT
        for row in self.rows:  # a row each: the attributes above are looked up once
            content = row.content
            if not content or content.isspace():  # what strip() would leave empty
                out.append(RowInfo(row, RowKind.EMPTY))
                continue
            tokens = findall(content)
            if len(tokens) > 1:
                tokens = list(dict.fromkeys(tokens))
            if not tokens and foreign(content):
                out.append(RowInfo(row, RowKind.FOREIGN))
                continue
            text = texts.get(tokens[0]) if len(tokens) == 1 else None
            if text is not None and ((content.strip() == text.strip()) if strip else content == text):
                conns = conns_of[tokens[0]]
                out.append(RowInfo(row, exact, tokens, conns[0] if conns else None))
            else:
                out.append(None)  # needs the streams
        return out

    def piece(self, row: Row) -> _Piece:
        text = normalise(row.content or "", self.normalize)
        core = text.strip(REPLACEMENT)
        if not core:  # nothing but bytes of cut characters: continuation bytes, the last maybe a truncated start
            return _Piece(text, b"", len(text) - 1, 1, 0)
        lead = len(text) - len(text.lstrip(REPLACEMENT))
        trail = len(text) - len(text.rstrip(REPLACEMENT))
        return _Piece(text, core.encode("utf-8"), lead, trail, core.count(REPLACEMENT))

    # -- placing rows in the streams they came from ---------------------------------------------------------

    def search(self, quick: list[RowInfo | None], pieces: list[_Piece | None]) -> list[Placement | None]:
        """Place every row that is not one whole message, in id order, where it continues a stream exactly.

        The search remembers states at choices (a row and every stream's cursor) whose every
        continuation ran into a row that continues nothing; arriving at one again by other choices,
        it backtracks at once instead of exploring the same dead subtree again. A state from which
        the end of the rows was reached is never remembered: how many holes that end leaves depends
        on the rows placed before it.
        """
        cursors = dict.fromkeys(self.streams, 0)
        out: list[Placement | None] = [None] * len(self.rows)
        choices: list[_Choice] = []
        trail: list[tuple[int, int]] = []  # states of the choices on the current path
        ended = 0  # trail[:ended] reached the end of the rows
        dead: set[tuple[int, int]] = set()
        key = 0  # the cursors' hash, kept up to date as they move: XOR of hash((connection, cursor))
        for conn in cursors:
            key ^= hash((conn, 0))
        budget, retries = self.budget, RETRIES
        best: tuple[int, list[Placement | None]] | None = None

        def back() -> tuple[int, list[Placement]]:
            nonlocal ended, key
            choice = choices.pop()
            if len(dead) < DEAD_STATES:
                dead.update(trail[max(choice.mark, ended) :])
            del trail[choice.mark :]
            ended = min(ended, choice.mark)
            key = choice.key
            return self._resume(choice, cursors, choices)

        i = 0
        while True:
            if i == len(self.rows):  # a wrong choice may leave holes that no later row exposed: try another
                holes = self._holes(out)
                if best is None or holes < best[0]:
                    best = (holes, list(out))
                if not holes or not choices or retries <= 0 or budget <= 0:
                    break
                ended = len(trail)
                retries -= 1
                budget -= 1
                i, fits = back()
            else:
                q, piece = quick[i], pieces[i]
                if q is not None:
                    if q.kind == RowKind.EXACT:
                        key ^= self._advance(cursors, q.tokens[0])
                    i += 1
                    continue
                assert piece is not None
                fits = self._fits(piece, cursors)
                # States are kept at choices (between two, the way is forced), and only below another
                # choice: with none made, none can die. A 64-bit hash stands for every cursor.
                state = (i, key) if len(fits) > 1 and choices else None
                if (not fits or state in dead) and choices and budget > 0:
                    budget -= 1
                    i, fits = back()
                elif len(fits) > 1:
                    if state is not None:
                        trail.append(state)
                    choices.append(_Choice(i, dict(cursors), fits, len(trail), key))
            piece = pieces[i]
            assert piece is not None
            at = fits[0] if fits else self._near(piece, cursors)
            out[i] = at
            if at is not None:
                key ^= _move(cursors, at[0], at[2])
            i += 1
        return best[1] if best is not None else out

    @staticmethod
    def _resume(choice: _Choice, cursors: dict[int, int], choices: list[_Choice]) -> tuple[int, list[Placement]]:
        """Go back to ``choice`` and take its next alternative; return the row and what it is placed at."""
        cursors.clear()
        cursors.update(choice.cursors)
        rest = choice.fits[1:]
        if len(rest) > 1:
            choices.append(_Choice(choice.row, dict(choice.cursors), rest, choice.mark, choice.key))
        return choice.row, rest[:1]

    def _holes(self, out: list[Placement | None]) -> int:
        """How many messages the placement leaves partly stored (0 when every placed message is whole)."""
        covered: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for at in out:
            if at is not None:
                conn, start, end = at
                stream = self.streams[conn]
                for t in stream.tokens_in(start, end):
                    s, e = stream.spans[t]
                    covered[t].append((max(s, start), min(e, end)))
        return sum(not self._complete(t, spans) for t, spans in covered.items())

    def _advance(self, cursors: dict[int, int], token: str) -> int:
        """Move the cursors past ``token``'s message; return the change to their hash."""
        key = 0
        for conn in self.conns_of.get(token, []):
            span = self.streams[conn].spans.get(token) if conn in self.streams else None
            if span is not None:
                key ^= _move(cursors, conn, span[1])
        return key

    def _match(self, stream: _Stream, at: int, piece: _Piece) -> int | None:
        """The end of the bytes at ``at`` that decode (and normalise) to the piece, if any."""
        data = stream.data
        core_at = at + piece.lead
        if piece.core and not data.startswith(piece.core[:32], core_at):
            return None
        for size in piece.sizes():
            if at + size > stream.length:
                break
            text = normalise(data[at : at + size].decode("utf-8", errors="replace"), self.normalize)
            if text == piece.text:
                return at + size
        return None

    def _fits(self, piece: _Piece, cursors: dict[int, int]) -> list[Placement]:
        """Where ``piece`` continues a stream exactly: after whitespace the target strips, and — for a piece
        that starts with the rest of a character cut before it — wherever the previous piece's truncated
        character really ended (a truncated character decodes the same, one byte long or three)."""
        out: list[Placement] = []
        for conn, stream in self.streams.items():
            at = cursors[conn]
            if piece.lead:
                for shift in (0, 1, -1, 2, -2):
                    lo, hi = sorted((at, at + shift))
                    if lo < 0 or not _continuation(stream.data[lo:hi]):
                        continue
                    end = self._match(stream, at + shift, piece)
                    if end is not None:
                        out.append((conn, min(at, at + shift), end))
                        break
                continue
            data = stream.data
            cut = at
            while at < stream.length and 0x80 <= data[at] < 0xC0:
                at += 1  # the rest of a character the previous piece cut: this piece does not start inside one
            if self.normalize == "strip":
                while at < stream.length and data[at] in WHITESPACE:
                    at += 1
            end = None
            if not piece.core and cut != at:  # nothing but cut characters: maybe the rest of the one cut there
                end = self._match(stream, cut, piece)
                if end is not None:
                    at = cut
            if end is None:
                end = self._match(stream, at, piece)
            if end is not None:
                out.append((conn, at, end))
        return out

    def _near(self, piece: _Piece, cursors: dict[int, int]) -> Placement | None:
        """Where ``piece`` fits best without continuing a stream exactly: near a stream's end, or anywhere."""
        if not piece.core:
            return None
        best: tuple[int, Placement] | None = None
        for conn, stream in self.streams.items():
            cursor = cursors[conn]
            for lo in (cursor, max(0, cursor - WINDOW)):
                found = stream.data.find(piece.core, lo, cursor + len(piece.core) + WINDOW)
                end = self._match(stream, found - piece.lead, piece) if found >= piece.lead else None
                if end is not None and (best is None or abs(found - cursor) < best[0]):
                    best = (abs(found - cursor), (conn, found - piece.lead, end))
                    break
        if best is not None:
            return best[1]
        for conn, stream in self.streams.items():  # out of place, or stored twice
            found = stream.data.find(piece.core)
            if found >= 0:
                end = self._match(stream, max(0, found - piece.lead), piece)
                return (conn, found, found + len(piece.core)) if end is None else (conn, found - piece.lead, end)
        return None

    def _placed(
        self, row: Row, conn: int, start: int, end: int, mangled: bool, covered: dict[str, list[tuple[int, int]]]
    ) -> RowInfo:
        stream = self.streams[conn]
        # A character was cut if a read began or ended inside it (a U+FFFD the client sent is no cut).
        mangled = any(at < stream.length and 0x80 <= stream.data[at] < 0xC0 for at in (start, end))
        tokens = stream.tokens_in(start, end)
        if tokens and all(t.startswith(EXIT_TOKEN) for t in tokens):
            return RowInfo(row, RowKind.EXIT_WORD, [], conn, mangled)
        whole_of: list[str] = []
        for t in tokens:
            s, e = stream.spans[t]
            st = self.store(t)
            if start <= s and end >= e:
                st.whole.append(row.id)
                whole_of.append(t)
            else:
                if isinstance(st.pieces, list):
                    st.pieces.append(row.id)
                else:
                    st.pieces = [row.id]
                covered[t].append((max(s, start), min(e, end)))
        if len(tokens) > 1:
            for t in tokens:
                self.store(t).merged = True
            return RowInfo(row, RowKind.MERGED, tokens, conn, mangled)
        if not tokens:
            return RowInfo(row, RowKind.PHANTOM, [], conn, mangled)  # framing bytes alone (a lone newline)
        if not whole_of:
            return RowInfo(row, RowKind.FRAGMENT, tokens, conn, mangled)
        s, e = stream.spans[tokens[0]]
        kind = RowKind.EXTRA if (start < s or end > e) else RowKind.EXACT
        return RowInfo(row, kind, tokens, conn, mangled)

    def _unplaced(self, row: Row, content: str) -> RowInfo:
        if not content.replace(REPLACEMENT, "").strip() and any(not st.data.isascii() for st in self.streams.values()):
            return RowInfo(row, RowKind.FRAGMENT, [], None, True)  # the bytes of a character cut between reads
        tokens = [t for t in dict.fromkeys(self.token_re.findall(content)) if t in self.text]
        for t in tokens:
            self.store(t).whole.append(row.id)
        if len(tokens) > 1:
            for t in tokens:
                self.store(t).merged = True
            return RowInfo(row, RowKind.MERGED, tokens)
        if len(tokens) == 1:
            conns = self.conns_of[tokens[0]]
            return RowInfo(row, RowKind.CORRUPTED, tokens, conns[0] if conns else None)
        if content.strip().casefold() in self.exit_words:
            return RowInfo(row, RowKind.EXIT_WORD)
        return RowInfo(row, RowKind.PHANTOM)

    # -- per message ----------------------------------------------------------------------------------------

    def _complete(self, token: str, spans: list[tuple[int, int]], high: bool = False) -> bool:
        """Whether ``spans`` cover the message's bytes, but for whitespace the target strips (and, with
        ``high``, but for any bytes of multibyte characters)."""
        conns = self.conns_of.get(token, [])
        stream = self.streams.get(conns[0]) if conns else None
        span = stream.spans.get(token) if stream else None
        if stream is None or span is None:
            return False
        start, end = span
        at = start
        for s, e in sorted(spans):
            if s > at and not self._gap_ok(stream.data[at:s], high):
                return False
            at = max(at, e)
        return at >= end or self._gap_ok(stream.data[at:end], high)

    def _gap_ok(self, gap: bytes, high: bool = False) -> bool:
        """A gap a correct placement may leave: whitespace the target strips, or the continuation bytes of
        a character whose start one piece holds (as far as decoding can tell, they belong to either)."""
        if self.normalize == "strip":
            gap = bytes(b for b in gap if b not in WHITESPACE)
        return (len(gap) <= UTF8_MAX and all(b >= 0x80 for b in gap)) if high else _continuation(gap)

    def _missing(self, broken: set[int], infos: list[RowInfo], placements: list[Placement | None]) -> tuple[int, int]:
        """Visible bytes sent on ``broken`` connections that no row holds: counted, not attributed.

        Visible ASCII bytes are counted exactly (a cut never falls inside one); other bytes allowing up
        to three for each replacement character (a cut character's bytes, or invalid ones).
        """
        if not broken:
            return 0, 0
        sent_ascii = sent_high = 0
        for s in self.sends:
            if s.conn in broken and not s.partial and not s.token.startswith(EXIT_TOKEN):
                text = s.data[s.offset : s.offset + s.size]
                high = sum(b >= 0x80 for b in text)
                sent_ascii += _visible(text) - high
                sent_high += high
        stored_ascii = stored_high = 0
        for info, at in zip(infos, placements, strict=True):
            if info.kind in (RowKind.FOREIGN, RowKind.EMPTY, RowKind.EXIT_WORD):
                continue
            if info.kind == RowKind.EXACT and at is None and info.conn not in broken:
                continue
            for ch in info.row.content or "":
                if ch == REPLACEMENT:
                    stored_high += 3
                elif ch.isascii():
                    stored_ascii += not ch.isspace()
                elif not ch.isspace():
                    stored_high += len(ch.encode("utf-8"))
        return max(0, sent_ascii - stored_ascii), max(0, sent_high - stored_high)


def analyse(
    sends: Sequence[Sent] | Callable[[], Sequence[Sent]],
    rows: Sequence[Row],
    token_re: re.Pattern[str],
    foreign_re: re.Pattern[str],
    normalize: str = "exact",
    exit_words: Iterable[str] = (),
    budget: int = BUDGET,
    outline: Iterable[Outline] | None = None,
) -> Framing:
    """Attribute every row to the messages it holds and tell, for every message, where it is stored.

    ``sends`` may be a function that makes them, called only when a row needs the bytes on the wire;
    ``outline`` (the sends' ``Outline``, in the same order) then stands for them until it is.
    """
    return _Analysis(sends, rows, token_re, foreign_re, normalize, exit_words, budget, outline).run()


def sent(token: str, conn: int, text: str, data: bytes, partial: int | None = None) -> Sent:
    """A Sent for ``text`` written as ``data`` (of which only the first ``partial`` bytes, for a half message)."""
    encoded = text.encode("utf-8", errors="replace")
    offset = data.find(encoded)
    if offset < 0:  # raw bytes: the text is their lenient decoding; they start after the token's framing
        offset, size = 0, len(data)
        decoded = data.decode("utf-8", errors="replace")
        at = decoded.find(text)
        if at >= 0:
            offset = len(decoded[:at].encode("utf-8", errors="replace"))
            size = len(data) - offset
    else:
        size = len(encoded)
    if partial is not None:
        data = data[:partial]
    return Sent(token, conn, text, data, offset, size, partial is not None)
