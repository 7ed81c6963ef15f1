"""Tell a pool from a leak: do the server threads that stayed serve a second wave of clients? (No sockets here.)

Threads still there after every client left are either leaked (each stuck on a connection that
is over) or a pool (idle workers waiting for the next client). Their count cannot tell them
apart. The kernel counts every time a thread is scheduled; the threads the baseline did not have
are watched for a quiet second, then while a wave of as many clients as they are connects at
once and holds on until every one is answered (``runner.reuse_wave``). They are a pool when every
one of them ran for the wave (but as many as idle threads of the baseline served it instead), and
the wave, all connected, needed no new thread. A thread that ran in the quiet second runs on a
timer: it ran for the wave only if it was asleep waiting on a wave client's connection while the
wave held on (``harness/syscalls.py``), and is undecided where that cannot be read. Anything else
stays a leak, as the count alone said: this only takes back false alarms, for pools that hand
every idle worker a client (CPython's ``ThreadPoolExecutor``). Stuck threads woken by the wave's
traffic (a broadcast) pass only if other idle threads serve the whole wave with no new thread; so
do as many stuck threads as the baseline's idle threads that served the wave instead. A pool that starts a worker for every client
until it is full (Java's fixed executor, which hands each new worker its client, so the idle ones
sit the wave out) needs new threads for each wave until then, and keeps them: a wave that would pass
but for them, or that new threads served alone while none that stayed ran and then stayed too, is
followed by another, of as many clients as threads stayed by then (up to ``GROW_WAVES``), and the
last one decides. Stuck threads beside a thread per connection, whose threads end with their
clients, are a leak after one wave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.history import FAIL, OK

MAX_WAVE = 2000  # more threads than this stayed: no wave, and the count alone judges
# Waves at most while a pool still fills up: each may double the threads, so from one that stayed they reach
# MAX_WAVE, past which no wave is sent; a pool any wave may test is given the waves to fill up.
GROW_WAVES = MAX_WAVE.bit_length() + 1
QUIET = 1.0  # seconds the threads that stayed are watched before the wave (any that runs then is undecided)
HOLD = 0.5  # seconds every wave client stays connected after the last of them was answered
WATCH_EVERY = 0.02  # seconds between looks at the wave's answers
Runs = dict[int, int]  # thread id -> how many times it has been scheduled so far (``ServerRun.thread_runs``)


@dataclass
class Wave:
    """What the threads that stayed did, quiet and under a second wave of clients."""

    stayed: int  # threads that were not there at the baseline and still are after the run
    clients: int = 0  # wave clients (as many as stayed; none above MAX_WAVE)
    answered: int = 0  # wave clients whose message was acknowledged or refused
    restless: list[int] = field(default_factory=list)  # thread ids that ran while nothing was asked of them, undecided
    still: list[int] = field(default_factory=list)  # thread ids that never ran during the wave (and did not end)
    new: int | None = None  # threads beside the server's before the wave, every wave client on (None: unknown)
    helped: int = 0  # threads of the baseline (not the main one) that ran for the wave: idle workers it had too
    # the earlier waves, each of which found a pool still filling up (``filling``): its clients, its new threads
    grew: list[tuple[int, int]] = field(default_factory=list)
    # thread ids that ran while nothing was asked of them (a timer), judged by what they waited on while the wave held on
    timers: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the history's ``resources`` record keeps it; a few thread ids, the counts in full)."""
        return {
            "stayed": self.stayed,
            "clients": self.clients,
            "answered": self.answered,
            "restless": len(self.restless),
            "timers": len(self.timers),
            "still": len(self.still),
            "still_ids": self.still[:5],
            "new": self.new,
            "helped": self.helped,
            "grew": [list(g) for g in self.grew],
        }


def stayed_threads(baseline: Runs | None, after: Runs | None) -> set[int]:
    """Threads running after the run that were not there at the baseline (none if either is unknown)."""
    return set() if baseline is None or after is None else set(after) - set(baseline)


