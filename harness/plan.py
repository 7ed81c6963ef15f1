"""A run drawn up front: which clients, doing which operations, with which delays.

A Plan is plain data with a JSON round trip, so a failing run can be replayed from its file.
Timing is part of the plan (explicit pauses, start offsets, Locust-style pacing), so nothing
drawn depends on how fast the run goes, which is what lets Hypothesis shrink a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from harness.faults import KINDS as FAULT_KINDS
from harness.faults import parse_schedule
from harness.history import json_line

#: Operation kinds a simulated client performs, in plan order.
SEND = "send"  # send one message (a unique token is prepended); wait for its ack unless pipelined
PAUSE = "pause"  # wait ``seconds`` while still reading what the server sends
CLOSE = "close"  # polite close (FIN), after waiting for outstanding acks
RESET = "reset"  # abrupt close (RST), outstanding acks unknown
HALF_RESET = "half_reset"  # send half of a message, then RST: it must never be stored
EXIT = "exit"  # send the exit word (or ``text``, another spelling of it); the server ends the session
RECONNECT = "reconnect"  # close politely, connect again (chat: resend what is unacknowledged)
HALF_CLOSE = "half_close"  # send half of a message, then FIN: it must never be stored
TRICKLE = "trickle"  # send a message one byte at a time, ``seconds`` apart; wait for its ack
NO_READ = "no_read"  # stop reading for ``seconds`` (what the server sends piles up)
RAW = "raw"  # send ``data`` (hex) after the token as one line, as is: bad input; wait for an answer
KINDS = (SEND, PAUSE, CLOSE, RESET, HALF_RESET, EXIT, RECONNECT, HALF_CLOSE, TRICKLE, NO_READ, RAW)
TEXT_KINDS = (SEND, HALF_RESET, HALF_CLOSE, TRICKLE)
SECONDS_KINDS = (PAUSE, TRICKLE, NO_READ)


@dataclass
class Op:
    """One client operation."""

    kind: str
    text: str = ""
    seconds: float = 0.0
    pipelined: bool = False
    data: str = ""  # RAW: the bytes, in hex

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that matter for this kind."""
        kind = self.kind
        if kind == SEND and not self.pipelined:  # nearly every op of a load
            return {"kind": kind, "text": self.text}
        d: dict[str, Any] = {"kind": kind}
        if kind in TEXT_KINDS or (kind == EXIT and self.text):
            d["text"] = self.text
        if kind in SECONDS_KINDS:
            d["seconds"] = self.seconds
        if kind == RAW:
            d["data"] = self.data
        if self.pipelined:
            d["pipelined"] = True
        return d


@dataclass
class ClientPlan:
    """What one simulated client does: connect after ``start`` seconds, then run ``ops``."""

    ops: list[Op]
    start: float = 0.0
    pacing: float = 0.0  # Locust's constant_pacing: at least this many seconds between send starts


