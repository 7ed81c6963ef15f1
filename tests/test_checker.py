"""The checker against fabricated histories and real SQLite files: every anomaly kind is caught, clean runs pass."""

from __future__ import annotations

import sqlite3
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from harness import findings
from harness.checker import CheckResult, check, merge, merge_notes
from harness.checks.answers import HELD_LATE
from harness.history import FAIL, INFO, INVOKE, OK, History, load, write
from harness.index import RunIndex
from harness.log import LogReader, Row
from harness.target import LogMapping
from harness.tracebacks import parse

RUN = "abc123"


class Fab:
    """Fabricates a history and a log the way a run would produce them."""

    def __init__(self, tmp: Path, relay: str = "others", **settings: Any) -> None:
        self.h = History(start=0.0)
        self.db = tmp / "log.db"
        self.conn = sqlite3.connect(self.db, isolation_level=None)
        self.conn.execute(
            "CREATE TABLE mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT, fecha_envio TEXT)"
        )
        self.h.add(INFO, "run", run_id=RUN, relay=relay, normalize="exact", baseline_id=0, db=str(self.db), **settings)
        self.t = 0.0

    def tick(self) -> float:
        self.t += 0.01
        return self.t

    def rec(self, type: str, f: str, client: int, conn: int, **value: Any) -> int:
        rec = self.h.add(type, f, client, conn, **value)
        rec.time = self.tick()
        return rec.index

    def store(self, content: str | None, ts: str = "T") -> int:
        cur = self.conn.execute("INSERT INTO mensajes (contenido, fecha_envio) VALUES (?, ?)", (content, ts))
        return int(cur.lastrowid or 0)

    def message(self, client: int, seq: int, body: str = "hola") -> tuple[str, str]:
        token = f"{RUN}.{client}.{seq}"
        return token, f"[{token}] {body}"

    def sent_acked_stored(self, client: int, seq: int, conn: int | None = None, body: str = "hola") -> tuple[str, int]:
        conn = client if conn is None else conn
        token, text = self.message(client, seq, body)
        self.rec(INVOKE, "send", client, conn, token=token, text=text)
        row = self.store(text)
        self.rec(OK, "send", client, conn, token=token, row=row, ts="T")
        return token, row

    def connected(self, client: int, conn: int) -> None:
        self.rec(INVOKE, "connect", client, conn)
        self.rec(OK, "connect", client, conn)

    def ended(self, client: int, conn: int, hello: float, relays: list[list[Any]], reason: str = "close") -> None:
        self.rec(INFO, "conn-end", client, conn, reason=reason, hello=hello, end=self.tick(), relays=relays)

    def relay_of(self, row: int) -> list[Any]:
        content = self.conn.execute("SELECT contenido FROM mensajes WHERE id = ?", (row,)).fetchone()[0]
        return [row, zlib.crc32(content.encode()), content[1 : content.index("]")]]

    def result(self) -> CheckResult:
        rows = LogReader(self.db, LogMapping(ts="fecha_envio")).rows_after(0)
        return check(self.h.records, rows)


def kinds(result: CheckResult) -> set[str]:
    return {a.kind for a in result.anomalies}


@pytest.fixture
def fab(tmp_path: Path) -> Fab:
    return Fab(tmp_path)


def test_a_clean_run_passes_with_relays_and_an_indeterminate_message(fab: Fab) -> None:
    fab.connected(0, 0)
    fab.connected(1, 1)
    hello = fab.t
    _, r1 = fab.sent_acked_stored(0, 1)
    _, r2 = fab.sent_acked_stored(0, 2)
    token, text = fab.message(0, 3)
    fab.rec(INVOKE, "send", 0, 0, token=token, text=text)
    fab.rec(INFO, "send", 0, 0, token=token, error="reset")
    fab.ended(1, 1, hello, [fab.relay_of(r1), fab.relay_of(r2)])
    result = fab.result()
    assert result.valid is True, result.summary()
    c = result.counts
    assert (c.sent, c.acked, c.stored, c.lost, c.indeterminate) == (3, 2, 2, 0, 1)
    assert result.invariants[7] == "pass"


def test_the_index_keeps_each_answer_of_a_message_and_settles_each_send_by_its_connection(fab: Fab) -> None:
    token, text = fab.message(1, 1)
    sent = fab.rec(INVOKE, "send", 1, 1, token=token, text=text)
    broke = fab.rec(INFO, "send", 1, 1, token=token, error="reset", end="reset")
    resent = fab.rec(INVOKE, "send", 1, 2, token=token, text=text, resend=True)
    refused = fab.rec(FAIL, "send", 1, 2, token=token, code="store", error="disk full")
    once, _ = fab.sent_acked_stored(2, 1)
    ix = RunIndex(fab.h.records, [])
    m, plain = ix.messages[token], ix.messages[once]
    assert ([r.index for r in m.infos], [r.index for r in m.fails], m.oks) == ([broke], [refused], [])
    on_first, on_second = ix.settled(token, 1), ix.settled(token, 2)
    assert on_first is not None and on_first.index == broke
    assert on_second is not None and on_second.index == refused
    assert m.evidence() == [sent, broke, resent, refused] and m.conns == {1, 2} and not m.one_conn
    assert not plain.fails and not plain.infos and plain.one_conn and len(plain.oks) == 1


def test_lost_ack(fab: Fab) -> None:
    token, text = fab.message(0, 1)
    fab.rec(INVOKE, "send", 0, 0, token=token, text=text)
    fab.rec(OK, "send", 0, 0, token=token, row=1)
    result = fab.result()
    assert result.valid is False and kinds(result) == {"lost"}
    [a] = result.anomalies
    assert a.invariant == 1 and a.token == token and a.history  # evidence: the history lines


def test_duplicate(fab: Fab) -> None:
    _token, row = fab.sent_acked_stored(0, 1)
    fab.store(fab.message(0, 1)[1])
    result = fab.result()
    assert kinds(result) == {"duplicate"} and result.counts.duplicated == 1
    assert [r["id"] for r in result.anomalies[0].rows] == [row, row + 1]


def test_an_indeterminate_message_stored_once_is_fine_but_twice_is_not(fab: Fab) -> None:
    token, text = fab.message(0, 1)
    fab.rec(INVOKE, "send", 0, 0, token=token, text=text)
    fab.rec(INFO, "send", 0, 0, token=token, error="reset")
    fab.store(text)
    assert fab.result().valid is True
    fab.store(text)
    assert kinds(fab.result()) == {"duplicate"}


