"""Network namespaces for fixed-port targets: two servers on the same port, side by side, each in its own."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

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
