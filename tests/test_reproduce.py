"""``reproduce.py``: a standalone script (standard library only) that shows a defect without the harness."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mutants.zoo import mutant

from harness import reproduce
from harness.plan import EXIT, PAUSE, RESET, SEND, ClientPlan, Op, Plan
from harness.target import ServerRun, Target, reference

# Minimal plans of the kind the shrinker ends with, one per defect the script can express.
PLANS = {
    "store_twice": Plan([ClientPlan([Op(SEND, f"m{i}") for i in range(4)])]),
    "drop_some": Plan([ClientPlan([Op(SEND, f"m{i}") for i in range(3)])]),
    "stores_exit_word": Plan([ClientPlan([Op(SEND, "hola"), Op(EXIT)])]),
    "raw_framing": Plan([ClientPlan([Op(SEND, f"burst {i}", pipelined=True) for i in range(5)])]),
    "empty_row_on_disconnect": Plan([ClientPlan([Op(SEND, "hola"), Op(PAUSE, seconds=0.1), Op(RESET)])]),
}


def run_script(script: Path, target: Target, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Start ``target``, run the script against it as a reader would, stop the server."""
    srv = ServerRun(target, workdir).start()
    try:
        return subprocess.run(
            [sys.executable, "-I", str(script), "--port", str(srv.port), "--db", str(srv.db_path)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=workdir,
        )
    finally:
        srv.stop()


def test_the_script_needs_nothing_but_the_standard_library(tmp_path: Path) -> None:
    script = reproduce.write(PLANS["drop_some"], reference(), tmp_path, "acked messages missing")
    assert script is not None
    tree = ast.parse(script.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names), imported
    with_faults = Plan(PLANS["drop_some"].clients, faults=[{"at": 0.1, "action": "down"}, {"at": 0.2, "action": "up"}])
    assert reproduce.write(with_faults, reference(), tmp_path, "x") is None  # a fault needs the harness's proxy


@pytest.mark.parametrize("name", sorted(PLANS))
def test_the_script_shows_the_defect_in_the_mutant_and_not_in_the_reference(tmp_path: Path, name: str) -> None:
    m = mutant(name)
    script = reproduce.write(PLANS[name], m.target(), tmp_path, m.defect)
    assert script is not None
    broken = run_script(script, m.target(), tmp_path / "mutant")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "expected:" in broken.stdout and "found:" in broken.stdout
    fine = run_script(script, reference(), tmp_path / "reference")
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert "the defect did not show" in fine.stdout


def test_a_failing_run_writes_the_script_and_the_report_leads_with_it(tmp_path: Path) -> None:
    target = mutant("store_twice").target_file
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "pipelined", "--target", str(target), "--seed", "3",
         "--report-dir", "out"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    report = json.loads((tmp_path / "out" / "latest" / "report.json").read_text())
    [failure] = report["failures"]
    command = failure["reproduce"]
    assert command.startswith("python /") and command.endswith("--port 5000 --db chat.db")
    script = Path(command.split()[1])
    assert script.name == "reproduce.py" and (script.parent / "plan.json").exists()
    assert "reproduce pipelined without the harness: python" in proc.stderr
    md = (tmp_path / "out" / "latest" / "report.md").read_text()
    assert md.index("Reproduce with:") < md.index("Replay:") < md.index("Scenarios × invariants")