def test_phantom_empty_and_exit_word_rows(fab: Fab) -> None:
    fab.sent_acked_stored(0, 1)
    fab.store("nobody sent this")
    fab.store("")
    fab.store(None)
    fab.store("éxito")
    fab.store(f"[{RUN}.9.9] a token no one used")
    result = fab.result()
    assert kinds(result) == {"phantom", "empty-row", "exit-word-stored"}
    assert sum(a.kind == "empty-row" for a in result.anomalies) == 2
    assert sum(a.kind == "phantom" for a in result.anomalies) == 2
    assert all(a.invariant == 3 for a in result.anomalies)


def test_a_message_stored_in_pieces_is_split_and_a_half_sent_one_partial(fab: Fab) -> None:
    token, text = fab.message(0, 1, body="a long message that gets cut")
    fab.rec(INVOKE, "send", 0, 0, token=token, text=text)
    fab.rec(OK, "send", 0, 0, token=token, row=1)
    fab.store(text[:20])  # one read
    fab.store(text[20:])  # the next: a server without framing stores each as a row
    half_token, half_text = fab.message(0, 2)
    fab.rec(INVOKE, "send", 0, 0, token=half_token, text=half_text, partial=5)
    fab.rec(INFO, "send", 0, 0, token=half_token, error="half sent, then reset")
    fab.store(half_text)
    result = fab.result()
    assert {(a.kind, a.token) for a in result.anomalies} == {("split", token), ("partial-row", half_token)}
    assert result.counts.lost == 0  # every byte is stored: framing, not loss


def test_the_ack_of_a_stored_half_message_belongs_to_that_defect_and_a_real_stray_ack_stays_one(fab: Fab) -> None:
    fab.sent_acked_stored(0, 1)
    half_token, half_text = fab.message(0, 2)
    fab.rec(INVOKE, "send", 0, 0, token=half_token, text=half_text[:12], partial=12)
    fab.store(half_text[:12])
    fab.rec(INFO, "stray-ack", 0, 0, line="OK", after=f"{RUN}.0.1")
    fab.rec(INFO, "stray-ack", 0, 0, line="OK", after=f"{RUN}.0.1")  # a second one: the server invented it
    result = fab.result()
    strays = [a.message for a in result.anomalies if a.kind == "stray-ack"]
    assert len(strays) == 2 and f"half of message {half_token}" in strays[0], strays
    assert "did not wait for" in strays[1]
    entry = {"name": "abrupt-disconnect", "anomalies": [asdict(a) for a in result.anomalies], "checks": []}
    ids = {f["id"] for f in findings.annotate([entry])}
    assert ids == {"stores-half-messages", "stray-acks"}


def test_truncated_rows_are_partial(fab: Fab) -> None:
    token, text = fab.message(0, 1, body="a long message that gets cut")
    fab.rec(INVOKE, "send", 0, 0, token=token, text=text)
    fab.rec(OK, "send", 0, 0, token=token, row=1)
    fab.store(text[:20])  # and the rest nowhere
    assert kinds(fab.result()) == {"partial-row"}


def test_merged_rows_are_reported_as_framing(fab: Fab) -> None:
    t1, x1 = fab.message(0, 1)
    t2, x2 = fab.message(0, 2)
    for t, x in ((t1, x1), (t2, x2)):
        fab.rec(INVOKE, "send", 0, 0, token=t, text=x)
    fab.store(x1 + x2)
    result = fab.result()
    assert "merged" in kinds(result)


def test_corrupted_content(fab: Fab) -> None:
    token, text = fab.message(0, 1, body="ñandú")
    fab.rec(INVOKE, "send", 0, 0, token=token, text=text)
    fab.rec(OK, "send", 0, 0, token=token, row=1, ts="T")
    fab.store(text.replace("ñ", "n"))
    result = fab.result()
    assert kinds(result) == {"corrupted"} and result.anomalies[0].invariant == 4


def test_reordering_on_one_connection(fab: Fab) -> None:
    t1, x1 = fab.message(0, 1)
    t2, x2 = fab.message(0, 2)
    fab.rec(INVOKE, "send", 0, 0, token=t1, text=x1)
    fab.rec(INVOKE, "send", 0, 0, token=t2, text=x2)
    fab.store(x2)
    fab.store(x1)
    result = fab.result()
    assert kinds(result) == {"reordered"} and result.anomalies[0].invariant == 5


def test_ack_before_commit_and_mismatched_acks(fab: Fab) -> None:
    token, row = fab.sent_acked_stored(0, 1)
    fab.rec(INFO, "audit", 0, 0, token=token, row=row, visible=False, acked_at=0.5, checked_at=0.501)
    t2, x2 = fab.message(0, 2)
    fab.rec(INVOKE, "send", 0, 0, token=t2, text=x2)
    stored = fab.store(x2, ts="T2")
    fab.rec(OK, "send", 0, 0, token=t2, row=stored + 10, ts="T3")
    result = fab.result()
    assert kinds(result) == {"ack-before-commit", "ack-mismatch"}
    assert all(a.invariant == 6 for a in result.anomalies)
    assert sum(a.kind == "ack-mismatch" for a in result.anomalies) == 2  # the row id and the timestamp


def test_refused_but_stored(fab: Fab) -> None:
    token, text = fab.message(0, 1)
    fab.rec(INVOKE, "send", 0, 0, token=token, text=text)
    fab.rec(FAIL, "send", 0, 0, token=token, code="store")
    fab.store(text)
    assert kinds(fab.result()) == {"error-but-stored"}


def test_delivery_missed_duplicated_out_of_order_and_echoed(fab: Fab) -> None:
    fab.connected(1, 1)
    hello = fab.t
    _, r1 = fab.sent_acked_stored(0, 1)
    _, r2 = fab.sent_acked_stored(0, 2)
    _t3, r3 = fab.sent_acked_stored(1, 1, conn=1)
    fab.ended(1, 1, hello, [fab.relay_of(r2), fab.relay_of(r2), fab.relay_of(r1), fab.relay_of(r3), [99, 0, None]])
    result = fab.result()
    assert {"duplicate-relay", "relay-order", "relay-to-sender", "phantom-relay"} <= kinds(result)
    missed = [a for a in result.anomalies if a.kind == "missed-relay"]
    assert missed == []  # r1 and r2 arrived (late or twice)
    # A message first sent on one connection and resent on another may reach the second.
    fab.connected(3, 3)
    token, text = fab.message(3, 1)
    fab.rec(INVOKE, "send", 3, 3, token=token, text=text)
    fab.rec(INFO, "send", 3, 3, token=token, error="reset by client")
    fab.connected(3, 4)
    hello4 = fab.t
    row = fab.store(text)
    fab.rec(INVOKE, "send", 3, 4, token=token, text=text, resend=True)
    fab.rec(OK, "send", 3, 4, token=token, row=row, dup=True)
    fab.ended(3, 4, hello4, [fab.relay_of(row)])
    assert sum(a.kind == "relay-to-sender" for a in fab.result().anomalies) == 1  # only connection 1's
    # a member that received nothing misses both
    fab.connected(2, 2)
    hello2 = fab.t
    _, r4 = fab.sent_acked_stored(0, 3)
    fab.ended(2, 2, hello2, [])
    result = fab.result()
    [m] = [a for a in result.anomalies if a.kind == "missed-relay" and a.client == 2]
    assert m.invariant == 7 and m.rows[0]["id"] == r4


