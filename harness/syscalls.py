"""Which descriptors a blocked thread waits on, from the line ``/proc/PID/task/TID/syscall`` shows for it, and which
TCP connections ``/proc/PID/net/tcp`` lists. (No /proc reads here: the caller hands in what it read.)

The syscall line is the number of the call the thread is in, then its arguments in hex (``running``
when it is in none, ``-1 ...`` when it is blocked outside a call). A thread in a socket read
(``recvfrom``, ``recvmsg``, ``read``) waits on the descriptor its first argument names; one in
``poll`` or ``select`` on the descriptors of the array or set its arguments point to, which the
caller reads from the process's memory. ``harness/reuse.py`` asks this of the server threads that
run on a timer: a pool's worker that took a wave client waits on that client's connection, a
leaked thread waits on its lock, its timer, or a descriptor of its own (a pipe, a socket pair, a
connection that is over). Waiting in ``epoll`` or ``accept`` names no connection: not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

READS, POLL, SELECT = "reads", "poll", "select"
# System call numbers by machine (``os.uname().machine``): READS names its descriptor in its first argument; POLL points
# to an array of ``struct pollfd`` (an int descriptor, two shorts) in its first and counts them in its second; SELECT
# counts descriptors (the highest plus one) in its first and points to the read and the write sets in its next two.
_CALLS: dict[str, dict[int, str]] = {
    # read, recvfrom, recvmsg, recvmmsg, poll, ppoll, select, pselect6
    "x86_64": {0: READS, 45: READS, 47: READS, 299: READS, 7: POLL, 271: POLL, 23: SELECT, 270: SELECT},
    # read, recvfrom, recvmsg, recvmmsg, ppoll, pselect6 (no poll or select of their own)
    "aarch64": {63: READS, 207: READS, 212: READS, 243: READS, 73: POLL, 72: SELECT},
}
MAX_FDS = 4096  # descriptors a poll or select is read for at most (a thread waiting on more is no client's worker)
POLLFD = 8  # bytes of one ``struct pollfd``; both machines are little-endian, as is an ``fd_set``'s bit order here
ESTABLISHED = "01"  # the ``st`` column of /proc/net/tcp


def known(machine: str) -> bool:
    """Whether this module knows ``machine``'s system call numbers."""
    return machine in _CALLS


def waited_descriptors(line: str, machine: str, read_memory: Callable[[int, int], bytes | None]) -> list[int]:
    """The descriptors a thread whose ``syscall`` file reads ``line`` waits on (none when it is in no call that waits
    on descriptors); ``read_memory(address, size)`` reads the process's memory for poll and select (None: unreadable)."""
    fields = line.split()
    try:
        number = int(fields[0])
        args = [int(a, 16) for a in fields[1:4]]
    except (IndexError, ValueError):  # "running", or a line this module does not know
        return []
    kind = _CALLS.get(machine, {}).get(number)
    if kind is None or len(args) < 3:
        return []
    if kind == READS:
        return [args[0]]
    if kind == POLL:
        count = args[1]
        data = read_memory(args[0], count * POLLFD) if 0 < count <= MAX_FDS else None
        if data is None or len(data) != count * POLLFD:
            return []
        fds = (int.from_bytes(data[i : i + 4], "little", signed=True) for i in range(0, len(data), POLLFD))
        return [fd for fd in fds if fd >= 0]  # a negative one is left out of the poll
    count = args[0]
    if not 0 < count <= MAX_FDS:
        return []
    chosen: set[int] = set()
    for address in args[1:3]:  # the read and the write set (either may be NULL)
        data = read_memory(address, (count + 7) // 8) if address else None
        if data is not None:
            chosen.update(fd for fd in range(min(count, len(data) * 8)) if data[fd // 8] >> (fd % 8) & 1)
    return sorted(chosen)


def connections_from(tables: Iterable[str], ports: set[int]) -> set[int]:
    """The socket inodes of established TCP connections whose far end is one of ``ports``, in the text of
    ``/proc/PID/net/tcp`` and ``tcp6`` (``tables``): the server's ends of the connections those client ports opened."""
    inodes: set[int] = set()
    for table in tables:
        for row in table.splitlines()[1:]:
            cols = row.split()
            try:
                far, state, inode = int(cols[2].rsplit(":", 1)[1], 16), cols[3], int(cols[9])
            except (IndexError, ValueError):
                continue
            if state == ESTABLISHED and far in ports:
                inodes.add(inode)
    return inodes