def watched(
    stayed: set[int],
    before: Runs,
    quiet: Runs,
    during: Runs | None,
    clients: int,
    answered: int,
    others: set[int] = frozenset(),  # type: ignore[assignment]
    waiting: set[int] | None = None,
) -> Wave:
    """The verdict's facts: which of ``stayed`` ran in the quiet interval (``before`` to ``quiet``), which did not
    run during the wave (``quiet`` to ``during``; a thread gone by then ended, which a stuck one does not), and
    how many of the baseline's ``others`` (its threads but the main one) ran during the wave.

    A thread that ran in the quiet interval runs on a timer, so running proves nothing of it: when ``waiting`` is
    known (the threads asleep waiting on a wave client's connection at two looks while every wave client held its
    answered connection), it served the wave if it was waiting there (a worker holding a wave client's connection
    waits on it; a stuck thread waits on its lock, its timer or a descriptor of its own), and without ``waiting`` it
    is undecided (``restless``)."""
    ticking = {t for t in before if t in quiet and quiet[t] > before[t]}
    restless = sorted(t for t in stayed if t in ticking)
    if during is None:
        return Wave(len(stayed), clients, answered, restless, sorted(stayed))
    timers: list[int] = []
    if waiting is not None:
        timers, restless = restless, []

    def served(t: int, runs: Runs) -> bool:
        """Whether thread ``t``, one that stayed, took part in the wave."""
        if t in ticking and waiting is not None:
            return t in waiting
        return runs[t] > quiet.get(t, runs[t])

    still = sorted(t for t in stayed if t in during and not served(t, during))
    helped = sum(1 for t in others if t in quiet and t in during and during[t] > quiet[t])
    return Wave(len(stayed), clients, answered, restless, still, helped=helped, timers=timers)


def answered(records: Sequence[Any], first: int, clients: int) -> int:
    """Wave clients (indexes from ``first``) whose message was acknowledged or refused."""
    wave = range(first, first + clients)
    return len({r.client for r in records if r.f == "send" and r.type in (OK, FAIL) and r.client in wave})


def filling(wave: Wave) -> bool:
    """Whether a wave, every client answered, none of the threads that stayed undecided (``watched``), needed new
    threads, and every thread that stayed and sat it out could have had its client taken by a new one or an idle
    one from before: a pool that starts a worker for each client until it is full, even with others idle (Java's
    fixed executor does, handing each new worker its client), or a thread per connection beside threads that are
    stuck or that the wave's traffic wakes. ``keeps_workers`` tells them apart when none of those that stayed
    ran; else another wave, of as many clients as threads then stayed, does: the pool, once full, needs no new
    thread, the other always does."""
    if not wave.clients or wave.answered != wave.clients or wave.restless or not wave.new:
        return False
    return len(wave.still) <= wave.helped + wave.new


def keeps_workers(wave: Wave, stayed_after: int) -> bool:
    """Whether a ``filling`` wave may be a pool still filling up, given how many threads (not in the baseline) there
    are once the server's threads are still after it: yes when some of the threads that stayed ran for it; when
    none did, only if threads that served it stayed too (a pool's new workers stay, a thread per connection ends
    with its client, and the threads that sat the wave out are stuck: a leak)."""
    return len(wave.still) < wave.stayed or stayed_after > wave.stayed


def reused(wave: dict[str, Any] | None) -> bool:
    """Whether every thread that stayed ran for the wave, none is undecided (``watched``), and the wave, all
    connected, needed no new thread: a pool. (Running alone is not enough: stuck threads waiting on a condition the
    server broadcasts at every message run too, while a thread per connection serves the wave beside them.) A
    pool's idle workers from before the run take wave clients too: as many threads that stayed may sit it out."""
    if not wave or not wave.get("clients") or wave.get("new") is None:
        return False
    return (
        wave.get("restless") == 0
        and int(wave.get("still") or 0) <= int(wave.get("helped") or 0)
        and int(wave["clients"]) >= int(wave.get("stayed", 0))
        and wave["new"] <= 0
    )


def in_words(wave: dict[str, Any]) -> str:
    """What the threads that stayed did, quiet and under the second wave, in words."""
    stayed, clients, answered = wave.get("stayed"), wave.get("clients"), wave.get("answered")
    grew = [tuple(g) for g in wave.get("grew") or ()]
    if not clients:
        if (stayed or 0) > MAX_WAVE:
            many = f"{stayed} new threads stayed, more than the {MAX_WAVE} a wave of clients may test"
            if grew:
                return f"{_grew_in_words(grew)}; then {many}: every wave needed new threads, and they stayed"
            return many
        return "which threads stayed could not be watched, so whether they are a pool is not known"
    if wave.get("restless"):
        return (
            f"{wave['restless']} of the {stayed} that stayed ran on their own with no client connected"
            " (a timer?), so whether they are a pool is not known"
        )
    of = f"{clients} client{'' if clients == 1 else 's'} ({answered} answered)"
    wave_of = f"{_grew_in_words(grew)}; then a wave of {of}" if grew else f"a second wave of {of}"
    still, helped, timers = wave.get("still") or 0, wave.get("helped") or 0, wave.get("timers") or 0
    if timers:  # "ran" is then, for those, "waited on a wave client's connection while the wave held on"
        which = f"the {stayed}" if timers == stayed else f"{timers} of the {stayed}"
        wave_of += (
            f" ({which} that stayed run on a timer, so each counts as running for it only if it waited on a"
            " wave client's connection while the wave held on)"
        )
    if still > helped:
        return f"{wave_of} left {still} of the {stayed} that stayed without running {'for it' if timers else 'once'}: stuck"
    new = wave.get("new")
    if new is None:
        return f"{wave_of} was never all answered and connected at once, so whether they are a pool is not known"
    if new > 0:
        return (
            f"{wave_of} ran the {stayed} that stayed, but needed {new} new threads beside them: they did not serve it"
        )
    if still:
        ran = int(stayed or 0) - still
        idle = f"{helped} idle thread{'' if helped == 1 else 's'} from before"
        return f"{wave_of} ran {ran} of the {stayed} that stayed and {idle}, and no new thread"
    return f"{wave_of} ran every one of the {stayed} that stayed, and no new thread"