def test_delivery_is_not_judged_for_connections_that_broke_or_messages_outside_their_window(fab: Fab) -> None:
    _, _r0 = fab.sent_acked_stored(0, 1)  # before the member joined
    fab.connected(1, 1)
    hello = fab.t
    fab.ended(1, 1, hello, [], reason="reset")  # broken: not judged
    fab.connected(2, 2)
    hello2 = fab.t
    fab.ended(2, 2, hello2, [])
    _, _r1 = fab.sent_acked_stored(0, 2)  # after it left
    assert fab.result().valid is True


def test_a_stop_that_ends_in_a_signal_names_it(fab: Fab) -> None:
    fab.rec(INFO, "shutdown", -1, -1, method="sigint", exit_code=-11, seconds=0.1, integrity="ok", rebind=True)
    [a] = fab.result().anomalies
    assert a.kind == "unclean-shutdown" and "code -11 (killed by SIGSEGV) after sigint" in a.message


def test_a_stop_ends_with_one_of_the_exit_codes_the_target_declares(fab: Fab) -> None:
    # A JVM runs its shutdown hooks on SIGINT and exits 130: clean, if its target file says so (stop_exit_codes).
    stop = {"method": "sigint", "seconds": 0.1, "integrity": "ok", "rebind": True}
    fab.rec(INFO, "shutdown", -1, -1, exit_code=130, exit_codes=[0, 130, 143], **stop)
    fab.rec(INFO, "shutdown", -1, -1, exit_code=0, exit_codes=[0, 130, 143], **stop)
    assert fab.result().valid is True
    fab.rec(INFO, "shutdown", -1, -1, exit_code=1, exit_codes=[0, 130, 143], **stop)
    fab.rec(INFO, "shutdown", -1, -1, exit_code=130, **stop)  # a record from before the key: 0 alone
    first, second = fab.result().anomalies
    assert "exited with code 1 after sigint" in first.message and "exited with code 130 after sigint" in second.message


def test_liveness_crash_shutdown_and_resources(fab: Fab) -> None:
    fab.rec(INVOKE, "probe", 5, -1)
    fab.rec(FAIL, "probe", 5, -1, error="connection refused")
    fab.rec(INFO, "server", -1, -1, event="crashed", exit_code=-9, stderr="Traceback ...")
    fab.rec(INFO, "resources", -1, -1, threads_before=3, threads_after=7, fds_before=10, fds_after=10, waited=5.0)
    fab.rec(
        INFO,
        "shutdown",
        -1,
        -1,
        method="sigterm",
        exit_code=1,
        seconds=3.5,
        deadline=2.0,
        integrity="ok",
        traceback="Traceback (most recent call last)",
        rebind=False,
        forced=False,
        timeout=5,
    )
    result = fab.result()
    assert kinds(result) == {"not-live", "server-crashed", "resource-leak", "unclean-shutdown"}
    assert result.invariants[8] == result.invariants[9] == result.invariants[10] == "fail"
    assert sum(a.kind == "unclean-shutdown" for a in result.anomalies) == 4


def resources_with_wave(fab: Fab, wave: dict[str, Any] | None, after: int = 34) -> None:
    counts = {"threads_before": 2, "threads_after": after, "fds_before": 9, "fds_after": 9, "waited": 5.0}
    fab.rec(INFO, "resources", -1, -1, **counts, reuse=wave)


def test_threads_a_second_wave_runs_on_are_a_pool_not_a_leak(fab: Fab) -> None:
    resources_with_wave(fab, {"stayed": 32, "clients": 32, "answered": 32, "restless": 0, "still": 0, "new": 0})
    result = fab.result()
    assert result.valid is True and result.invariants[10] == "pass", result.anomalies
    [note] = [n for n in result.notes if "threads" in n]
    assert "still 34" in note and "ran every one of the 32 that stayed, and no new thread: a pool, not a leak" in note


@pytest.mark.parametrize(
    ("wave", "words"),
    [
        ({"stayed": 32, "clients": 32, "answered": 32, "restless": 0, "still": 32}, "left 32 of the 32 that stayed"),
        ({"stayed": 32, "clients": 32, "answered": 30, "restless": 0, "still": 4}, "(30 answered) left 4 of the 32"),
        ({"stayed": 32, "clients": 32, "answered": 32, "restless": 1, "still": 0}, "1 of the 32 that stayed ran on"),
        ({"stayed": 1, "clients": 1, "answered": 1, "restless": 0, "still": 1}, "a second wave of 1 client (1"),
        ({"stayed": 2500, "clients": 0, "answered": 0, "restless": 0, "still": 0}, "more than the 2000"),
        ({"stayed": 40, "clients": 40, "answered": 40, "restless": 0, "still": 0, "new": 40}, "needed 40 new threads"),
        ({"stayed": 40, "clients": 40, "answered": 40, "restless": 0, "still": 0, "new": 3}, "needed 3 new threads"),
        ({"stayed": 40, "clients": 40, "answered": 40, "restless": 0, "still": 2, "helped": 1, "new": 0}, "left 2 of"),
        ({"stayed": 40, "clients": 40, "answered": 39, "restless": 0, "still": 0, "new": None}, "never all answered"),
        ({"stayed": 0, "clients": 0, "answered": 0, "restless": 0, "still": 0}, "could not be watched"),
        (None, "after they left"),  # no wave (an older history): judged by the count alone
    ],
)
def test_threads_that_stay_are_a_leak_unless_a_second_wave_runs_them_all(
    fab: Fab, wave: dict[str, Any] | None, words: str
) -> None:
    resources_with_wave(fab, wave)
    [a] = fab.result().anomalies
    assert a.kind == "resource-leak" and a.invariant == 10 and words in a.message, a.message


