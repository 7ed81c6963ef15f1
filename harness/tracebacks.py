"""Python tracebacks in a server's output: which thread died, of what, and whether it was Ctrl+C.

Handles what CPython prints: ``Traceback (most recent call last):`` blocks, preceded by
``Exception in thread NAME:`` for a thread that died, or ``Exception ignored in: ...`` (a
KeyboardInterrupt while the interpreter waits for non-daemon threads at exit), and chained
exceptions ("During handling of the above exception ..."), which count as one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADER = "Traceback (most recent call last):"
_THREAD = re.compile(r"Exception in thread (.+?):\s*$")
_IGNORED = re.compile(r"Exception ignored in: (.+)$")
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")
MAX_TEXT = 1500
INTERLEAVED = "(its exception line is lost among another thread's traceback, printed at the same time)"


@dataclass(frozen=True)
class Traceback:
    """One traceback."""

    thread: str  # "main", a thread's name, or "ignored" (printed while the interpreter was exiting)
    exception: str  # the last line: ``ValueError: bad thing``
    text: str  # the whole block (cut to MAX_TEXT characters)

    @property
    def interrupt(self) -> bool:
        """A KeyboardInterrupt (Ctrl+C, SIGINT) nobody handled."""
        return self.exception.split(":", 1)[0].strip().endswith("KeyboardInterrupt")

    @property
    def in_thread(self) -> bool:
        """It killed one thread (a client's handler, typically), not the whole program."""
        return self.thread not in ("main", "ignored")

    def to_dict(self) -> dict[str, object]:
        """Plain data for a history record."""
        return {"thread": self.thread, "exception": self.exception, "text": self.text, "interrupt": self.interrupt}


def parse(output: str) -> list[Traceback]:
    """Every traceback in ``output``, in order."""
    lines = output.splitlines()
    out: list[Traceback] = []
    i = 0
    while i < len(lines):
        if HEADER not in lines[i]:
            i += 1
            continue
        thread = "main"
        prev = lines[i - 1] if i else ""
        if m := _THREAD.search(prev):
            thread = m.group(1)
        elif _IGNORED.search(prev):
            thread = "ignored"
        start = i - 1 if thread != "main" else i
        exception, i = _block(lines, i + 1)
        while i < len(lines) and _chained(lines, i):  # one exception raised while handling another
            j = next((k for k in range(i, min(len(lines), i + 4)) if HEADER in lines[k]), None)
            if j is None:
                break
            exception, i = _block(lines, j + 1)
        text = "\n".join(lines[start:i])[:MAX_TEXT]
        out.append(Traceback(thread, exception, text))
    return out


def _chained(lines: list[str], i: int) -> bool:
    for k in range(i, min(len(lines), i + 3)):
        if any(lines[k].startswith(c) for c in _CHAINED):
            return True
        if lines[k].strip():
            return False
    return False


def _block(lines: list[str], i: int) -> tuple[str, int]:
    """The exception line ending the frames that start at ``i``, and the line after it."""
    while i < len(lines):
        line = lines[i]
        if line.startswith((" ", "\t")) or not line.strip() or line.startswith("^"):
            i += 1
            continue
        if HEADER in line or _THREAD.search(line):  # threads printing at once: another traceback cuts in
            return INTERLEAVED, i
        return line.strip(), i + 1
    return "(the traceback ends without its exception line)", i
