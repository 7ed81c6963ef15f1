"""The harness tests the server it started, never another program that took its port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness import ports
from harness.plan import SEND, ClientPlan, Op, Plan
from harness.runner import run_plan
from harness.target import TargetError, load_target

ROOT = Path(__file__).resolve().parent.parent

# A "server" that never listens itself: a detached process (another session, not its child any more)
# runs the reference server on the port the harness gave it, with a log of its own somewhere else.
# To the harness that is exactly another program taking the port before its server could bind it.
IMPOSTOR = textwrap.dedent(
    """
    import os, subprocess, sys, time
    port, db, pidfile = sys.argv[1], sys.argv[2], sys.argv[3]
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            other = subprocess.Popen([sys.executable, "-m", "chat.server", "--port", port, "--db", db + ".other.db"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            with open(pidfile, "a") as f:
                f.write(f"{other.pid}\\n")
            os._exit(0)
        os._exit(0)
    print("starting", flush=True)
    time.sleep(600)
    """
)


def test_a_socket_of_this_process_is_ours_and_anothers_is_named() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        assert ports.foreign_listener(port, os.getpid()) is None
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
        try:
            other = ports.foreign_listener(port, sleeper.pid)
        finally:
            sleeper.kill()
            sleeper.wait(5)
        assert other is not None and f"pid {os.getpid()}" in other
    assert ports.foreign_listener(port, os.getpid()) is None  # nobody listens any more


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_a_port_taken_by_another_program_is_an_error_not_a_verdict_on_it(tmp_path: Path) -> None:
    (tmp_path / "impostor.py").write_text(IMPOSTOR)
    pidfile = tmp_path / "pids"
    target_file = tmp_path / "impostor.toml"
    target_file.write_text(
        textwrap.dedent(
            f"""
            name = "impostor"
            command = ["{{python}}", "impostor.py", "{{port}}", "{{db}}", "{pidfile}"]
            cwd = "."
            start_timeout = 10
            env = {{ PYTHONPATH = "{ROOT}" }}
            [log]
            ts = "fecha_envio"
            """
        )
    )
    target = load_target(target_file)
    try:
        with pytest.raises(TargetError, match=r"held by another program, pid \d+ .*chat\.server"):
            run_plan(target, Plan([ClientPlan([Op(SEND, "hola")])]), tmp_path / "run")
        started = pidfile.read_text().split()
        assert len(started) == 3  # a port the harness picked: it tried two more before giving up
    finally:
        for pid in pidfile.read_text().split() if pidfile.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    history = tmp_path / "run" / "history.jsonl"
    if history.exists():  # nothing was judged against the impostor
        assert not any(json.loads(line)["f"] == "send" for line in history.read_text().splitlines())