POOL = {"stayed": 32, "clients": 32, "answered": 32, "restless": 0, "still": 0, "new": 0}


@pytest.mark.parametrize(
    ("wave", "grown", "leak"),
    [
        (POOL, {"chat.db": 32}, False),  # one connection to the log per pool thread, after the waves
        (POOL, {"chat.db": 40}, True),  # more than one per thread: the waves' clients left theirs too
        (POOL, {"chat.db": 15}, True),  # fewer than the threads that served the wave: not theirs
        (POOL, {"chat.db": 32, "socket": 2}, True),
        ({**POOL, "still": 32}, {"chat.db": 32}, True),  # stuck threads: whatever they hold is a leak
        (POOL, None, True),  # the descriptors could not be read after the waves
    ],
)
def test_descriptors_a_pool_keeps_to_the_log_are_its_threads_connections_not_a_leak(
    fab: Fab, wave: dict[str, Any], grown: dict[str, int] | None, leak: bool
) -> None:
    counts = {"threads_before": 2, "threads_after": 34, "fds_before": 6, "fds_after": 38, "waited": 5.0}
    files = {"db": "chat.db", "stayed": 32, "grown": grown}
    fab.rec(INFO, "resources", -1, -1, **counts, fds_leaked="+32 chat.db", reuse=wave, fds_pool=files)
    result = fab.result()
    fds = [a for a in result.anomalies if "server fds" in a.message]
    if leak:
        assert len(fds) == 1 and "server fds: 6 before the clients, still 38" in fds[0].message, result.anomalies
        assert ("third of 32 clients that reset" in fds[0].message) == (not wave["still"])
    else:
        assert not result.anomalies and result.invariants[10] == "pass", result.anomalies
        [note] = [n for n in result.notes if "server fds" in n]
        assert note.endswith("for each pool thread that ran for the wave: a pool's connections, not a leak"), note


@pytest.mark.parametrize(
    ("rounds", "verdict"),
    [
        ([{"chat.db": 15}] * 2, "pass"),  # one per worker that ran, none added by the last round
        ([{"chat.db": 8}, {"chat.db": 14}, {"chat.db": 14}], "pass"),  # a server that serves few at once: 3 rounds
        ([{"chat.db": 49}], "leak"),  # more than the threads that ran: a leak on the close or reset path
        ([{"chat.db": 12}, {"chat.db": 13}], "leak"),  # still growing when the rounds ran out
        ([None], "leak"),  # the descriptors could not be read after the waves
        ([{}], "back"),  # back to the baseline during the waves
        ("died", "unknown"),  # the server died during the waves
    ],
)
def test_log_connections_that_stay_with_no_thread_are_a_pool_started_up_front_only_if_the_waves_stop_adding(
    fab: Fab, rounds: Any, verdict: str
) -> None:
    counts = {"threads_before": 18, "threads_after": 18, "fds_before": 6, "fds_after": 21, "waited": 5.0}
    files = {"db": "chat.db", "clients": 18, "workers": 16, "before": {"chat.db": 4}, "rounds": [{"chat.db": 15}]}
    files.update({"died": True} if rounds == "died" else {"rounds": rounds})
    fab.rec(INFO, "resources", -1, -1, **counts, fds_leaked="+15 chat.db", fds_pool=files)
    result = fab.result()
    fds = [a for a in result.anomalies if "server fds" in a.message]
    notes = [n for n in result.notes if "server fds" in n]
    if verdict == "leak":
        assert len(fds) == 1 and "waves of 18 clients that close and 18 clients that reset" in fds[0].message
        return
    assert not result.anomalies, result.anomalies
    assert result.invariants[10] == ("unknown" if verdict == "unknown" else "pass"), result.invariants
    [note] = notes
    assert note.endswith(
        {
            "pass": "16 threads that were there before the clients and ran: a pool's connections, not a leak",
            "back": "they are back to the baseline: not a leak",
            "unknown": "the server died during the waves of 18 clients that close and reset that followed",
        }[verdict]
    ), note


def test_an_unreadable_log_makes_the_verdict_unknown(fab: Fab) -> None:
    fab.sent_acked_stored(0, 1)
    result = check(fab.h.records, [], log_error="no database at /nowhere")
    assert result.valid is None and result.anomalies == []  # no claim of loss without the log
    assert result.invariants[1] == "unknown" and result.counts.acked == 1
    fab.rec(INVOKE, "probe", 5, -1)
    fab.rec(FAIL, "probe", 5, -1, error="connection refused")
    result = check(fab.h.records, [], log_error="no database at /nowhere")
    assert result.valid is False and kinds(result) == {"not-live"}


def test_history_round_trips_through_jsonl_and_bad_lines_are_named(fab: Fab, tmp_path: Path) -> None:
    fab.sent_acked_stored(0, 1, body="¿qué? 'quotes' \"double\"")
    path = tmp_path / "history.jsonl"
    write(fab.h.records, path)
    again = load(path)
    assert [r.to_json() for r in again] == [r.to_json() for r in fab.h.records]
    rows = LogReader(fab.db, LogMapping()).rows_after(0)
    assert check(again, rows).valid is True
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(ValueError, match=r"history.jsonl:\d+"):
        load(path)


def test_merge_keeps_the_worst(fab: Fab) -> None:
    fab.sent_acked_stored(0, 1)
    good = fab.result()
    bad = check(fab.h.records, [Row(1, "x")])
    merged = merge([good, bad])
    assert merged.valid is False and merged.counts.sent == 2
    assert merged.invariants[3] == "fail"


# -- faults, nemeses and answers ------------------------------------------------------------------------


def unanswered(fab: Fab, client: int, conn: int, seq: int, end: str, **sent: object) -> str:
    """A send on ``conn`` that is settled without an answer (``end``); return its token."""
    token, text = fab.message(client, seq)
    fab.rec(INVOKE, "send", client, conn, token=token, text=text, **sent)
    fab.rec(INFO, "send", client, conn, token=token, error=end, end=end)
    return token


def linked(fab: Fab, client: int, conn: int) -> float:
    """A connection through the fault proxy (its link named like the client's n-th connection)."""
    fab.rec(INVOKE, "connect", client, conn, link=f"{client}.1")
    fab.rec(OK, "connect", client, conn, link=f"{client}.1")
    return fab.t


