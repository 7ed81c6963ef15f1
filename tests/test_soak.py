"""The soak benchmark's smoke run: every row of ``bench/soak.py --quick`` meets its goal (CI keeps the figures true)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_quick_soak_meets_every_goal() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("ok ", "MISS"))]
    assert len(rows) == 6 and all(line.startswith("ok ") for line in rows), proc.stdout