@dataclass
class Plan:
    """A whole run: its clients, the seed for run-time randomness, and (later) a fault schedule."""

    clients: list[ClientPlan]
    seed: int = 0
    name: str = "random"
    faults: list[dict[str, Any]] = field(default_factory=list)
    client: dict[str, Any] = field(default_factory=dict)  # client settings: "options" overrides, "pipelining", "probe"
    target_options: dict[str, Any] = field(default_factory=dict)  # the target's [options] set for this run
    nemesis: list[dict[str, Any]] = field(default_factory=list)  # what is done to the server (harness/nemesis.py)

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "version": 1,
            "name": self.name,
            "seed": self.seed,
            "faults": self.faults,
            **({"client": self.client} if self.client else {}),
            **({"target_options": self.target_options} if self.target_options else {}),
            **({"nemesis": self.nemesis} if self.nemesis else {}),
            "clients": [
                {"start": c.start, "pacing": c.pacing, "ops": [op.to_dict() for op in c.ops]} for c in self.clients
            ],
        }

    def to_json(self) -> str:
        """JSON, indented for a person to read unless the plan is too big to read anyway (a load)."""
        if self.size() <= READABLE_SIZE:
            return json.dumps(self.to_dict(), ensure_ascii=False, indent=1)
        return json_line(self.to_dict())[:-1].decode("utf-8")  # a load's plan, before every run: orjson's speed

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Rebuild a plan; raise ValueError on malformed data."""
        try:
            clients = []
            for c in data["clients"]:
                ops = []
                for o in c["ops"]:
                    if o["kind"] not in KINDS:
                        raise ValueError(f"unknown operation kind {o['kind']!r}")
                    op = Op(o["kind"], o.get("text", ""), float(o.get("seconds", 0.0)), bool(o.get("pipelined")))
                    op.data = str(o.get("data", ""))
                    bytes.fromhex(op.data)  # raises ValueError when it is not hex
                    ops.append(op)
                clients.append(ClientPlan(ops, float(c.get("start", 0.0)), float(c.get("pacing", 0.0))))
            faults = list(data.get("faults", []))
            parse_schedule(faults)  # raises ValueError on a malformed schedule
            client, target_options = data.get("client", {}), data.get("target_options", {})
            if not isinstance(client, dict) or not isinstance(target_options, dict):
                raise ValueError("'client' and 'target_options' must be tables")
            nemesis = check_nemesis(data.get("nemesis", []))
            name = str(data.get("name", "random"))
            return cls(clients, int(data.get("seed", 0)), name, faults, client, target_options, nemesis)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"missing or malformed field {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> Plan:
        """Read a plan file (the ``plan.json`` of a run, or a replay file)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read plan {path}: {exc}") from exc
        if isinstance(data, dict) and "plan" in data and "clients" not in data:
            data = data["plan"]  # a replay file wraps the plan
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path} is not a valid plan: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the plan as JSON."""
        path.write_text(self.to_json(), encoding="utf-8")

    def size(self) -> int:
        """How big the plan is: clients, operations, fault and nemesis steps."""
        return len(self.clients) + sum(len(c.ops) for c in self.clients) + len(self.faults) + len(self.nemesis)

    @property
    def text_bytes(self) -> int:
        """Bytes of message text in the plan."""
        return sum(len(op.text.encode()) + len(op.data) // 2 for c in self.clients for op in c.ops)

    def sort_key(self) -> tuple[int, int]:
        """Smaller plans first: structure, then text."""
        return self.size(), self.text_bytes


# ---------------------------------------------------------------------------
# Hypothesis strategies
# ---------------------------------------------------------------------------

#: Texts people really send to chat servers, and that break naive ones.
TRICKY = [
    "hola",
    "it's",
    '"quoted"',
    "'; DROP TABLE mensajes; --",
    "¿Qué tal? ñandú",
    "😀👍🏽",
    "tab\there",
    "/not a command",
    "  spaced  ",
    "%s %d {0}",
    "\\N back\\slash",
]


READABLE_SIZE = 2000  # plans up to this size (clients + operations + steps) are written indented

#: What a nemesis step may do, and the field each needs besides "at".
NEMESIS_ACTIONS = {"kill-restart": None, "stop-restart": "method", "stop": "method", "lock": "seconds"}


def check_nemesis(steps: Any) -> list[dict[str, Any]]:
    """``steps`` if they are a valid nemesis schedule; ValueError naming what is wrong otherwise."""
    if not isinstance(steps, list):
        raise ValueError("'nemesis' must be a list of steps")
    for step in steps:
        if not isinstance(step, dict) or step.get("action") not in NEMESIS_ACTIONS:
            raise ValueError(f"nemesis step {step!r}: 'action' must be one of {', '.join(NEMESIS_ACTIONS)}")
        if not isinstance(step.get("at"), (int, float)) or step["at"] < 0:
            raise ValueError(f"nemesis step {step!r}: 'at' must be seconds from the start")
        need = NEMESIS_ACTIONS[step["action"]]
        if need == "method" and not isinstance(step.get("method"), str):
            raise ValueError(f"nemesis step {step!r}: 'method' (sigint, sigterm, stdin-newline, ...) is required")
        if need == "seconds" and not (isinstance(step.get("seconds"), (int, float)) and step["seconds"] > 0):
            raise ValueError(f"nemesis step {step!r}: 'seconds' must be more than 0")
    return steps


def fit_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 without splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", errors="ignore")


def texts(max_bytes: int, ack_safe: bool = False) -> st.SearchStrategy[str]:
    """Message bodies: unicode, quotes, and sizes near ``max_bytes`` with multibyte characters at the edge."""
    alphabet = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
    plain = st.text(alphabet, max_size=40)
    near_max = st.builds(
        lambda n, ch: ch * (n // len(ch.encode())) + "x" * (n % len(ch.encode())),
        st.integers(max(0, max_bytes - 8), max_bytes),
        st.sampled_from(["x", "é", "€", "😀"]),
    )
    body = st.one_of(st.sampled_from(TRICKY), plain, near_max).map(lambda t: fit_utf8(t, max_bytes))
    if ack_safe:
        body = body.filter(lambda t: "recibido" not in t.lower())
    return body


#: Bad lines: invalid UTF-8, a cut multibyte character, NUL and other control bytes, or anything at all.
BAD_BYTES = st.one_of(
    st.sampled_from([b"\xff\xfe", "€".encode()[:2], b"nul\x00byte", b"bell\x07\x1b[31m", b"cr\rhere"]),
    st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b" ")),
)


@dataclass(frozen=True)
class Shape:
    """Bounds for drawn plans."""

    max_clients: int = 8
    max_ops: int = 8
    max_text: int = 200  # bytes of a message body (the token comes on top)
    pipelining: bool = True
    disconnects: bool = True
    half_messages: bool = True  # half a message then RST (only meaningful with framing)
    exit_word: bool = True
    bad_input: bool = True  # raw lines: invalid UTF-8, NUL and other control bytes
    slow: bool = True  # trickled messages and pauses in reading
    trickle: bool = True  # trickling needs framing (not for raw pfo1)
    faults: bool = False  # draw a network fault schedule too (runs through the fault proxy)
    ack_safe: bool = False
    max_start: float = 0.3
    max_pause: float = 0.2
    nemesis: tuple[str, ...] = ()  # the nemesis actions a plan may draw (harness/nemesis.py); none by default
    stop_method: str = "sigterm"  # how a drawn "stop-restart" stops the server (the target's own way)


def _ms(x: float) -> float:
    return round(x, 3)


@st.composite
def client_plans(draw: st.DrawFn, shape: Shape) -> ClientPlan:
    """One client's plan."""
    body = texts(shape.max_text, shape.ack_safe)
    send = st.builds(Op, kind=st.just(SEND), text=body, pipelined=st.booleans() if shape.pipelining else st.just(False))
    pause = st.builds(Op, kind=st.just(PAUSE), seconds=st.floats(0, shape.max_pause).map(_ms))
    choices = [send, send, send, pause]
    if shape.disconnects:
        choices.append(st.sampled_from([Op(CLOSE), Op(RESET), Op(RECONNECT)]))
    if shape.half_messages:
        choices.append(st.builds(Op, kind=st.sampled_from([HALF_RESET, HALF_CLOSE]), text=body))
    if shape.exit_word:
        choices.append(st.just(Op(EXIT)))
    if shape.bad_input:
        choices.append(st.builds(lambda b: Op(RAW, data=b.hex()), BAD_BYTES))
    if shape.slow:
        choices.append(st.builds(Op, kind=st.just(NO_READ), seconds=st.floats(0, shape.max_pause).map(_ms)))
        if shape.trickle:
            short = texts(min(shape.max_text, 30), shape.ack_safe)
            choices.append(st.builds(Op, kind=st.just(TRICKLE), text=short, seconds=st.floats(0, 0.005).map(_ms)))
    ops = draw(st.lists(st.one_of(choices), min_size=1, max_size=shape.max_ops))
    wait = draw(st.sampled_from(["none", "constant", "between", "pacing"]))
    pacing = 0.0
    if wait == "pacing":
        pacing = draw(st.floats(0, shape.max_pause).map(_ms))
    elif wait != "none":
        spaced = []
        constant = draw(st.floats(0, shape.max_pause).map(_ms))
        for op in ops:
            spaced.append(op)
            if op.kind == SEND:
                gap = constant if wait == "constant" else draw(st.floats(0, shape.max_pause).map(_ms))
                spaced.append(Op(PAUSE, seconds=gap))
        ops = spaced
    start = draw(st.floats(0, shape.max_start).map(_ms))
    return ClientPlan(ops, start, pacing)