def proxy_closes(fab: Fab, link: str, event: str, **fault: Any) -> None:
    """Fault ``f0`` (``fault``: its kind and settings) applies to ``link``, and the proxy closes that connection (``event``)."""
    kind = fault["kind"]
    fab.rec(INFO, "fault", -1, -1, event="add", window="f0", phase="start", label=kind, fault={"name": "f0", **fault})
    fab.rec(INFO, "fault-event", -1, -1, event="decision", link=link, fault="f0", kind=kind, applies=True)
    fab.rec(INFO, "fault-event", -1, -1, event=event, link=link, fault="f0", kind=kind)


def black_hole_closes(fab: Fab, link: str) -> None:
    """A downstream black hole on ``link`` that the proxy ends with a FIN (what the issue's plan does)."""
    proxy_closes(fab, link, "timeout-close", kind="timeout", direction="down", close_after=0.45)


def test_relays_a_fault_swallowed_are_not_held_against_the_server(fab: Fab) -> None:
    hello = linked(fab, 1, 1)
    black_hole_closes(fab, "1.1")
    fab.sent_acked_stored(0, 1)
    fab.ended(1, 1, hello, [], reason="client-close")  # the client saw a polite end: it was the proxy's FIN
    result = fab.result()
    assert result.valid is True, result.summary()
    assert result.not_judged[7] == {"fault": 1}
    assert "not judged" in result.summary()


def test_the_same_missed_relay_without_a_fault_is_an_anomaly(fab: Fab) -> None:
    hello = linked(fab, 1, 1)
    fab.sent_acked_stored(0, 1)
    fab.ended(1, 1, hello, [], reason="client-close")
    assert kinds(fab.result()) == {"missed-relay"}


def test_a_server_drop_with_a_reason_is_not_a_missed_relay(fab: Fab) -> None:
    fab.connected(1, 1)
    hello = fab.t
    fab.sent_acked_stored(0, 1)
    fab.rec(
        INFO, "conn-end", 1, 1, reason="server-error-close", hello=hello, end=fab.tick(), relays=[], errors=["slow"]
    )
    result = fab.result()
    assert result.valid is True and result.not_judged[7] == {"dropped by the server": 1}


def test_a_message_never_answered_on_an_untouched_connection_is_unanswered(fab: Fab) -> None:
    fab.connected(0, 0)
    unanswered(fab, 0, 0, 1, "ack-timeout")
    fab.ended(0, 0, 0.0, [], reason="ack-timeout")
    result = fab.result()
    assert kinds(result) == {"unanswered"} and result.anomalies[0].invariant == 11
    assert result.invariants[11] == "fail"


def test_an_unanswered_message_on_a_connection_that_took_a_syn_retry_to_open_blames_the_listen_queue(
    fab: Fab,
) -> None:
    fab.connected(0, 0)  # opened at once: its missing answer is plain "unanswered"
    unanswered(fab, 0, 0, 1, "ack-timeout")
    fab.ended(0, 0, 0.0, [], reason="ack-timeout")
    fab.rec(INVOKE, "connect", 1, 1)
    fab.t += 1.02  # the kernel dropped the SYN (the accept queue was full) and resent it a second later
    fab.rec(OK, "connect", 1, 1)
    unanswered(fab, 1, 1, 1, "ack-timeout")
    fab.ended(1, 1, 0.0, [], reason="ack-timeout")
    result = fab.result()
    assert kinds(result) == {"unanswered"}
    named = {a.client: findings.of_anomaly(asdict(a), "concurrent-burst") for a in result.anomalies}
    assert named == {0: "unanswered", 1: "small-backlog"}


def test_a_row_without_the_invalid_bytes_of_a_raw_message_is_named_as_such(fab: Fab) -> None:
    token, _ = fab.message(0, 1)
    fab.connected(0, 0)
    fab.rec(INVOKE, "send", 0, 0, token=token, text=f"[{token}] ok\ufffd", raw=b"ok\xff".hex())
    fab.store(f"[{token}] ok")  # decode(errors="ignore"): the invalid byte is gone, the rest acked
    fab.rec(OK, "send", 0, 0, token=token, row=None, ts="T")
    fab.ended(0, 0, 0.0, [], reason="client-close")
    result = fab.result()
    assert kinds(result) == {"partial-row"}, result.summary()
    assert findings.of_anomaly(asdict(result.anomalies[0]), "bad-input") == "drops-invalid-bytes"


def test_an_unanswered_message_a_fault_explains_is_not_judged(fab: Fab) -> None:
    linked(fab, 0, 0)
    black_hole_closes(fab, "0.1")
    unanswered(fab, 0, 0, 1, "server-close")
    fab.ended(0, 0, 0.0, [], reason="server-close")
    result = fab.result()
    assert result.valid is True and result.not_judged[11] == {"fault": 1}


def test_unanswered_with_a_reply_that_fits_nothing_is_an_unexpected_reply(fab: Fab) -> None:
    fab.connected(0, 0)
    token, text = fab.message(0, 1)
    fab.rec(INVOKE, "send", 0, 0, token=token, text=text)
    fab.rec(INFO, "unexpected-reply", 0, 0, line="Mensaje guardado", waiting=[token])
    fab.rec(INFO, "send", 0, 0, token=token, error="no answer within the ack timeout", end="ack-timeout")
    fab.ended(0, 0, 0.0, [], reason="ack-timeout")
    [a] = fab.result().anomalies
    assert a.kind == "unexpected-reply" and "Mensaje guardado" in a.message


def test_a_bad_line_may_be_answered_by_closing_the_connection(fab: Fab) -> None:
    fab.connected(0, 0)
    token = f"{RUN}.0.1"
    fab.rec(INVOKE, "send", 0, 0, token=token, text=f"[{token}] \ufffd", raw="ff")
    fab.rec(INFO, "send", 0, 0, token=token, error="server-close", end="server-close")
    fab.ended(0, 0, 0.0, [], reason="server-close")
    result = fab.result()
    assert result.valid is True and result.not_judged[11] == {"bad line answered by a close": 1}


def test_a_stop_that_kills_every_connection_explains_their_silence(fab: Fab) -> None:
    fab.connected(0, 0)
    fab.rec(INFO, "nemesis", -1, -1, event="stop", window="shutdown", phase="start", method="sigint")
    unanswered(fab, 0, 0, 1, "server-close")
    fab.ended(0, 0, 0.0, [], reason="server-close")
    result = fab.result()
    assert result.valid is True and result.not_judged[11] == {"nemesis": 1}


