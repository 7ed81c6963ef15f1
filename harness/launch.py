"""Exec a server so that it dies with the harness: ``python .../harness/launch.py PARENT_PID -- CMD ...``.

Run by file path, not as ``-m harness.launch``: it needs nothing but the standard library, so it starts
in any directory whether or not the harness is installed.

On Linux it sets the parent-death signal to SIGKILL (prctl), which survives exec, so even a
SIGKILLed harness leaves no orphan server behind. Elsewhere it just execs.

It also gives the server the signal dispositions a terminal would: a process started in the
background by a non-interactive shell (``cmd &``, nohup, some CI runners) inherits SIGINT ignored,
an ignored signal stays ignored across exec, and Python then never installs its KeyboardInterrupt
handler — so a server that stops on Ctrl+C would ignore the harness's SIGINT and be blamed for it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    """Arm the parent-death signal, then replace this process with the command."""
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: python launch.py PARENT_PID -- COMMAND [ARG ...]")
    parent, cmd = int(argv[0]), argv[2:]
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the harness died before we armed the signal
            sys.exit(1)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        sys.exit(f"harness.launch: cannot run {cmd[0]!r}: {exc.strerror}")


if __name__ == "__main__":
    main(sys.argv[1:])
