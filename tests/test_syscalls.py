"""Which descriptors a blocked thread waits on (harness/syscalls.py), from lines as /proc/PID/task/TID/syscall shows
them, and a real process's threads read through ServerRun.connection_waits: only a wait on a given client's
connection counts, not one on a pipe, a socket pair or another connection."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.syscalls import connections_from, known, waited_descriptors
from harness.target import ServerRun

X86, ARM = "x86_64", "aarch64"
POLLFDS = 0x7F0000001000  # where the fake memory below holds a pollfd array
READ_SET, WRITE_SET = 0x7F0000002000, 0x7F0000003000  # and two fd_sets


def memory(address: int, size: int) -> bytes | None:
    """A process's memory as far as these tests go: two pollfds (descriptors 5 and -1, then 9), and fd_sets."""
    blocks = {
        POLLFDS: b"".join(fd.to_bytes(4, "little", signed=True) + b"\x01\x00\x00\x00" for fd in (5, -1, 9)),
        READ_SET: bytes([0b00010000, 0b00000010]),  # descriptors 4 and 9
        WRITE_SET: bytes([0b00000000, 0b00000100]),  # descriptor 10
    }
    data = blocks.get(address)
    return None if data is None else data[:size]


def test_socket_reads_name_their_descriptor() -> None:
    assert waited_descriptors("45 0x4 0x7f01 0x10000 0x0 0x0 0x0 0x7ffd 0x7f02", X86, memory) == [4]  # recvfrom
    assert waited_descriptors("47 0x5 0x7f01 0x0 0x0 0x0 0x0 0x7ffd 0x7f02", X86, memory) == [5]  # recvmsg
    assert waited_descriptors("0 0x6 0x7f01 0x400 0x0 0x0 0x0 0x7ffd 0x7f02", X86, memory) == [6]  # read
    assert waited_descriptors("207 0x4 0x7f01 0x10000 0x0 0x0 0x0 0x7ffd 0x7f02", ARM, memory) == [4]  # recvfrom
    assert waited_descriptors("63 0x7 0x7f01 0x400 0x0 0x0 0x0 0x7ffd 0x7f02", ARM, memory) == [7]  # read


def test_poll_and_select_name_the_descriptors_in_their_memory() -> None:
    poll = f"7 {POLLFDS:#x} 0x3 0x1f4 0x0 0x0 0x0 0x7ffd 0x7f02"
    assert waited_descriptors(poll, X86, memory) == [5, 9]  # a negative descriptor is left out of a poll
    assert waited_descriptors(f"73 {POLLFDS:#x} 0x2 0x7ffd 0x0 0x8 0x0 0x7ffd 0x7f02", ARM, memory) == [5]  # ppoll
    select_ = f"23 0xb {READ_SET:#x} {WRITE_SET:#x} 0x0 0x7ffd 0x0 0x7ffd 0x7f02"
    assert waited_descriptors(select_, X86, memory) == [4, 9, 10]
    assert waited_descriptors(f"72 0x5 {READ_SET:#x} 0x0 0x0 0x7ffd 0x0 0x7ffd 0x7f02", ARM, memory) == [4]  # pselect6
    assert waited_descriptors("23 0x0 0x0 0x0 0x0 0x7ffd 0x0 0x7ffd 0x7f02", X86, memory) == []  # select(): a sleep
    assert waited_descriptors("7 0x7f0000009000 0x2 0x1f4 0x0 0x0 0x0 0x7ffd 0x7f02", X86, memory) == []  # unreadable
    assert waited_descriptors(f"7 {POLLFDS:#x} 0x0 0x1f4 0x0 0x0 0x0 0x7ffd 0x7f02", X86, memory) == []  # poll: sleep


def test_locks_timers_event_loops_and_acceptors_name_none() -> None:
    for line in (
        "202 0x7f01 0x89 0x0 0x7f02 0x0 0xffffffff 0x7ffd 0x7f02",  # futex
        "230 0x1 0x0 0x7f01 0x0 0x0 0x0 0x7ffd 0x7f02",  # clock_nanosleep
        "232 0x3 0x7f01 0x400 0x1f4 0x0 0x0 0x7ffd 0x7f02",  # epoll_wait
        "288 0x3 0x0 0x0 0x80000 0x0 0x0 0x7ffd 0x7f02",  # accept4
        "running",
        "-1 0x7ffd 0x7f02",
    ):
        assert waited_descriptors(line, X86, memory) == [], line
    assert waited_descriptors("22 0x3 0x7f01 0x400 0x1f4 0x0 0x0 0x7ffd 0x7f02", ARM, memory) == []  # epoll_pwait
    assert waited_descriptors("98 0x7f01 0x89 0x0 0x7f02 0x0 0x0 0x7ffd 0x7f02", ARM, memory) == []  # futex
    assert waited_descriptors("45 0x4 0x7f01 0x10000", "riscv64", memory) == [] and not known("riscv64")