def test_thread_crashes_ctrl_c_tracebacks_and_a_stop_that_does_not_stop(fab: Fab) -> None:
    tb = {
        "thread": "Thread-3 (manejar)",
        "exception": "UnicodeDecodeError: 'utf-8' codec can't decode",
        "text": "",
        "interrupt": False,
    }
    fab.rec(INFO, "server-output", -1, -1, tracebacks=[tb, tb])
    stop = fab.tick()
    fab.connected(0, 0)
    for seq in range(3):
        fab.t += 2.0  # acks keep coming long after the stop
        fab.sent_acked_stored(0, seq + 1)
    ctrl_c = {"thread": "main", "exception": "KeyboardInterrupt", "text": "", "interrupt": True}
    fab.rec(
        INFO,
        "shutdown",
        -1,
        -1,
        method="sigint",
        exit_code=-9,
        seconds=5.0,
        forced=True,
        timeout=5.0,
        deadline=1.0,
        rebind=True,
        integrity="ok",
        tracebacks=[ctrl_c],
        began=stop,
    )
    result = fab.result()
    assert {"thread-crash", "unclean-shutdown", "serves-after-stop"} <= kinds(result)
    [crash] = [a for a in result.anomalies if a.kind == "thread-crash"]
    assert "2 times" in crash.message and "UnicodeDecodeError" in crash.message
    assert any("KeyboardInterrupt" in a.message for a in result.anomalies if a.kind == "unclean-shutdown")


def test_asyncio_counts_a_dead_client_coroutine_but_not_a_reset_it_kept_for_nobody(fab: Fab) -> None:
    recv = '  File "/usr/lib/python3.13/asyncio/selector_events.py", line 1005, in _read_ready__data_received\n'
    frames = 'Traceback (most recent call last):\n  File "/srv/servidor.py", line 36, in atender\n'
    died, kept = (
        parse(f"{head}\n{frames}{recv if exc.startswith('Connection') else ''}{exc}\n")[0].to_dict()
        for head, exc in [
            (
                "Unhandled exception in client_connected_cb\ntransport: <_SelectorSocketTransport closed fd=9>",
                "KeyError: 'x'",
            ),
            (
                "Future exception was never retrieved\nfuture: <Future finished exception=ConnectionResetError(104)>",
                "ConnectionResetError: [Errno 104] Connection reset by peer",
            ),
        ]
    )
    fab.rec(INFO, "server-output", -1, -1, tracebacks=[kept])
    fab.connected(0, 0)
    fab.sent_acked_stored(0, 1)
    shutdown = {"method": "sigint", "exit_code": 0, "seconds": 0.04, "forced": False, "timeout": 5.0, "deadline": 5.0}
    fab.rec(INFO, "shutdown", -1, -1, **shutdown, rebind=True, integrity="ok", tracebacks=[kept], began=fab.tick())
    clean = fab.result()
    assert clean.valid is True and any("not the server's code" in n for n in clean.notes), clean.notes
    fab.rec(INFO, "server-output", -1, -1, tracebacks=[died])
    [crash] = fab.result().anomalies
    assert crash.kind == "thread-crash" and "client's coroutine" in crash.message and "atender" in crash.message
    assert "dropping its client" in crash.message


def test_a_client_coroutine_reported_dead_only_when_freed_at_exit_is_a_thread_crash(fab: Fab) -> None:
    [late] = parse(  # Python 3.10 prints it when the garbage collector frees the task: at exit, during the stop
        "Task exception was never retrieved\nfuture: <Task finished name='Task-6' coro=<atender() done>>\n"
        'Traceback (most recent call last):\n  File "/srv/servidor.py", line 8, in atender\n'
        "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte\n"
    )
    fab.connected(0, 0)
    fab.sent_acked_stored(0, 1)
    shutdown = {"method": "sigint", "exit_code": 0, "seconds": 0.04, "forced": False, "timeout": 5.0, "deadline": 5.0}
    fab.rec(INFO, "shutdown", -1, -1, **shutdown, rebind=True, integrity="ok", tracebacks=[late.to_dict()])
    [crash] = fab.result().anomalies
    assert late.late and crash.kind == "thread-crash" and "asyncio task (atender)" in crash.message
    assert "freed it, at the stop" in crash.message and "dropping" not in crash.message  # which client, unknown


def test_a_stop_long_after_the_answer_was_due_does_not_excuse_its_absence(fab: Fab) -> None:
    fab.connected(0, 0)
    ta, xa = fab.message(0, 1)
    tb, xb = fab.message(0, 2)
    fab.rec(INVOKE, "send", 0, 0, token=ta, text=xa)
    fab.rec(INVOKE, "send", 0, 0, token=tb, text=xb)
    row = fab.store(xb)
    fab.rec(OK, "send", 0, 0, token=tb, row=row, ts="T")  # B answered, A skipped: the server dropped A
    fab.t = 30.0
    fab.rec(INFO, "nemesis", -1, -1, event="kill", window="crash", phase="start", method="SIGKILL")
    fab.rec(INFO, "send", 0, 0, token=ta, error="connection closed by the server", end="server-close")
    fab.ended(0, 0, 0.0, [], reason="server-close")
    assert kinds(fab.result()) == {"unanswered"}


def test_notes_of_several_runs_are_merged_and_counts_summed() -> None:
    notes = [
        "3 piece(s) of server text matched neither pattern, e.g. 'Chau!\\n'",
        "log rotated",
        "4 piece(s) of server text matched neither pattern, e.g. 'Hasta luego'",
        "log rotated",
        "2 client(s) gave up their plan",
    ]
    assert merge_notes(notes) == [
        "7 piece(s) of server text matched neither pattern, e.g. 'Chau!\\n'",
        "log rotated",
        "2 client(s) gave up their plan",
    ]


def sent_through_proxy(fab: Fab, body: str) -> tuple[str, str, float]:
    """Client 0's first message on its connection through the fault proxy: its token, text, and when it connected."""
    hello = linked(fab, 0, 0)
    token, text = fab.message(0, 1, body=body)
    fab.rec(INVOKE, "send", 0, 0, token=token, text=text)
    return token, text, hello


def closed_by_server(fab: Fab, token: str, hello: float) -> None:
    """The connection ends with ``token`` unanswered: the server (or the proxy) closed it."""
    fab.rec(INFO, "send", 0, 0, token=token, error="server-close", end="server-close")
    fab.ended(0, 0, hello, [], reason="server-close")