def _fault(name: str, kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """One fault of ``kind`` with parameters that disturb but never stall a run for long."""
    direction = st.sampled_from(["up", "down", "both"])
    probability = st.sampled_from([0.3, 0.6, 1.0])
    catalogue: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "latency": st.fixed_dictionaries(
            {"latency": st.floats(0, 0.03).map(_ms), "jitter": st.floats(0, 0.01).map(_ms)}
        ),
        "bandwidth": st.fixed_dictionaries({"rate": st.integers(20_000, 200_000)}),
        "slicer": st.fixed_dictionaries({"size": st.integers(1, 16), "size_jitter": st.integers(0, 4)}),
        "limit_data": st.fixed_dictionaries({"limit": st.integers(50, 5000)}),
        "reset_peer": st.fixed_dictionaries({"after": st.floats(0, 0.3).map(_ms)}),
        "timeout": st.fixed_dictionaries({"close_after": st.floats(0.05, 0.5).map(_ms)}),
        "slow_close": st.fixed_dictionaries({"linger": st.floats(0, 0.3).map(_ms)}),
    }
    params = catalogue[kind]
    return st.builds(
        lambda d, p, extra: {"name": name, "kind": kind, "direction": d, "probability": p, **extra},
        direction,
        probability,
        params,
    )