def test_the_server_ends_of_the_clients_connections_are_found_by_their_far_port() -> None:
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    tcp = header + (
        "   0: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0 100 0\n"
        "   1: 0100007F:1388 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 201 1 0 20 4\n"
        "   2: 0100007F:9C40 0100007F:1388 01 00000000:00000000 00:00000000 00000000     0        0 202 1 0 20 4\n"
        "   3: 0100007F:1388 0100007F:9C41 08 00000000:00000000 00:00000000 00000000     0        0 203 1 0 20 4\n"
    )
    tcp6 = header + (
        "   0: 0000000000000000FFFF00000100007F:1388 0000000000000000FFFF00000100007F:9C42 01 00000000:00000000"
        " 00:00000000 00000000     0        0 301 1 0 20 4\n"
    )
    # 40000 (0x9C40) reached the server at 5000: its server end is 201 (202 is the client's own end); 40001's
    # connection is closing (CLOSE_WAIT), and 40002 came over IPv6
    assert connections_from([tcp, tcp6], {40000, 40001, 40002}) == {201, 301}
    assert connections_from([tcp, "garbage\nnot a row\n"], {9}) == set()


PROCESS = textwrap.dedent(
    """
    import os, queue, select, socket, threading, time
    listener = socket.create_server(("127.0.0.1", 0))
    clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
    served = [listener.accept()[0] for _ in clients]
    served[1].settimeout(30)  # a read with a timeout: poll on the one descriptor, then recv
    other = socket.create_connection(listener.getsockname())  # a connection of no client asked about
    theirs = listener.accept()[0]
    pipe_r, _ = os.pipe()
    pair = socket.socketpair()
    timer = queue.Queue()

    def ticking():
        while True:
            try:
                timer.get(timeout=0.05)
            except queue.Empty:
                pass

    work = {
        "reader": lambda: served[0].recv(10),
        "timed": lambda: served[1].recv(10),
        "select": lambda: select.select([served[2]], [], [], 30),
        "other": lambda: theirs.recv(10),
        "pipe": lambda: select.select([pipe_r], [], [], 30),
        "pair": lambda: pair[1].recv(10),
        "timer": ticking,
        "sleeper": lambda: time.sleep(30),
    }
    for name, target in work.items():
        threading.Thread(target=target, name=name, daemon=True).start()
    time.sleep(0.3)
    ports = ",".join(str(c.getsockname()[1]) for c in clients)
    print(ports, " ".join(f"{t.name}={t.native_id}" for t in threading.enumerate() if t.name in work), flush=True)
    time.sleep(30)
    """
)


@pytest.mark.skipif(not known(os.uname().machine), reason="system call numbers of this machine are not known")
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_a_real_process_threads_waiting_on_the_clients_connections_are_told_from_the_others() -> None:
    proc = subprocess.Popen([sys.executable, "-c", PROCESS], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert select.select([proc.stdout], [], [], 10)[0], "the process did not start its threads"
        ports, *threads = proc.stdout.readline().split()
        names = {name: int(tid) for name, tid in (t.split("=") for t in threads)}
        srv = ServerRun.__new__(ServerRun)  # only its process is asked about
        srv.proc = proc  # type: ignore[assignment]
        want = {names["reader"], names["timed"], names["select"]}
        deadline = time.monotonic() + 10
        waits = srv.connection_waits({int(p) for p in ports.split(",")})
        while waits != want and time.monotonic() < deadline:
            time.sleep(0.05)  # a thread is caught between two calls now and then (the timer's, never these)
            waits = srv.connection_waits({int(p) for p in ports.split(",")})
        assert waits == want, ({n: t for n, t in names.items() if t in (waits or set())}, names)
        assert srv.connection_waits(set()) == set()  # no client's connection: no thread waits on one
    finally:
        proc.kill()
        proc.wait(5)
