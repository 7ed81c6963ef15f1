"""The history file holds every record once, whether lines were batched, flushed, merged or closed."""

from __future__ import annotations

import datetime
import math
import uuid
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


def test_every_value_a_server_can_make_us_record_loads_back_as_it_was(tmp_path: Path) -> None:
    """What orjson refuses (an integer beyond 64 bits, a lone surrogate) falls back to json; nothing is lost."""
    values: list[dict[str, object]] = [
        {"token": "r.1.1", "row": 2**70, "ts": "x", "dup": False},  # a hostile server's row id
        {"line": "caf\u00e9 \u2028 \x00 \ud800 end"},  # non-ASCII, a line separator, NUL, a lone surrogate
        {"relays": [[1, 2, "r.1.2"]], "nested": {"1": None, "k": [True, 0.5, -3]}, "waited": 1e-05},
        {1: "an int key", "ok": "text"},
        {"ack_timeout": math.inf, "waits": [1.5, -math.inf], "none": None},  # orjson would write them as null
    ]
    h = History(tmp_path / "history.jsonl")
    for v in values:
        h.append(INFO, "odd", 1, 2, dict(v))
    h.close()
    loaded = load(tmp_path / "history.jsonl")
    assert [r.value for r in loaded] == [{str(k): v for k, v in v.items()} for v in values]
    assert [(r.index, r.time, r.f) for r in loaded] == [(r.index, r.time, r.f) for r in h.records]


def test_a_key_only_orjsons_non_string_option_writes_is_written_by_it(tmp_path: Path) -> None:
    """Lines are encoded without that option (it costs 45 %); a key json cannot write (a UUID, a date) still goes."""
    h = History(tmp_path / "history.jsonl")
    h.append(INFO, "odd", 1, 2, {"by": {uuid.UUID(int=9): 1, datetime.date(2026, 11, 30): [2]}, "ok": 3})
    h.close()
    [loaded] = load(tmp_path / "history.jsonl")
    assert loaded.value == {"by": {str(uuid.UUID(int=9)): 1, "2026-11-30": [2]}, "ok": 3}


def test_a_non_finite_float_in_the_middle_of_a_batch_is_written_by_json_and_the_rest_as_they_were(
    tmp_path: Path,
) -> None:
    h = History(tmp_path / "history.jsonl")
    fill(h, PENDING_LINES // 2 - 1)  # lines with a null (a None ts) and without, around the odd one
    h.append(INFO, "odd", 1, 2, {"waited": math.nan, "ack_timeout": math.inf})
    fill(h, PENDING_LINES // 2 + 3)
    h.close()
    loaded = load(tmp_path / "history.jsonl")
    odd = next(r for r in loaded if r.f == "odd")
    assert math.isnan(odd.value["waited"]) and odd.value["ack_timeout"] == math.inf
    assert [r for r in loaded if r.f != "odd"] == [r for r in h.records if r.f != "odd"]


def test_a_record_json_cannot_mend_keeps_orjsons_line_and_costs_its_batch_nothing(tmp_path: Path) -> None:
    h = History(tmp_path / "history.jsonl")
    fill(h, PENDING_LINES // 2)
    h.append(INFO, "odd", 1, 2, {"id": uuid.UUID(int=7), "waited": math.nan})  # json cannot write a UUID
    fill(h, PENDING_LINES // 2, client=1)
    h.close()  # raises nothing, here or in any other caller
    loaded = load(tmp_path / "history.jsonl")
    assert [r for r in loaded if r.f != "odd"] == [r for r in h.records if r.f != "odd"]
    assert next(r for r in loaded if r.f == "odd").value == {"id": str(uuid.UUID(int=7)), "waited": None}