@pytest.mark.parametrize(
    ("direction", "through", "kept", "named"),
    [
        ("up", 20, 20, "stores-half-messages"),  # the log holds exactly what got through: the fault cut it
        ("both", 20, 20, "stores-half-messages"),
        ("", 20, 20, "stores-half-messages"),  # no direction recorded: both, the default
        (None, 20, 20, "truncates"),  # no fault: the server kept part of a whole line
        ("down", 20, 20, "truncates"),  # a limit on the replies cuts no message
        ("up", 30, 20, "truncates"),  # 30 bytes got through and the server kept 20
        ("up", 10_000, 20, "truncates"),  # the whole line got through before the close
    ],
)
def test_the_start_of_a_message_a_fault_cut_off_is_named_as_stored_half_not_truncated(
    fab: Fab, direction: str | None, through: int, kept: int, named: str
) -> None:
    hello = linked(fab, 0, 0)
    fab.sent_acked_stored(0, 1)
    token, text = fab.message(0, 2, body="a message the proxy cuts")
    fab.rec(INVOKE, "send", 0, 0, token=token, text=text)
    first, second = RunIndex(fab.h.records, []).sends()  # the proxy counts the bytes the client wrote
    limit = len(first.data) + second.offset + through
    if direction is not None:
        where = {"direction": direction} if direction else {}  # a fault's history record leaves defaults out
        proxy_closes(fab, "0.1", "limit-close", kind="limit_data", limit=limit, **where)
    row = fab.store(text[:kept])  # the line the server had when the stream ended, stored at its EOF
    closed_by_server(fab, token, hello)
    result = fab.result()
    assert kinds(result) == {"partial-row"}, result.summary()
    [a] = result.anomalies
    if named == "stores-half-messages":
        assert a.message == (
            f"message {token} was cut off mid-message by a fault (limit_data 'f0', {limit} bytes upstream) that then"
            f" closed its connection, and row(s) {row} store exactly the part that got through"
        )
    else:
        assert a.message == f"the log holds only part of message {token}"
    assert findings.of_anomaly(asdict(a), "random") == named


@pytest.mark.parametrize("decode", ["replace", "ignore"])
def test_a_fault_cut_inside_a_character_is_still_the_fault(fab: Fab, decode: str) -> None:
    token, _, hello = sent_through_proxy(fab, "año €uro")
    [sent] = RunIndex(fab.h.records, []).sends()
    cut = sent.data.index("€".encode()) + 1  # one byte of the three
    proxy_closes(fab, "0.1", "limit-close", kind="limit_data", direction="up", limit=cut)
    fab.store(sent.data[sent.offset : cut].decode("utf-8", errors=decode))  # the server's way with the cut character
    closed_by_server(fab, token, hello)
    result = fab.result()
    assert [findings.of_anomaly(asdict(a), "random") for a in result.anomalies] == ["stores-half-messages"], (
        result.anomalies
    )


@pytest.mark.parametrize("limit", ["abc", 12.5, True, [1], None, float("nan")])
def test_a_strange_limit_in_the_history_is_no_cut_and_no_crash(fab: Fab, limit: object) -> None:
    token, text, hello = sent_through_proxy(fab, "a message the proxy cuts")
    proxy_closes(fab, "0.1", "limit-close", kind="limit_data", direction="up", limit=limit)
    fab.store(text[:20])
    closed_by_server(fab, token, hello)
    assert [a.message for a in fab.result().anomalies] == [f"the log holds only part of message {token}"]


def test_a_missing_last_character_is_the_fault_only_when_the_cut_fell_inside_it(fab: Fab) -> None:
    token, _, hello = sent_through_proxy(fab, "ends in \ufffd and goes on")
    [sent] = RunIndex(fab.h.records, []).sends()
    cut = sent.data.index("\ufffd".encode()) + 3  # right after the whole character
    proxy_closes(fab, "0.1", "limit-close", kind="limit_data", direction="up", limit=cut)
    fab.store(sent.data[sent.offset : cut].decode()[:-1])  # the server dropped a whole character that got through
    closed_by_server(fab, token, hello)
    assert [a.message for a in fab.result().anomalies] == [f"the log holds only part of message {token}"]


@pytest.mark.parametrize(
    ("took", "chatter", "named"),
    [
        (9.2, False, "slow-under-load"),
        (4.0, False, "unanswered"),
        (9.2, True, "slow-under-load"),  # a broadcast the target does not describe came meanwhile: still late
        (4.0, True, "unexpected-reply"),  # answers were quick: the text may have been meant as the answer
    ],
)
def test_a_missing_answer_in_a_run_whose_answers_came_near_the_ack_timeout_may_only_be_late(
    fab: Fab, took: float, chatter: bool, named: str
) -> None:
    fab.connected(0, 0)
    token, text = fab.message(0, 1)
    fab.rec(INVOKE, "send", 0, 0, token=token, text=text)
    row = fab.store(text)
    fab.t += took  # the server answered this one after waiting for the log's write lock
    fab.rec(OK, "send", 0, 0, token=token, row=row, ts="T")
    fab.ended(0, 0, 0.0, [], reason="client-close")
    fab.connected(1, 1)
    late, said = fab.message(1, 1)
    fab.rec(INVOKE, "send", 1, 1, token=late, text=said)
    if chatter:
        fab.rec(INFO, "unexpected-reply", 1, 1, line="[127.0.0.1] hola\n", waiting=[late])
    fab.rec(INFO, "send", 1, 1, token=late, error="ack-timeout", end="ack-timeout")
    fab.ended(1, 1, 0.0, [], reason="ack-timeout")
    result = fab.result()
    [a] = result.anomalies
    assert a.kind == ("unexpected-reply" if named == "unexpected-reply" else "unanswered") and a.token == late
    assert findings.of_anomaly(asdict(a), "concurrent-burst") == named
    if named == "slow-under-load":
        assert a.message.endswith(
            "; other answers in this run took up to 9.2 s of the 10 s ack timeout, so this one may have come after"
            " it: the server is too slow under this load"
        ), a.message


