"""The failures database: a run keeps its failing plans; ``replay --failures`` says STILL FAILING, then FIXED."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "tests" / "mutants"

BROKEN = ["{python}", "drop_some.py", "--host", "{host}", "--port", "{port}", "--db", "{db}"]
FIXED = ["{python}", "-m", "chat.server", "--host", "{host}", "--port", "{port}", "--db", "{db}"]


def target(path: Path, command: list[str]) -> Path:
    """A student's target file: the same name whatever server it runs."""
    quoted = ", ".join(f'"{c}"' for c in command)
    path.write_text(
        textwrap.dedent(
            f"""
            name = "my-server"
            command = [{quoted}]
            cwd = "{MUTANTS}"
            stop_methods = ["sigterm", "sigint", "stdin-newline"]
            [log]
            ts = "fecha_envio"
            """
        )
    )
    return path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True, timeout=240
    )


def test_failing_plans_are_kept_and_rerun_until_fixed(tmp_path: Path) -> None:
    toml = target(tmp_path / "my-server.toml", BROKEN)
    proc = cli("run", "bad-input", "crash-recovery", "server-down", "--target", str(toml), "--seed", "2", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    kept = sorted(p.name.split("-")[0] for p in (tmp_path / ".chat-harness" / "failures" / "my-server").glob("*.json"))
    assert kept == ["bad", "crash"]  # server-down failed too, but a plan does not describe all it does
    assert "replay --failures --target" in proc.stderr

    proc = cli("replay", "--failures", "--target", str(toml), cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.count("STILL FAILING") == 2, proc.stderr
    assert "lost" in proc.stderr

    target(toml, FIXED)  # the student fixed the server
    proc = cli("replay", "--failures", "--target", str(toml), "--keep", "2", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr.count("FIXED") == 2 and "1/2" in proc.stderr, proc.stderr
    proc = cli("replay", "--failures", "--target", str(toml), "--keep", "2", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr.count("dropped") == 2, proc.stderr
    assert not list((tmp_path / ".chat-harness" / "failures" / "my-server").glob("*.json"))
    proc = cli("replay", "--failures", "--target", str(toml), cwd=tmp_path)
    assert proc.returncode == 0 and "no kept failures" in proc.stdout


def test_replay_without_a_plan_or_failures_is_a_clear_error(tmp_path: Path) -> None:
    proc = cli("replay", cwd=tmp_path)
    assert proc.returncode == 2 and "replay needs a plan file, or --failures" in proc.stderr
