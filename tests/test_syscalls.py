"""What a blocked thread waits on (harness/syscalls.py): lines as /proc/PID/task/TID/syscall shows them, and a real
server's threads read through ServerRun.descriptor_waits."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time

import pytest

from harness.syscalls import known, waits_on_descriptors
from harness.target import ServerRun


def sockets(*fds: int):  # type: ignore[no-untyped-def]
    """An ``is_socket`` that says yes for ``fds``."""
    return lambda fd: fd in fds


def test_socket_reads_and_polls_on_descriptors_wait_on_connections() -> None:
    x86 = "x86_64"
    assert waits_on_descriptors("45 0x4 0x7f01 0x10000 0x0 0x0 0x0 0x7ffd 0x7f02", x86, sockets())  # recvfrom
    assert waits_on_descriptors("47 0x5 0x7f01 0x0 0x0 0x0 0x0 0x7ffd 0x7f02", x86, sockets())  # recvmsg
    assert waits_on_descriptors("0 0x6 0x7f01 0x400 0x0 0x0 0x0 0x7ffd 0x7f02", x86, sockets(6))  # read on a socket
    assert not waits_on_descriptors("0 0x6 0x7f01 0x400 0x0 0x0 0x0 0x7ffd 0x7f02", x86, sockets(5))  # on a pipe
    assert waits_on_descriptors("7 0x7f01 0x1 0x1f4 0x0 0x0 0x0 0x7ffd 0x7f02", x86, sockets())  # poll, one fd
    assert not waits_on_descriptors("7 0x7f01 0x0 0x1f4 0x0 0x0 0x0 0x7ffd 0x7f02", x86, sockets())  # poll: a sleep
    assert waits_on_descriptors("270 0x8 0x7f01 0x0 0x0 0x7f03 0x0 0x7ffd 0x7f02", x86, sockets())  # pselect6
    assert not waits_on_descriptors("23 0x0 0x0 0x0 0x0 0x7f03 0x0 0x7ffd 0x7f02", x86, sockets())  # select(): sleep
    assert waits_on_descriptors("207 0x4 0x7f01 0x10000 0x0 0x0 0x0 0x7ffd 0x7f02", "aarch64", sockets())


def test_locks_timers_event_loops_and_acceptors_do_not() -> None:
    x86 = "x86_64"
    assert not waits_on_descriptors("202 0x7f01 0x89 0x0 0x7f02 0x0 0xffffffff 0x7ffd 0x7f02", x86, sockets())  # futex
    assert not waits_on_descriptors("230 0x1 0x0 0x7f01 0x0 0x0 0x0 0x7ffd 0x7f02", x86, sockets())  # nanosleep
    assert not waits_on_descriptors("232 0x3 0x7f01 0x400 0x1f4 0x0 0x0 0x7ffd 0x7f02", x86, sockets())  # epoll_wait
    assert not waits_on_descriptors("288 0x3 0x0 0x0 0x80000 0x0 0x0 0x7ffd 0x7f02", x86, sockets())  # accept4
    assert not waits_on_descriptors("running", x86, sockets())
    assert not waits_on_descriptors("-1 0x7ffd 0x7f02", x86, sockets())
    assert not waits_on_descriptors("45 0x4 0x7f01 0x10000", "riscv64", sockets()) and not known("riscv64")


SERVER = textwrap.dedent(
    """
    import queue, select, socket, sys, threading, time
    a, b = socket.socketpair()
    lock_wait = queue.Queue()
    def reader(): b.recv(10)
    def polling(): select.select([b], [], [], 30)
    def timer():
        while True:
            try:
                lock_wait.get(timeout=0.05)
            except queue.Empty:
                continue
    for name, target in (("reader", reader), ("polling", polling), ("timer", timer)):
        threading.Thread(target=target, name=name, daemon=True).start()
    threading.Thread(target=time.sleep, args=(30,), name="sleeper", daemon=True).start()
    time.sleep(0.3)
    print(" ".join(f"{t.name}={t.native_id}" for t in threading.enumerate()), flush=True)
    time.sleep(30)
    """
)


@pytest.mark.skipif(not known(os.uname().machine), reason="system call numbers of this machine are not known")
def test_a_real_process_threads_waiting_on_sockets_are_told_from_those_on_locks_and_timers() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert select.select([proc.stdout], [], [], 10)[0], "the process did not start its threads"
        names = dict(part.split("=") for part in proc.stdout.readline().split())
        srv = ServerRun.__new__(ServerRun)
        srv.proc = proc  # type: ignore[assignment]  # only its pid is read
        deadline = time.monotonic() + 10
        waits = srv.descriptor_waits()
        while waits != {int(names["reader"]), int(names["polling"])} and time.monotonic() < deadline:
            time.sleep(0.05)  # a thread is caught between two calls now and then (the timer's, never these)
            waits = srv.descriptor_waits()
        assert waits == {int(names["reader"]), int(names["polling"])}, (waits, names)
    finally:
        proc.kill()
        proc.wait(5)
