"""Network namespaces for fixed-port targets: two servers on the same port, side by side, each in its own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support import wait_for

from harness import isolation
from harness.target import python_env

CHILD = """
import socket, sys, time
import harness.isolation as i
mode = i.enter()
with socket.socket() as s:
    s.bind(("127.0.0.1", 5000))  # the same fixed port in every namespace
    s.listen(1)
    c = socket.create_connection(("127.0.0.1", 5000), timeout=5)
    peer, _ = s.accept()
    c.sendall(b"hola")
    print(mode, peer.recv(4).decode(), flush=True)
"""


@pytest.mark.skipif(isolation.available() is None, reason="network namespaces are not available here")
def test_each_namespace_has_its_own_loopback_and_port_5000(tmp_path: Path) -> None:
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=python_env())
        for _ in range(3)
    ]
    outs = [c.communicate(timeout=30)[0].strip() for c in children]
    assert all(c.returncode == 0 for c in children), outs
    assert all(o.endswith("hola") and o.startswith("network namespace") for o in outs)


def test_the_loopback_of_this_namespace_is_untouched() -> None:
    with socket.socket() as s:  # the harness's own namespace still works as before
        s.bind(("127.0.0.1", 0))
        assert s.getsockname()[1] > 0


def test_a_fixed_port_lock_makes_other_processes_wait() -> None:
    from harness.pytest_plugin import port_lock

    probe = (
        "from harness.pytest_plugin import port_lock\n"
        "try:\n    with port_lock(1, timeout=0.5): print('got it')\n"
        "except TimeoutError as e: print(e)\n"
    )

    def other() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, env=python_env()
        )
        return done.stdout.strip()

    with port_lock(1):
        assert other() == "port 1 stayed in use by another test for 0.5 s"
    assert other() == "got it"


ESCAPER = Path(__file__).resolve().parent / "hostile" / "hostile.py"


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_a_killed_scenario_child_leaves_no_process_its_server_started_outside_its_group(tmp_path: Path) -> None:
    target = tmp_path / "escaper.toml"  # never ready: the child waits for it, with its escaped child running
    target.write_text(
        f'name = "escaper"\ncommand = ["{{python}}", "{ESCAPER}", "--mode", "escaper", "--port", "{{port}}",'
        ' "--db", "{db}"]\nprotocol = "pfo1"\nready = "line:never printed"\nstart_timeout = 60\n[log]\n'
        'table = "mensajes"\nid = "id"\ncontent = "contenido"\nts = "fecha_envio"\n[pfo1]\n'
        'ack = "Mensaje recibido: (?P<ts>.+)"\nframing = "newline"\n'
    )
    job = {"call": "doctor", "target": str(target), "workdir": str(tmp_path / "work")}
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            isolation.run(job, timeout=120, namespace=False)
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        escaped = wait_for(lambda: _escaped(tmp_path), timeout=30, what="the server's child in a session of its own")
        child = wait_for(_isolation_child, timeout=5, what="the scenario's child process")
        os.kill(child, signal.SIGKILL)  # as a timeout or a crash ends it, with its server not yet stopped
    finally:
        thread.join(60)
    assert not thread.is_alive() and outcome and "left no result" in str(outcome[0])
    wait_for(lambda: not _alive(escaped), timeout=10, what="the escaped child killed")


def _escaped(marker: Path) -> int | None:
    """The child of this test's escaper server that leads a session of its own (the server leads one too)."""
    procs = _processes()
    ours = {pid for pid, cmdline, _ in procs if str(marker).encode() in cmdline and b"escaper" in cmdline}
    for pid, _, stat in procs:
        if pid in ours and int(stat[1]) in ours and os.getsid(pid) == pid:
            return pid
    return None


def _isolation_child() -> int | None:
    """This process's child that runs a job (``python -m harness.isolation``)."""
    for pid, cmdline, stat in _processes():
        if int(stat[1]) == os.getpid() and b"harness.isolation" in cmdline:
            return pid
    return None


def _processes() -> list[tuple[int, bytes, list[str]]]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline, stat = (proc / "cmdline").read_bytes(), _stat(int(proc.name))
            except OSError:
                continue
            found.append((int(proc.name), cmdline, stat))
    return found


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2 :].split()


def _alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False