def _grew_in_words(grew: list[tuple[Any, ...]]) -> str:
    started = ", ".join(f"{n} new for {c}" for c, n in grew)
    return (
        f"{len(grew)} wave{'' if len(grew) == 1 else 's'} of clients each started more threads that stayed ({started})"
    )


# Descriptors that stay after a pool's run may be its workers' own connections to the log (one each, kept in a
# threading.local). Every thread that ran for the second wave stored a message there, so such a pool then holds one
# connection for each of them and none more; a third wave of as many clients resets after its answers. A leak on
# the close or reset path adds a connection per wave client; one on another path (a half message, bad input)
# passes only with as many leaked connections as threads ran for the wave, which a leak matches by chance alone.
LOG_FILES = ("", "-wal", "-shm", "-journal")  # what one SQLite connection may hold open besides the file itself


def log_files_only(grown: dict[str, int], db: str) -> bool:
    """Whether every descriptor name in ``grown`` is the log's ``db`` file or its -wal, -shm or -journal."""
    return bool(grown) and all(name in {db + end for end in LOG_FILES} for name in grown)


def held_by_pool(grown: dict[str, int] | None, db: str, stayed: int, still: int = 0) -> bool:
    """Whether the descriptors beyond the baseline after the waves (``grown``, by name) are all the log's ``db`` files,
    one connection (and its -wal, -shm or -journal) for each of the ``stayed`` threads but the ``still`` ones that
    sat the second wave out (they may have none), and no more."""
    if not grown or stayed <= 0 or not log_files_only(grown, db):
        return False
    conns = grown.get(db, 0)
    return max(1, stayed - still) <= conns <= stayed and sum(grown.values()) - conns <= 2 * conns


def files_in_words(files: dict[str, Any], still: int = 0) -> str:
    """What the descriptor waves showed, in words (``files``: the ``resources`` record's ``fds_pool``)."""
    grown, db, stayed = files.get("grown"), str(files.get("db")), int(files.get("stayed") or 0)
    waves = f"after the second wave and a third of {stayed} client{'' if stayed == 1 else 's'} that reset"
    if grown is None:
        return f"{waves}, the server's descriptors could not be read"
    shown = ", ".join(f"+{n} {name}" for name, n in sorted(dict(grown).items())) or "none"
    ran = stayed - still
    if held_by_pool(dict(grown), db, stayed, still):
        return f"{waves}, they are {shown}: one connection to the log for each pool thread that ran for the wave"
    if not log_files_only(dict(grown), db):
        return f"{waves}, they are {shown}: not only the log's files"
    conns = dict(grown).get(db, 0)
    if conns > stayed:
        return f"{waves}, they are {shown}: more connections to the log than the {stayed} pool threads"
    if conns < ran:
        return f"{waves}, they are {shown}: fewer connections to the log than the {ran} pool threads that ran for it"
    return f"{waves}, they are {shown}: more files than one connection to the log each would hold"


# A pool's workers may also be started with the server, before the baseline, and open their connection to the log
# when they first store a message: then no thread stays, and one connection per worker that served a client does.
# ``runner.worker_waves`` sends rounds of a wave that closes and one that resets, each of one client more than the
# baseline's threads but the main one, each client holding its connection a moment, until a round adds no descriptor:
# every round reaches workers that had none (all of them in one round, unless the server serves fewer clients at once
# than it has workers), so a pool's connections stop growing, while a leak on the close or reset path adds one per
# wave client in every round. The connections then are a pool's if there are no more of them than threads of the
# baseline (but the main one) that ran. A leak on another path (a half message, bad input) passes only when, beside
# one connection per worker the waves reached, it leaves no more than the threads that ran and hold none: the
# warm-up's worker (its connection is in the baseline) and helper threads.
WORKER_ROUNDS = 5  # rounds of descriptor waves at most (4 clients served at once, 16 workers: 2 or 3 rounds)


def ran_since(before: Runs | None, after: Runs | None, main: int | None) -> int:
    """How many threads of ``before`` (but the ``main`` one) ran again by ``after`` (0 when either is unknown)."""
    if before is None or after is None:
        return 0
    return sum(1 for t, n in before.items() if t != main and after.get(t, n) > n)


