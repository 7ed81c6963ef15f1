"""What a blocked thread waits on, from the line ``/proc/PID/task/TID/syscall`` shows for it. (No /proc reads here.)

The line is the number of the system call the thread is in, then its arguments in hex (``running``
when it is in none, ``-1 ...`` when it is blocked outside a call). A thread asleep reading a
socket, or in ``poll``/``select`` on some descriptors, waits for a connection's bytes; one asleep
on a lock, a condition or a timer (``futex``, ``nanosleep``, ``select`` on nothing) does not.
``harness/reuse.py`` asks this of the server threads that ran on a timer: a pool's worker that
took a wave client holds its connection and waits on it, a stuck thread waits on its lock.
Waiting in ``epoll`` or ``accept`` is not counted: an event loop or an acceptor waits there
whether or not it serves anyone.
"""

from __future__ import annotations

from collections.abc import Callable

# System call numbers by machine (``os.uname().machine``), and what their arguments must show: ``read`` (FD) waits on
# a socket only when its descriptor, the first argument, is one; poll names how many descriptors it waits on in its
# second (COUNT_2ND), select the highest one plus one in its first (COUNT_1ST); the recv calls read sockets (ANY).
FD, COUNT_2ND, COUNT_1ST, ANY = "fd", "count2", "count1", "any"
_WAITS: dict[str, dict[int, str]] = {
    # read, poll, select, recvfrom, recvmsg, pselect6, ppoll, recvmmsg
    "x86_64": {0: FD, 7: COUNT_2ND, 23: COUNT_1ST, 45: ANY, 47: ANY, 270: COUNT_1ST, 271: COUNT_2ND, 299: ANY},
    # read, pselect6, ppoll, recvfrom, recvmsg, recvmmsg (no poll or select of their own)
    "aarch64": {63: FD, 72: COUNT_1ST, 73: COUNT_2ND, 207: ANY, 212: ANY, 243: ANY},
}


def known(machine: str) -> bool:
    """Whether this module knows ``machine``'s system call numbers."""
    return machine in _WAITS


def waits_on_descriptors(line: str, machine: str, is_socket: Callable[[int], bool]) -> bool:
    """Whether a thread whose ``syscall`` file reads ``line`` is in a call that waits on descriptors: a socket read
    (``is_socket`` tells of a plain ``read``'s descriptor), or ``poll``/``select`` on at least one."""
    fields = line.split()
    waits = _WAITS.get(machine, {})
    try:
        number = int(fields[0])
        args = [int(a, 16) for a in fields[1:4]]
    except (IndexError, ValueError):  # "running", or a line this module does not know
        return False
    if number not in waits or len(args) < 2:
        return False
    need = waits[number]
    if need == FD:
        return is_socket(args[0])
    if need == COUNT_1ST:
        return args[0] > 0
    if need == COUNT_2ND:
        return args[1] > 0
    return True
