"""What a checker returns, and the registry that holds the checkers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from harness.index import RunIndex
    from harness.log import Row

MAX_EVIDENCE = 5
PASS, FAIL, UNKNOWN, NA = "pass", "fail", "unknown", "n/a"


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
class Judgement:
    """What one checker concluded."""

    status: str = PASS
    anomalies: list[Anomaly] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_judged: Counter[str] = field(default_factory=Counter)  # reason -> how many (messages or connections)
    unit: str = "messages"  # what not_judged counts

    def add(self, kind: str, invariant: int, message: str, **kw: Any) -> None:
        """Record an anomaly (which fails the invariant)."""
        self.anomalies.append(Anomaly(kind, invariant, message, **kw))
        self.status = FAIL

    def skip(self, reason: str, n: int = 1) -> None:
        """Something this checker may not judge (a fault or a nemesis could explain it)."""
        self.not_judged[reason] += n


Checker = Callable[["RunIndex"], Judgement]


@dataclass(frozen=True)
class Invariant:
    """A registered invariant."""

    number: int
    name: str
    needs_log: bool
    check: Checker


INVARIANTS: dict[int, Invariant] = {}
SCENARIO_CHECKS: dict[str, Callable[..., Any]] = {}


def invariant(number: int, name: str, needs_log: bool = False) -> Callable[[Checker], Checker]:
    """Register ``check`` as invariant ``number`` (``needs_log``: unknown when the log cannot be read)."""

    def register(check: Checker) -> Checker:
        if number in INVARIANTS:
            raise ValueError(f"invariant {number} registered twice")
        INVARIANTS[number] = Invariant(number, name, needs_log, check)
        return check

    return register


F = TypeVar("F", bound=Callable[..., Any])


def scenario_check(name: str) -> Callable[[F], F]:
    """Register a scenario's own check (a function over a run and its parameters, returning a ``Check``)."""

    def register(check: F) -> F:
        if name in SCENARIO_CHECKS:
            raise ValueError(f"scenario check {name!r} registered twice")
        SCENARIO_CHECKS[name] = check
        return check

    return register


def row_dict(r: Row) -> dict[str, Any]:
    """A row as evidence (long contents cut)."""
    content = r.content if r.content is None or len(r.content) <= 300 else r.content[:300] + "…"
    return {"id": r.id, "content": content, "ts": r.ts}
