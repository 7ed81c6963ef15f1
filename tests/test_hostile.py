"""Hostile servers (``tests/hostile/hostile.py``): a clear verdict in time, bounded memory, no leftovers, a safe report.

A server under test is untrusted code. Each mode of the hostile server misbehaves in one way; the
harness, run as a user runs it, must end with the verdict and the evidence the mode deserves,
within a deadline, its own memory bounded, no process of the server left, and a report that
escapes whatever HTML the server wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import wait_for

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "hostile" / "hostile.py"
DEADLINE = 150.0  # seconds for one scenario against any of them
MAX_RSS_MB = 200  # the harness's own peak memory, whatever the server sends

# Runs the command line in this interpreter and reports the harness's own peak RSS on stderr. Linux's
# ru_maxrss keeps the forking parent's (a pytest worker that ran a 1,000-client burst: 241 MB before the
# harness did anything); the high-water mark in /proc/self/status is this program's alone.
MEASURED = (
    "import resource, sys\n"
    "from harness.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "try:\n"
    "    peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
    "except (OSError, StopIteration):\n"
    "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print(f'maxrss-mb {peak // 1024}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)

slow = pytest.mark.slow
CASES = [
    # mode, verdict, anomaly kinds that must be among those reported, text that must be in the notes
    pytest.param("flood", "invalid", {"unexpected-reply"}, "", id="endless-stream", marks=slow),
    pytest.param("bigline", "invalid", {"unexpected-reply"}, "", id="100-MB-line", marks=slow),
    pytest.param("noread", "invalid", {"unanswered"}, "", id="never-reads", marks=slow),
    pytest.param("noanswer", "invalid", {"unanswered"}, "", id="never-answers", marks=slow),
    pytest.param("forker", "invalid", {"unclean-shutdown"}, "", id="child-ignores-sigterm"),
    pytest.param("escaper", "invalid", {"unclean-shutdown"}, "", id="child-leaves-the-group"),
    pytest.param("html", "invalid", {"corrupted"}, "", id="html-and-script"),
    pytest.param("garbage_db", "invalid", set(), "file is not a database", id="log-overwritten"),
    pytest.param("delete_db", "invalid", {"lost"}, "", id="log-deleted"),
    pytest.param("exit_now", "unknown", set(), "exited with code 3 before it was ready", id="exits-at-once"),
    pytest.param("traceback", "unknown", set(), "RuntimeError: hostile server", id="traceback-at-start"),
    pytest.param("slow_start", "unknown", set(), "not ready within 10 s", id="30-s-start"),
]


def target_file(tmp_path: Path, mode: str) -> Path:
    """A target file for one mode: pfo1-style, port 0, stopped by SIGTERM."""
    path = tmp_path / f"hostile-{mode}.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            name = "hostile-{mode}"
            command = ["{{python}}", "{HOSTILE}", "--mode", "{mode}", "--port", "{{port}}", "--db", "{{db}}"]
            protocol = "pfo1"
            stop = "sigterm"
            stop_methods = ["sigterm"]
            start_timeout = 10
            [log]
            table = "mensajes"
            id = "id"
            content = "contenido"
            ts = "fecha_envio"
            [pfo1]
            ack = 'Mensaje recibido: (?P<ts>\\d{{4}}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d)'
            framing = "newline"
            """
        )
    )
    return path


def leftovers(marker: Path) -> list[str]:
    """Processes whose command line names ``marker`` (the servers of this test), other than this one."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(marker) in cmdline:  # (the harness that ran them has ended; pytest's own path names no test)
                found.append(f"{proc.name}: {cmdline[:200]}")
    return found


@pytest.mark.timeout(DEADLINE + 90)
@pytest.mark.parametrize(("mode", "verdict", "kinds", "note"), CASES)
def test_a_hostile_server_gets_a_clear_verdict_and_leaves_nothing_behind(
    tmp_path: Path, mode: str, verdict: str, kinds: set[str], note: str
) -> None:
    target = target_file(tmp_path, mode)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", MEASURED, "run", "pipelined", "--target", str(target), "--seed", "1",
         "--report-dir", str(tmp_path / "out"), "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE + 60,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert seconds < DEADLINE, f"{mode}: {seconds:.0f} s"
    assert proc.returncode == {"invalid": 1, "unknown": 2}[verdict], proc.stderr[-2000:]
    rss = int(proc.stderr.rsplit("maxrss-mb ", 1)[1].split()[0])
    assert rss < MAX_RSS_MB, f"the harness grew to {rss} MB"
    wait_for(lambda: not leftovers(tmp_path), timeout=10, what=f"no process of the {mode} server left")

    out = tmp_path / "out" / "latest"
    report = json.loads((out / "report.json").read_text())
    [scenario] = report["scenarios"]
    assert scenario["verdict"] == verdict
    assert kinds <= set(scenario.get("anomaly_kinds") or {}), scenario.get("anomaly_kinds")
    assert note in " ".join(scenario.get("notes") or []), scenario.get("notes")
    for name in ("report.html", "report.md"):  # whatever the server wrote, no markup of its own gets through
        text = (out / name).read_text()
        assert "<script>alert" not in text and "<img src=x" not in text and "chat-harness" in text
    if mode == "slow_start":
        assert seconds < 30  # the harness gave up at the start timeout, not when the server woke
