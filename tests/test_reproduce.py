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
from harness.plan import CLOSE, EXIT, PAUSE, RESET, SEND, ClientPlan, Op, Plan
from harness.target import ServerRun, Target, load_target, reference

# Minimal plans of the kind the shrinker ends with, one per defect the script can express.
PLANS = {
    "store_twice": Plan([ClientPlan([Op(SEND, f"m{i}") for i in range(4)])]),
    "drop_some": Plan([ClientPlan([Op(SEND, f"m{i}") for i in range(3)])]),
    "stores_exit_word": Plan([ClientPlan([Op(SEND, "hola"), Op(EXIT)])]),
    "raw_framing": Plan([ClientPlan([Op(SEND, f"burst {i}", pipelined=True) for i in range(5)])]),
    "empty_row_on_disconnect": Plan([ClientPlan([Op(SEND, "hola"), Op(PAUSE, seconds=0.1), Op(RESET)])]),
}
# The steps go on after a close: the third message (the one drop_some deletes) is on a third connection.
ACROSS = Plan(
    [ClientPlan([Op(SEND, "a"), Op(CLOSE), Op(SEND, "b"), Op(RESET), Op(SEND, "c"), Op(EXIT), Op(SEND, "d")])]
)


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
        [sys.executable, "-m", "harness", "run", "bad-input", "--target", str(target), "--seed", "3",
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
    assert "reproduce bad-input without the harness: python" in proc.stderr
    md = (tmp_path / "out" / "latest" / "report.md").read_text()
    assert md.index("Reproduce with:") < md.index("Replay:") < md.index("Scenarios × invariants")


def test_steps_after_a_close_reset_or_exit_still_run(tmp_path: Path) -> None:
    m = mutant("drop_some")
    script = reproduce.write(ACROSS, m.target(), tmp_path, m.defect)
    assert script is not None
    broken = run_script(script, m.target(), tmp_path / "mutant")
    assert broken.returncode == 1 and "was acknowledged but is not in the log" in broken.stdout, broken.stdout
    assert broken.stdout.count("acknowledged\n") == 4  # a, b, c and d, each on a connection of its own
    assert run_script(script, reference(), tmp_path / "reference").returncode == 0


def test_no_server_is_exit_2_not_a_defect(tmp_path: Path) -> None:
    script = reproduce.write(PLANS["drop_some"], reference(), tmp_path, "x")
    assert script is not None
    srv = ServerRun(reference(), tmp_path / "gone").start()  # a log to read, then nobody listening
    srv.stop()
    proc = subprocess.run(
        [sys.executable, "-I", str(script), "--port", str(srv.port), "--db", str(srv.db_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "could not run the steps" in proc.stderr, proc.stdout + proc.stderr


def pfo1_target(tmp_path: Path, mode: str) -> Target:
    """The hostile pfo1-style server (``tests/hostile``): polite, or storing HTML in front of every message."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_hostile import target_file

    return load_target(target_file(tmp_path, mode))


def test_a_pfo1_server_with_its_own_ack_and_stripped_text(tmp_path: Path) -> None:
    plan = Plan([ClientPlan([Op(SEND, "  spaced  "), Op(SEND, "ñandú 😀"), Op(CLOSE), Op(SEND, "after")])])
    polite = pfo1_target(tmp_path, "polite")
    script = reproduce.write(plan, polite, tmp_path, "stored text differs")
    assert script is not None
    fine = run_script(script, polite, tmp_path / "polite")
    assert fine.returncode == 0, fine.stdout + fine.stderr
    html = pfo1_target(tmp_path, "html")
    broken = run_script(script, html, tmp_path / "html")
    assert broken.returncode == 1 and "stored" in broken.stdout, broken.stdout


def test_a_docstring_the_server_wrote_cannot_break_the_script(tmp_path: Path) -> None:
    script = reproduce.write(PLANS["drop_some"], reference(), tmp_path, 'evil \\N{x} """ \x1b[31m \\')
    assert script is not None
    compile(script.read_text(), str(script), "exec")