@st.composite
def fault_schedules(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Up to two faults added and maybe removed, and maybe a short partition."""
    steps: list[dict[str, Any]] = []
    kinds = draw(st.lists(st.sampled_from(FAULT_KINDS), max_size=2, unique=True))
    for i, kind in enumerate(kinds):
        at = draw(st.floats(0, 0.4).map(_ms))
        steps.append({"at": at, "action": "add", "fault": draw(_fault(f"f{i}", kind))})
        if draw(st.booleans()):
            steps.append({"at": _ms(at + draw(st.floats(0.05, 0.6))), "action": "remove", "name": f"f{i}"})
    if draw(st.booleans()) and draw(st.booleans()):
        at = draw(st.floats(0, 0.4).map(_ms))
        steps.append({"at": at, "action": "down", "cut": draw(st.booleans())})
        steps.append({"at": _ms(at + draw(st.floats(0.05, 0.4))), "action": "up"})
    return sorted(steps, key=lambda s: s["at"])


@st.composite
def nemesis_schedules(draw: st.DrawFn, actions: tuple[str, ...], stop_method: str = "sigterm") -> list[dict[str, Any]]:
    """In one plan of three, one nemesis step among ``actions``, early enough to land while clients run.

    A step at the very start meets no message yet, and one after the clients finished meets no
    connection, so the time is one of a few within the first half second, when most drawn clients
    are connected and chatting.
    """
    if not actions or not draw(st.sampled_from([False, False, True])):  # shrinks towards no step
        return []
    action = draw(st.sampled_from(actions))
    step: dict[str, Any] = {"at": draw(st.sampled_from([0.1, 0.2, 0.3, 0.4, 0.5])), "action": action}
    if NEMESIS_ACTIONS[action] == "method":
        step["method"] = stop_method
    elif NEMESIS_ACTIONS[action] == "seconds":
        step["seconds"] = draw(st.floats(0.1, 1.5).map(_ms))
    return check_nemesis([step])


@st.composite
def plans(draw: st.DrawFn, shape: Shape = Shape()) -> Plan:
    """Whole plans within ``shape``."""
    clients = draw(st.lists(client_plans(shape), min_size=1, max_size=shape.max_clients))
    seed = draw(st.integers(0, 2**32 - 1))
    faults = draw(fault_schedules()) if shape.faults else []
    nemesis = draw(nemesis_schedules(shape.nemesis, shape.stop_method))
    return Plan(clients, seed, faults=faults, nemesis=nemesis)
