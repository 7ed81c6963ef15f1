"""Findings: the distinct defects behind a run's anomalies and failed checks, by root cause.

One defect shows up in many scenarios (a server that ignores SIGINT makes every stop "unclean"), and
one defect causes others (a server that serves one client at a time leaves messages unanswered).
Each anomaly and each failed check is mapped to a finding — a plain-language sentence, the usual
fix — and marked as the consequence of another finding when that one explains it. The report opens
with the findings, most serious first; each scenario then points at them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    """A kind of defect."""

    id: str
    rank: int  # the report lists findings by rank, most serious first
    title: str
    hint: str
    explains: frozenset[str] = frozenset()  # findings whose symptoms this one causes (in the same scenario)
    everywhere: bool = False  # it causes them in every scenario, not only where it was seen


def _k(id: str, rank: int, title: str, hint: str, *explains: str, everywhere: bool = False) -> Kind:
    return Kind(id, rank, title, hint, frozenset(explains), everywhere)


CATALOGUE = {
    k.id: k
    for k in (
        _k(
            "ack-failed-insert",
            10,
            "The server acknowledges a message even when storing it failed (the database was locked longer "
            "than the server waits): the client believes a message is saved that is not.",
            "Send the ack only after a successful commit; on an error answer with an error line "
            "(and wait longer for a lock: sqlite3.connect(db, timeout=...)).",
            "loses-acked",
            "ack-before-commit",
        ),
        _k(
            "ack-before-commit",
            11,
            "The server acknowledges before the row is committed: a crash at the wrong moment loses messages "
            "the clients were told are saved.",
            "Commit first, then send the ack.",
            "loses-acked",
        ),
        _k(
            "loses-acked",
            12,
            "Messages the server acknowledged are missing from the log.",
            "Ack only after the commit.",
        ),
        _k(
            "duplicates",
            13,
            "Some messages are stored twice.",
            "Store each received message once (a resend with the same id must not make a new row).",
        ),
        _k("corrupts", 14, "Stored text differs from what the client sent.", "Store the received text as it is."),
        _k(
            "mangles-cut-characters",
            15,
            "A multibyte character (ñ, é, 😀) cut at the edge of a read is stored as U+FFFD, or dropped: the server "
            "decodes each read on its own.",
            "Decode complete messages only (after framing), or with an incremental UTF-8 decoder.",
        ),
        _k(
            "drops-invalid-bytes",
            16,
            "The server silently drops bytes that are not valid UTF-8 (decode(errors='ignore')) and stores and "
            "acknowledges what is left: the client is told a text was saved that is not the one it sent.",
            "Refuse a message that is not valid UTF-8 with an error line, or store it with errors='replace' "
            "so the damage shows.",
        ),
        _k(
            "truncates",
            16,
            "The server stores only part of some messages (the rest is nowhere in the log).",
            "Read the whole message before storing it: frame messages (a newline, or a length first) and read "
            "until one is complete.",
        ),
        _k(
            "junk-rows",
            16,
            "The log holds rows no client sent (empty, or invented).",
            "Store only complete, non-empty messages.",
        ),
        _k(
            "stores-half-messages",
            17,
            "A message cut off by a disconnect is stored anyway (sometimes even acknowledged).",
            "Store a message only once it is complete (its newline arrived).",
        ),
        _k(
            "reorders",
            18,
            "One client's messages are stored out of order.",
            "Store a connection's messages in the order they arrive.",
        ),
        _k(
            "no-framing",
            20,
            "The server has no message framing: it stores whatever one recv() returns, so messages sent back to "
            "back end up in one row, and a long message (or one TCP delivers in pieces) in several.",
            "End each message with a newline and split the stream on it, keeping a partial line for the next read "
            "(or send each message's length first).",
            "stray-acks",
            "mangles-cut-characters",
            "junk-rows",
        ),
        _k(
            "splits-at-cr",
            21,
            "The server ends a message at a lone carriage return (\\r), not only at the newline, so one message is "
            "stored as two: a socket file opened in text mode translates every \\r into a line end.",
            "Open the socket file with newline='\\n' (conn.makefile('r', encoding='utf-8', newline='\\n')), or split "
            "the received bytes on b'\\n' yourself.",
        ),
        _k(
            "serial",
            25,
            "The server serves one client at a time: a second client gets no answer while the first one is connected.",
            "Serve each connection in its own thread: threading.Thread(target=handle, args=(conn,), daemon=True).start().",
            "unanswered",
            "slow-under-load",
            "small-backlog",
            "silent-on-db-error",
            "slow-for-others",
            "not-live",
            everywhere=True,
        ),
        _k(
            "thread-crash",
            26,
            "An exception kills a thread (or an asyncio task) of the server, a traceback on stderr: when it was "
            "serving a client, that client gets no answer.",
            "Catch errors inside the client handler; decode with errors handled "
            "(data.decode('utf-8', errors='replace')) or refuse the message with an error line.",
            "unanswered",
            "slow-under-load",
            "truncates",
        ),
        _k(
            "crashes",
            27,
            "The server process died during the run.",
            "Catch the exception that killed it (see its traceback).",
            "not-live",
            "unanswered",
            "slow-under-load",
            "loses-acked",
            "drops-idle-clients",
        ),
        _k(
            "not-live",
            28,
            "After the run, a new client was not served.",
            "Keep accepting connections whatever happens to one client.",
            "unanswered",
            "slow-under-load",
            "leaks",  # a stuck server's threads, the probe's among them, are still there when counted
        ),
        _k(
            "silent-on-db-error",
            24,
            "When storing fails (the database is locked), the server neither stores nor answers the message: "
            "the client is left waiting.",
            "Catch the database error and answer with an error line (or wait longer: sqlite3.connect(db, timeout=...)).",
        ),
        _k(
            "small-backlog",
            29,
            "Under a burst of connections the server's listen queue overflows: the kernel completes some "
            "connections the server then does not accept in time, so their messages get no answer.",
            "Listen with a larger backlog (server.listen(socket.SOMAXCONN), or at least the number of clients "
            "expected at once) and keep the accept loop doing nothing but accept.",
        ),
        _k(
            "slow-under-load",
            29,
            "Under load the server answers so slowly that some answers come after the clients' ack timeout (or never).",
            "Keep each message's work short under contention: SQLite lets one writer in at a time, so many "
            "connections or processes writing at once queue for its lock; write from one connection under a lock, "
            "or from one writer thread, and keep any busy timeout well under the clients' patience.",
        ),
        _k(
            "unanswered",
            29,
            "Some messages get no answer at all: no ack and no error.",
            "Answer every message, with the ack or an error line.",
        ),
        _k(
            "unexpected-reply",
            30,
            "The server answers with text that is neither an ack nor an error as the target describes them.",
            "Fix the reply, or the target file's ack/error patterns (chat-harness doctor shows what the server said).",
        ),
        _k(
            "stray-acks",
            31,
            "The server sends acks nobody waits for (more acks than messages).",
            "Send one answer per message.",
        ),
        _k(
            "stop-keeps-serving",
            35,
            "After the stop signal the server kept answering: the signal ended the main thread, but the client "
            "threads (not daemon threads) kept the process alive.",
            "Make client threads daemon threads, or close the client sockets and join the threads when stopping.",
            "stop-hangs",
            everywhere=True,
        ),
        _k(
            "stop-hangs",
            36,
            "A stop (Ctrl+C, SIGTERM) does not end the server in time: it had to be killed.",
            "On a stop, close the listening socket and the client sockets, then join the threads with a timeout.",
        ),
        _k(
            "ctrl-c-traceback",
            37,
            "Ctrl+C ends the server with an unhandled KeyboardInterrupt traceback (and a non-zero exit code).",
            "Catch KeyboardInterrupt around the accept loop, close the sockets, and exit 0.",
            "unclean-stop",
        ),
        _k(
            "stop-leaves-processes",
            39,
            "The server exits on a stop but leaves processes of its own running (the children it forked for its "
            "clients), which go on serving them and writing to the log after the server has stopped.",
            "On a stop, signal every child (os.kill(pid, signal.SIGTERM)) and wait for each (os.waitpid) before exiting.",
        ),
        _k(
            "unclean-stop",
            38,
            "A stop is not clean (exit code, a traceback, the log or the port left in a bad state).",
            "Close everything and exit 0 on a stop (a runtime that exits 128 + the signal after a clean stop, as a "
            "JVM does: declare stop_exit_codes in the target file).",
        ),
        _k(
            "no-reuseaddr",
            40,
            "An immediate restart fails: the connections the server just closed keep its port in TIME_WAIT "
            "(about a minute) and it does not set SO_REUSEADDR.",
            "server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1) before bind().",
        ),
        _k(
            "busy-port",
            41,
            "A second instance on a busy port does not fail clearly.",
            "Catch the bind error, print one line naming the port, exit non-zero.",
        ),
        _k(
            "client-down",
            42,
            "The client program does not handle a stopped server clearly.",
            "Catch ConnectionRefusedError, print one line, exit non-zero.",
        ),
        _k(
            "exit-word",
            43,
            "The exit word does not end the session cleanly (or is stored as a message).",
            "Check for the exit word before storing; close the session after it.",
        ),
        _k(
            "relay",
            44,
            "Messages are not relayed to the other clients correctly.",
            "Relay every stored message to every other member, in log order, under a lock.",
        ),
        _k(
            "slow-for-others",
            45,
            "One slow client slows down everyone else.",
            "Never block on one client while holding a shared lock; give each client its own writer.",
        ),
        _k(
            "drops-idle-clients",
            40,
            "The server hangs up on a client that is silent for a few seconds, as long as a person takes to type "
            "a message: the user is cut off mid-conversation, and the next message goes nowhere.",
            "Do not put a short timeout on client sockets (conn.settimeout(5)): wait without one, or for minutes, "
            "and catch the timeout only to close a client that has really gone, saying why first.",
        ),
        _k(
            "limits",
            46,
            "A limit (connections, idle time) is not enforced politely.",
            "Answer with an error line, then close.",
        ),
        _k(
            "leaks",
            50,
            "Threads, file descriptors or ended child processes (zombies) stay after the clients leave.",
            "Close what you open: sockets, and sqlite3 connections (a with-block only commits); reap the children"
            " you fork (os.waitpid, or a SIGCHLD handler).",
        ),
        _k("other", 90, "Other scenario checks failed.", "See the scenario."),
    )
}

ANOMALY = {
    "duplicate": "duplicates",
    "merged": "no-framing",
    "split": "no-framing",
    "empty-row": "junk-rows",
    "phantom": "junk-rows",
    "exit-word-stored": "exit-word",
    "reordered": "reorders",
    "stray-ack": "stray-acks",
    "error-but-stored": "corrupts",
    "server-crashed": "crashes",
    "not-live": "not-live",
    "thread-crash": "thread-crash",
    "unanswered": "unanswered",
    "unexpected-reply": "unexpected-reply",
    "serves-after-stop": "stop-keeps-serving",
    "resource-leak": "leaks",
    "corrupt-log": "unclean-stop",
    "missed-relay": "relay",
    "duplicate-relay": "relay",
    "relay-order": "relay",
    "phantom-relay": "relay",
    "relay-mismatch": "relay",
    "relay-to-sender": "relay",
    "ack-before-commit": "ack-before-commit",
    "ack-mismatch": "corrupts",
}

CHECKS = (  # (part of a check's name, scenario or "", finding)
    ("a second client is answered while the first", "", "serial"),
    ("started again on the same port and log at once", "", "no-reuseaddr"),
    ("binds the same port at once", "", "no-reuseaddr"),
    ("still stored", "", "loses-acked"),
    ("a second instance", "", "busy-port"),
    ("non-zero exit code", "port-in-use", "busy-port"),
    ("naming the port", "", "busy-port"),
    ("without a traceback", "port-in-use", "busy-port"),
    ("the client", "server-down", "client-down"),
    ("retrying client", "", "client-down"),
    ("exit word", "", "exit-word"),
    ("ack latency", "", "slow-for-others"),
    ("between messages stay connected", "", "drops-idle-clients"),
    ("newcomers", "", "limits"),
    ("idle clients", "", "limits"),
    ("every message gets an answer", "db-locked", "silent-on-db-error"),
    ("every message is acked", "", "unanswered"),
    ("every bad line gets an answer", "", "unanswered"),
    ("every message gets an answer", "", "unanswered"),
    ("acknowledged", "", "unanswered"),
    ("answered", "", "unanswered"),
    ("stops cleanly", "", "unclean-stop"),
)


def of_anomaly(a: dict[str, Any], scenario: str) -> str:
    """The finding an anomaly belongs to."""
    kind, text = a["kind"], a["message"]
    if kind == "lost":
        return {"db-locked": "ack-failed-insert", "crash-recovery": "ack-before-commit"}.get(scenario, "loses-acked")
    if kind == "split" and "carriage return" in text:
        return "splits-at-cr"
    if kind == "corrupted":
        return "mangles-cut-characters" if "U+FFFD" in text else "corrupts"
    if kind == "partial-row":
        if "not valid UTF-8" in text:
            return "drops-invalid-bytes"
        if "cut at the edge of a read" in text:
            return "mangles-cut-characters"
        cut = text.startswith("half of") or "cut off mid-message by a fault" in text
        return "stores-half-messages" if cut else "truncates"
    if kind == "stray-ack" and "half of message" in text:
        return "stores-half-messages"
    if kind == "unanswered" and "listen queue was full" in text:
        return "small-backlog"
    if kind == "unanswered" and "too slow under this load" in text:
        return "slow-under-load"
    if kind == "unclean-shutdown":
        if "KeyboardInterrupt" in text:
            return "ctrl-c-traceback"
        if "port unusable" in text:
            return "no-reuseaddr"  # its closing connections hold the port: only SO_REUSEADDR lets a server bind
        if "process(es) of its own running" in text:
            return "stop-leaves-processes"
        return "stop-hangs" if "was killed" in text else "unclean-stop"
    return ANOMALY.get(kind, "other")


def of_check(name: str, scenario: str) -> str:
    """The finding a failed scenario check belongs to."""
    for part, where, finding in CHECKS:
        if part in name and where in ("", scenario):
            return finding
    return "other"


def rank(finding: str | None) -> int:
    """How serious a finding is (lower first); an unknown one last."""
    kind = CATALOGUE.get(finding or "")
    return kind.rank if kind is not None else 1 << 30


def annotate(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every anomaly and failed check of ``scenarios`` its finding (and ``consequence_of``); return the findings."""
    marks: list[tuple[dict[str, Any], str, str]] = []  # (item, finding, scenario)
    for s in scenarios:
        for a in s.get("anomalies", []):
            marks.append((a, of_anomaly(a, s["name"]), s["name"]))
        for c in s.get("checks", []):
            if c["status"] == "fail":
                marks.append((c, of_check(c["name"], s["name"]), s["name"]))
    present = {f for _, f, _ in marks}
    here: dict[str, set[str]] = defaultdict(set)  # scenario -> findings seen in it
    for _, f, scenario in marks:
        here[scenario].add(f)
    found: dict[str, dict[str, Any]] = {}
    consequences: dict[str, set[str]] = defaultdict(set)
    for item, f, scenario in marks:
        item["finding"] = f
        # A cause seen in the same scenario, or one that acts everywhere (the most serious first).
        candidates = [
            g for g in present if f in CATALOGUE[g].explains and (g in here[scenario] or CATALOGUE[g].everywhere)
        ]
        candidates.sort(key=lambda g: (g not in here[scenario], CATALOGUE[g].rank))
        cause = candidates[0] if candidates else None
        if cause is not None:
            item["consequence_of"] = cause
            consequences[cause].add(scenario)
            continue
        entry = found.setdefault(f, {"id": f, "scenarios": [], "count": 0, "evidence": []})
        entry["count"] += 1
        if scenario not in entry["scenarios"]:
            entry["scenarios"].append(scenario)
        if len(entry["evidence"]) < 3:
            detail = item.get("message") or f"{item['name']}: {item.get('detail', '')}"
            entry["evidence"].append(f"{scenario}: {detail}"[:400])
    out = []
    for f, entry in sorted(found.items(), key=lambda kv: CATALOGUE[kv[0]].rank):
        kind = CATALOGUE[f]
        also = sorted(consequences.get(f, set()) - set(entry["scenarios"]))
        out.append({**entry, "title": kind.title, "hint": kind.hint, "also_in": also})
    return out
