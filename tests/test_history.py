"""The history file holds every record once, whether lines were batched, flushed, merged or closed."""

from __future__ import annotations

from pathlib import Path

from harness.history import INFO, INVOKE, OK, PENDING_LINES, History, Record, load


def fill(h: History, n: int, client: int = 0) -> None:
    for i in range(n):
        h.add(INVOKE, "send", client, 1, token=f"t.{client}.{i}", text='é "quoted"\n', resend=False)
        h.append(OK, "send", client, 1, {"token": f"t.{client}.{i}", "row": i, "ts": None, "dup": False})


def test_a_flush_writes_every_record_once_across_batches(tmp_path: Path) -> None:
    h = History(tmp_path / "history.jsonl")
    fill(h, PENDING_LINES + 7)  # two full batches and part of a third
    h.flush()
    assert load(tmp_path / "history.jsonl") == h.records
    fill(h, 3, client=1)
    h.close()
    on_disk = load(tmp_path / "history.jsonl")
    assert on_disk == h.records and len(on_disk) == 2 * (PENDING_LINES + 10)
    assert [r.index for r in on_disk] == list(range(len(on_disk)))


def test_a_merge_rewrites_the_file_without_pending_lines_twice(tmp_path: Path) -> None:
    h = History(tmp_path / "history.jsonl", start=0.0)
    fill(h, 5)  # pending, not yet written
    shard = [Record(0, 0.0, INFO, "worker-event", 3, -1, {"n": k}) for k in range(3)]
    h.merge(shard)
    h.add(INFO, "after")
    h.close()
    on_disk = load(tmp_path / "history.jsonl")
    assert on_disk == h.records and len(on_disk) == 5 * 2 + 3 + 1