@pytest.mark.parametrize(
    ("found_at", "named"),
    [
        (None, "slow-under-load"),  # a read past the wait's end still did not find its row: stored after it
        (10.05, "unanswered"),  # the read past the wait's end found it: stored in time, yet never answered
        ("no reads", "unanswered"),  # nothing says when it was stored
    ],
)
def test_a_missing_answer_whose_row_was_stored_after_the_wait_ended_may_only_be_late(
    fab: Fab, found_at: float | str | None, named: str
) -> None:
    fab.connected(0, 0)
    _, first = fab.sent_acked_stored(0, 1)  # answered at once: the run's answers were quick
    late, text = fab.message(0, 2)
    fab.rec(INVOKE, "send", 0, 0, token=late, text=text)
    sent = fab.t
    if found_at != "no reads":
        fab.rec(INFO, "audit", 1, 1, token="x", visible=True, max_id=first, max_id_at=sent + 5.0)
    fab.t = sent + 10.0
    fab.rec(INFO, "send", 0, 0, token=late, error="ack-timeout", end="ack-timeout")
    fab.ended(0, 0, 0.0, [], reason="ack-timeout")
    if found_at is None:  # the auditor read the log's largest id 10.05 s after the send: not this row yet
        fab.rec(INFO, "audit", 1, 1, token="y", visible=True, max_id=first, max_id_at=sent + 10.05)
    row = fab.store(text)
    if isinstance(found_at, float):
        fab.rec(INFO, "audit", 1, 1, token="y", visible=True, max_id=row, max_id_at=sent + found_at)
    [a] = fab.result().anomalies
    assert a.kind == "unanswered" and a.token == late
    assert findings.of_anomaly(asdict(a), "black-hole") == named
    if named == "slow-under-load":
        assert a.message.endswith(
            f"; the server stored it only after the client had stopped waiting (row {row} was not in the log yet"
            " 10.05 s after the message was sent, past the 10 s ack timeout), so this one may have come after it:"
            " the server is too slow under this load"
        ), a.message


@pytest.mark.parametrize(
    ("held_to", "found_at", "judged"),
    [
        (10.0, 2.0, False),  # not in the log 1.05 s after the send, in it at 2 s: late, not missing
        (10.0, 0.5, True),  # stored within the 1 s wait, yet not answered: unanswered
        (10.0, 12.0, True),  # stored only after the 10 s the server is held to: unanswered (slow)
        (None, 2.0, True),  # a run whose wait is the one the server is held to: unanswered (slow)
    ],
)
def test_a_missing_answer_stored_after_a_wait_the_scenario_shortened_is_late_not_missing(
    tmp_path: Path, held_to: float | None, found_at: float, judged: bool
) -> None:
    fab = Fab(tmp_path, relay="none", ack_timeout=1.0, held_to=held_to)
    fab.connected(0, 0)
    _, first = fab.sent_acked_stored(0, 1)
    late, text = fab.message(0, 2)
    fab.rec(INVOKE, "send", 0, 0, token=late, text=text)
    sent = fab.t
    fab.t = sent + 1.0
    fab.rec(INFO, "send", 0, 0, token=late, error="ack-timeout", end="ack-timeout")
    fab.ended(0, 0, 0.0, [], reason="ack-timeout")
    row = fab.store(text)
    reads = [(first, 1.05), (row, found_at)] if found_at > 1.0 else [(row, found_at), (row, 1.05)]
    for top, at in reads:
        fab.rec(INFO, "log-read", -1, -1, max_id=top, max_id_at=sent + at)
    result = fab.result()
    if judged:
        [a] = result.anomalies
        assert a.kind == "unanswered" and a.token == late
    else:
        assert result.valid is True and result.not_judged[11] == {HELD_LATE: 1}, result.anomalies
        assert any("were stored only after it: late, not missing, for a server held to 10 s" in n for n in result.notes)


def test_a_stop_that_leaves_its_children_running_is_unclean(fab: Fab) -> None:
    fab.rec(INFO, "shutdown", -1, -1, method="sigint", exit_code=0, seconds=0.2, left_running=3, integrity="ok")
    [a] = fab.result().anomalies
    assert a.kind == "unclean-shutdown" and "left 3 process(es) of its own running" in a.message
    assert findings.of_anomaly(asdict(a), "restart") == "stop-leaves-processes"


@pytest.mark.parametrize(
    ("before", "after", "again", "leak"),
    [
        (0, 0, None, False),  # reaped at once (a SIGCHLD handler)
        (1, 1, None, False),  # the warm-up's zombie, still there: nothing grew
        (0, 12, 1, False),  # reaped when one more client came (C's waitpid before accept); its own is left
        (0, 12, 13, True),  # never reaped
        (1, 3, 3, True),  # one more than that client's own
        (0, 12, None, False),  # not counted again (the server died: invariant 8's)
    ],
)
def test_zombies_that_one_more_client_does_not_clear_are_a_leak(
    fab: Fab, before: int, after: int, again: int | None, leak: bool
) -> None:
    counts = {"threads_before": 2, "threads_after": 2, "fds_before": 6, "fds_after": 6, "waited": 5.0}
    zombies = {"zombies_before": before, "zombies_after": after, "zombies_again": again}
    fab.rec(INFO, "resources", -1, -1, **counts, **zombies)
    result = fab.result()
    if not leak:
        assert not result.anomalies and result.invariants[10] == "pass", result.anomalies
        return
    [a] = result.anomalies
    assert a.kind == "resource-leak" and "never reaped (zombies)" in a.message and f"still {again}" in a.message
    assert findings.of_anomaly(asdict(a), "abrupt-disconnect") == "leaks"


def test_resources_recorded_before_zombies_were_counted_still_pass(fab: Fab) -> None:
    counts = {"threads_before": 2, "threads_after": 2, "fds_before": 6, "fds_after": 6, "waited": 5.0}
    fab.rec(INFO, "resources", -1, -1, **counts)
    assert fab.result().invariants[10] == "pass"


@pytest.mark.parametrize(
    ("later", "verdict"),
    [
        ({"clients": [1, 1], "after": [{}, {}], "zombies": [0, 0]}, "pass"),
        ({"clients": [1, 1], "after": [{"pipe": 2}, {"pipe": 2}], "zombies": [0, 0]}, "leak"),
        ({"clients": [1, 1], "after": [{"pipe": 3}, {"pipe": 4}], "zombies": [0, 0]}, "leak"),
        ({"clients": [1, 1], "after": [], "zombies": [], "died": True}, "unknown"),
        (None, "leak"),  # recorded before the next clients came
    ],
)
def test_descriptors_that_one_more_client_releases_are_not_a_leak(
    fab: Fab, later: dict[str, Any] | None, verdict: str
) -> None:
    counts = {"threads_before": 2, "threads_after": 2, "fds_before": 6, "fds_after": 8, "waited": 5.0}
    fab.rec(INFO, "resources", -1, -1, **counts, fds_leaked="+2 pipe", fds_next=later)
    result = fab.result()
    if verdict == "leak":
        [a] = result.anomalies
        assert a.kind == "resource-leak" and a.message.startswith("server fds: 6 before the clients, still 8")
        assert ("after one more client came and left they were +" in a.message) is (later is not None)
        return
    assert not result.anomalies and result.invariants[10] == verdict, result.invariants
    [note] = [n for n in result.notes if "server fds" in n]
    assert note.endswith(
        "held until the next client comes, not a leak"
        if verdict == "pass"
        else "the server died while more clients came one by one"
    ), note
