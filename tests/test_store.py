"""The SQLite log on real files: schema, WAL, idempotency, failures, the writer thread."""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import datetime
from pathlib import Path

import pytest

from chat.store import NewMessage, Rejected, Store, Stored, StoreError, Writer


def msg(text: str, cid: str | None = None, ip: str = "127.0.0.1") -> NewMessage:
    return NewMessage(text, ip, 40000, f"{ip}:40000", cid)


def test_schema_wal_and_iso_timestamps(tmp_path: Path) -> None:
    store = Store(tmp_path / "chat.db")
    [out] = store.insert_many([msg("hola")])
    store.close()
    assert isinstance(out, Stored) and out.id == 1
    with sqlite3.connect(tmp_path / "chat.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        cols = [r[1] for r in conn.execute("PRAGMA table_info(mensajes)")]
        row = conn.execute("SELECT contenido, fecha_envio, ip_cliente FROM mensajes").fetchone()
    assert cols[:4] == ["id", "contenido", "fecha_envio", "ip_cliente"]
    assert {"puerto_cliente", "remitente", "id_cliente"} <= set(cols)
    assert row[0] == "hola" and row[2] == "127.0.0.1"
    assert datetime.fromisoformat(row[1]).tzinfo is not None


def test_known_client_id_returns_the_existing_row(tmp_path: Path) -> None:
    store = Store(tmp_path / "chat.db")
    first = store.insert_many([msg("a", "c1"), msg("b", "c2")])
    again = store.insert_many([msg("a", "c1"), msg("a", "c1", ip="10.0.0.2"), msg("z", "c2")])
    assert isinstance(first[0], Stored) and isinstance(again[0], Stored)
    assert again[0].id == first[0].id and again[0].duplicate
    assert isinstance(again[1], Stored) and not again[1].duplicate  # same cid, other client
    assert isinstance(again[2], Rejected) and again[2].code == "id-conflict"
    assert [r.contenido for r in store.recent(10)] == ["a", "b", "a"]
    store.close()


def test_upgrades_an_assignment_style_table(tmp_path: Path) -> None:
    db = tmp_path / "pfo1.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT,"
            " fecha_envio TEXT, ip_cliente TEXT)"
        )
        conn.execute("INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES ('old', 'x', '1.2.3.4')")
    conn.close()
    store = Store(db)
    store.insert_many([msg("new", "k")])
    assert [r.contenido for r in store.recent(5)] == ["old", "new"]
    store.close()


@pytest.mark.parametrize(
    "case", ["missing-dir", "parent-is-a-file", "is-a-directory", "not-a-database", "read-only-dir", "wrong-table"]
)
def test_unusable_database_gives_a_clear_error(tmp_path: Path, case: str) -> None:
    if case == "missing-dir":
        path = tmp_path / "nope" / "chat.db"
    elif case == "parent-is-a-file":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "chat.db"
    elif case == "is-a-directory":
        path = tmp_path
    elif case == "not-a-database":
        path = tmp_path / "chat.db"
        path.write_bytes(b"this is not sqlite" * 100)
    elif case == "read-only-dir":
        if os.geteuid() == 0:
            pytest.skip("root ignores directory permissions")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        path = ro / "chat.db"
    else:
        path = tmp_path / "chat.db"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE mensajes (texto TEXT)")
        conn.close()
    with pytest.raises(StoreError) as err:
        Store(path)
    assert str(path) in str(err.value)


def test_write_failure_is_reported_not_raised(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    store = Store(db, busy_timeout=0.1)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        [out] = store.insert_many([msg("x")])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert isinstance(out, Rejected) and out.code == "store"
    [ok] = store.insert_many([msg("x")])
    assert isinstance(ok, Stored)
    store.close()


def test_writer_batches_and_publishes_in_submit_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "chat.db")
    seen: list[tuple[object, int]] = []
    batches: list[int] = []
    done = threading.Event()
    n = 2000

    def publish(results):  # type: ignore[no-untyped-def]
        batches.append(len(results))
        for tag, _m, outcome in results:
            assert isinstance(outcome, Stored)
            seen.append((tag, outcome.id))
        if len(seen) == n:
            done.set()

    writer = Writer(store, publish)
    writer.start()
    threads = [
        threading.Thread(target=lambda k=k: [writer.submit((k, i), msg(f"{k}-{i}"), 5) for i in range(n // 4)])
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert done.wait(10)
    assert writer.stop(5)
    store.close()
    assert [rid for _, rid in seen] == list(range(1, n + 1))  # ids in publish order
    for k in range(4):  # each submitter's messages in its own order
        mine = [tag for tag, _ in seen if tag[0] == k]  # type: ignore[index]
        assert mine == sorted(mine)
    assert max(batches) > 1  # concurrency produced group commits
