"""Who listens on a port (Linux ``/proc``): so the harness never talks to a server it did not start.

A port the harness picked as free can be taken, before its server binds it, by another program (or
another harness run on the same machine). The server it started then fails to listen while the
other one answers every connection, and whatever the checker says would be about the wrong server.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

LISTEN = "0A"


def listeners(port: int) -> list[tuple[str, str]] | None:
    """(local address, socket inode) of every LISTEN socket on ``port`` in this network namespace.

    None when /proc cannot tell.
    """
    found = []
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            return None
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN:
                address, hexport = fields[1].rsplit(":", 1)
                if int(hexport, 16) == port:
                    found.append((_address(address), fields[9]))
    return found


def _address(hexaddr: str) -> str:
    """A /proc/net/tcp address (little-endian hex words) as text."""
    raw = b"".join(bytes.fromhex(hexaddr[i : i + 8])[::-1] for i in range(0, len(hexaddr), 8))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def listening_inodes(port: int) -> set[str] | None:
    """Socket inodes in LISTEN state on ``port`` in this network namespace (None when /proc cannot tell)."""
    found = listeners(port)
    return None if found is None else {inode for _, inode in found}


def holders(inodes: set[str]) -> list[int]:
    """Processes that hold any of these sockets (those whose descriptors can be read)."""
    wanted = {f"socket:[{i}]" for i in inodes}
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in wanted:
                    pids.append(int(proc.name))
                    break
            except OSError:
                continue
    return pids


def stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, session id) of ``pid``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[3])


def belongs_to(pid: int, root: int) -> bool:
    """Whether ``pid`` is ``root``, in ``root``'s session, or descends from it."""
    seen = 0
    while pid > 1 and seen < 64:
        if pid == root:
            return True
        found = stat(pid)
        if found is None:
            return False
        parent, session = found
        if session == root:
            return True
        pid, seen = parent, seen + 1
    return False


def command_of(pid: int) -> str:
    """``pid`` and its command line, for an error message."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        text = " ".join(a.decode(errors="replace") for a in argv if a)
    except OSError:
        text = "?"
    return f"pid {pid} ({text[:120]})"


def foreign_listener(port: int, root: int) -> str | None:
    """Who else listens on ``port`` besides ``root``'s processes (None if nobody else, or if nobody can tell)."""
    inodes = listening_inodes(port)
    if not inodes:
        return None
    foreign = [pid for pid in holders(inodes) if not belongs_to(pid, root)]
    return command_of(foreign[0]) if foreign else None  # one foreign listener is enough to doubt every answer