def _rounds(files: dict[str, Any]) -> tuple[dict[str, int] | None, dict[str, int] | None]:
    """The log descriptors beyond the baseline after the last round of waves, and before it."""
    rounds = list(files.get("rounds") or [])
    if not rounds:
        return None, None
    last = rounds[-1]
    previous = rounds[-2] if len(rounds) > 1 else files.get("before")
    return (None if last is None else dict(last)), (None if previous is None else dict(previous))


def held_by_workers(files: dict[str, Any]) -> bool:
    """Whether the log connections that stayed (``files``: the ``resources`` record's ``fds_pool`` from
    ``runner.worker_waves``) are a pool's started up front: the last round of waves added none, all are the log's
    files, and there is at most one connection per thread of the baseline that ran (an empty reading is back to the
    baseline: no leak, judged apart)."""
    grown, previous = _rounds(files)
    db = str(files.get("db"))
    if files.get("died") or not grown or grown != previous or not log_files_only(grown, db):
        return False
    conns = int(grown.get(db, 0))
    return 1 <= conns <= int(files.get("workers") or 0) and sum(grown.values()) - conns <= 2 * conns


def _shown(grown: dict[str, int]) -> str:
    return ", ".join(f"+{n} {name}" for name, n in sorted(grown.items())) or "none"


def workers_in_words(files: dict[str, Any]) -> str:
    """What the descriptor waves of ``runner.worker_waves`` showed, in words."""
    grown, previous = _rounds(files)
    db = str(files.get("db"))
    clients, workers, n = int(files.get("clients") or 0), int(files.get("workers") or 0), len(files.get("rounds") or [])
    each, one = f"{clients} client{'' if clients == 1 else 's'}", clients == 1
    close, reset = ("closes", "resets") if one else ("close", "reset")
    waves = f"after {n} round{'' if n == 1 else 's'} of waves of {each} that {close} and {each} that {reset}"
    if files.get("died"):
        return f"the server died during the waves of {each} that {close} and {reset} that followed"
    if grown is None:
        return f"{waves}, the server's descriptors could not be read"
    were = "was" if workers == 1 else "were"
    threads = f"{workers} thread{'' if workers == 1 else 's'} that {were} there before the clients and ran"
    if not workers:
        threads = "threads that were there before the clients and ran: none did, but the main one"
    if not grown:
        return f"{waves}, they are back to the baseline"
    if held_by_workers(files):
        return (
            f"{waves}, they are {_shown(grown)}, as before the last round (the waves reached every worker):"
            f" at most one connection to the log for each of the {threads}"
        )
    if not log_files_only(grown, db):
        return f"{waves}, they are {_shown(grown)}: not only the log's files"
    conns = int(grown.get(db, 0))
    if conns > workers:
        return f"{waves}, they are {_shown(grown)}: more connections to the log than the {threads}"
    if previous is not None and grown != previous:
        return f"{waves}, they are {_shown(grown)}, and were {_shown(previous)} before the last round: still growing"
    if not conns:
        return f"{waves}, they are {_shown(grown)}: the log's other files, with no connection to it"
    return f"{waves}, they are {_shown(grown)}: more files than one connection to the log each would hold"


# Descriptors that stay with no pool to explain them (``runner.next_clients``): a server may free a client's
# resources only when the next client comes (``multiprocessing`` joins the processes that ended, and closes their
# pipes, at each ``start()``; C's servers reap their children before each ``accept()``). The warm-up's client left
# such resources too, before the baseline was read, so one more client brings the server back to the baseline,
# and a second keeps it there; a leak keeps what it took (a leak on a path these clients do not take stays, one
# on their path grows). Would pass: nothing a leak could hide, as the server is back at its baseline.
NEXT_CLIENTS = (1, 1)  # the waves' sizes, one after the other


def held_until_next(later: dict[str, Any] | None) -> bool:
    """Whether ``later`` (the ``resources`` record's ``fds_next``) shows descriptors held only until the next client:
    back to the baseline after each wave."""
    if not later or later.get("died") or len(later.get("after") or []) != len(NEXT_CLIENTS):
        return False
    return all(grown == {} for grown in later["after"])


def next_in_words(later: dict[str, Any]) -> str:
    """What the clients of ``runner.next_clients`` showed, in words."""
    if later.get("died"):
        return "the server died while more clients came one by one"
    shown = [
        ("back to the baseline" if g == {} else _shown(g)) if g is not None else "unreadable" for g in later["after"]
    ]
    if not shown:
        return "no more client came"
    said = f"after one more client came and left they were {shown[0]}"
    return said + "".join(f", and after another {s}" for s in shown[1:])
