"""``bench/harness_scale.py``: its smoke run, and how it counts the clients connected at one moment."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from harness.history import INFO, OK, History

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "harness_scale.py"


def bench() -> ModuleType:
    """The benchmark as a module (``bench/`` is not a package; it imports ``load`` from beside it)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("harness_scale", SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPT.parent))


class Outcome:
    """The part of a RunOutcome that ``peak_connected`` reads."""

    def __init__(self, records: list[Any]) -> None:
        self.records = records


def history(*connections: tuple[int, float, float]) -> list[Any]:
    """A run record at 1.0, then for each (client, greeted at, began to end at) its connect ok and conn-end."""
    h = History(start=0.0)
    records = [h.append(INFO, "run", -1, -1, {})]
    records[0].time = 1.0
    for conn, (client, greeted, ended) in enumerate(connections):
        ok = h.append(OK, "connect", client, conn, {"port": 40000 + conn})
        ok.time = greeted
        end = h.append(INFO, "conn-end", client, conn, {"reason": "client-close", "end": ended})
        end.time = ended + 0.5  # the record comes after the connection began to end
        records += [ok, end]
    return records


def test_peak_counts_overlapping_connections_only() -> None:
    peak_connected = bench().peak_connected
    # 0 and 1 overlap from 2.0 to 3.0; 2 connects when 1 begins to end (an end comes first at the same time)
    records = history((0, 1.5, 4.0), (1, 2.0, 3.0), (2, 3.0, 5.0))
    assert peak_connected(Outcome(records), 3) == (2, 1.0)
    # one after the other: never more than one at once, however many clients connected
    records = history((0, 1.5, 2.0), (1, 2.0, 2.5), (2, 2.5, 3.0))
    assert peak_connected(Outcome(records), 3)[0] == 1
    # clients beyond the plan's (a probe) do not count
    records = history((0, 1.5, 4.0), (5, 2.0, 3.0))
    assert peak_connected(Outcome(records), 1)[0] == 1


@pytest.mark.slow
def test_smoke_run_connects_every_client_at_once() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--clients",
            "50",
            "--messages",
            "2",
            "--load-clients",
            "5",
            "--load-messages",
            "10",
            "--seconds",
            "0.5",
            "--passes",
            "1",
            "--spawn-rate",
            "100",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scale = next(line for line in proc.stdout.splitlines() if line.startswith("scale:"))
    assert "50 of them connected at once" in scale and "verdict valid" in scale, scale
    assert proc.stdout.splitlines()[-1].startswith("ratio harness/raw = "), proc.stdout
