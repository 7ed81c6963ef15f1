"""Python tracebacks in a server's output: which thread died, of what, and whether it was Ctrl+C.

Handles what CPython prints: ``Traceback (most recent call last):`` blocks, preceded by
``Exception in thread NAME:`` for a thread that died, or ``Exception ignored in: ...`` (a
KeyboardInterrupt while the interpreter waits for non-daemon threads at exit), and chained
exceptions ("During handling of the above exception ..."), which count as one.

asyncio logs the exceptions it catches as a message, ``key: value`` lines, then the traceback.
A client's coroutine that died (``Unhandled exception in client_connected_cb``, ``Task exception
was never retrieved``) counts like a thread that died; asyncio's other reports like the main
thread's. Two are harmless, noise of the runtime rather than failures of the server's code:
a peer's reset that asyncio's machinery kept and nobody read (``Future exception was never
retrieved`` on a bare future, which CPython prints or not depending on the order the garbage
collector finalises a cycle; the server's code handled the same error), and asyncio's own
callback failing on a peer's reset or on a cancelled task (CPython 3.11.7 prints a
CancelledError for each client coroutine that asyncio.run() cancels at exit: cpython gh-113538).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADER = "Traceback (most recent call last):"
_THREAD = re.compile(r"Exception in thread (.+?):\s*$")
_IGNORED = re.compile(r"Exception ignored in: (.+)$")
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")
_CONTEXT = re.compile(r"^[a-z_]+: ")  # asyncio's "future: <Future ...>", "transport: <...>" lines
_TASK_DIED = ("Unhandled exception in client_connected_cb", "Task exception was never retrieved")
_CALLBACK = "Exception in callback "
_UNREAD = "Future exception was never retrieved"
_ASYNCIO = (*_TASK_DIED, _CALLBACK, _UNREAD, "Fatal error on ", "unhandled exception during asyncio.run() shutdown")
_PEER_ERRORS = ("ConnectionResetError", "BrokenPipeError", "ConnectionAbortedError")
_ASYNCIO_LIB = re.compile(r"[\\/]asyncio[\\/]")
_TRANSPORT = re.compile(r"_?\w*Transport\.")
_FRAME = re.compile(r'^\s*File "([^"]*)", line \d+, in (\S+)')
MAX_TEXT = 1500
INTERLEAVED = "(its exception line is lost among another thread's traceback, printed at the same time)"


@dataclass(frozen=True)
class Traceback:
    """One traceback."""

    thread: str  # "main", a thread's name, "ignored" (printed at exit), "asyncio task (coroutine)" or "asyncio"
    exception: str  # the last line: ``ValueError: bad thing``
    text: str  # the whole block (cut to MAX_TEXT characters)
    harmless: bool = False  # asyncio's own noise: a peer's reset the server handled, its callback failing on a cancel

    @property
    def interrupt(self) -> bool:
        """A KeyboardInterrupt (Ctrl+C, SIGINT) nobody handled."""
        return self.exception.split(":", 1)[0].strip().endswith("KeyboardInterrupt")

    @property
    def in_thread(self) -> bool:
        """It killed one thread (a client's handler, typically), not the whole program."""
        return self.thread not in ("main", "ignored", "asyncio") and not self.harmless

    def to_dict(self) -> dict[str, object]:
        """Plain data for a history record."""
        return {
            "thread": self.thread,
            "exception": self.exception,
            "text": self.text,
            "interrupt": self.interrupt,
            "in_thread": self.in_thread,
            "harmless": self.harmless,
        }


def parse(output: str) -> list[Traceback]:
    """Every traceback in ``output``, in order."""
    lines = output.splitlines()
    out: list[Traceback] = []
    i = 0
    while i < len(lines):
        if HEADER not in lines[i]:
            i += 1
            continue
        thread, start = "main", i
        prev = lines[i - 1] if i else ""
        if m := _THREAD.search(prev):
            thread, start = m.group(1), i - 1
        elif _IGNORED.search(prev):
            thread, start = "ignored", i - 1
        elif (logged := _asyncio_message(lines, i)) is not None:
            start = logged
        first = i + 1
        exception, i = _block(lines, i + 1)
        while i < len(lines) and _chained(lines, i):  # one exception raised while handling another
            j = next((k for k in range(i, min(len(lines), i + 4)) if HEADER in lines[k]), None)
            if j is None:
                break
            exception, i = _block(lines, j + 1)
        text = "\n".join(lines[start:i])[:MAX_TEXT]
        if start < first - 1 and thread == "main":
            thread, harmless = _asyncio_kind(lines[start : first - 1], lines[first:i], exception)
            out.append(Traceback(thread, exception, text, harmless))
        else:
            out.append(Traceback(thread, exception, text))
    return out


def _asyncio_message(lines: list[str], i: int) -> int | None:
    """The line of asyncio's message above the traceback at ``i`` (past its ``key: value`` lines), if it is one."""
    k = i - 1
    while k >= 0 and _CONTEXT.match(lines[k]) and not lines[k].startswith(_ASYNCIO):
        k -= 1
    return k if k >= 0 and lines[k].startswith(_ASYNCIO) else None


def _asyncio_kind(head: list[str], frames: list[str], exception: str) -> tuple[str, bool]:
    """Who died, as asyncio reported it, and whether it was only a peer's reset the server had handled."""
    name = exception.split(":", 1)[0].strip()
    message, peer = head[0], name in _PEER_ERRORS
    if message.startswith(_TASK_DIED):
        top = next((m for f in frames if (m := _FRAME.match(f))), None)  # a task's first frame is its coroutine
        return (
            f"asyncio task ({top.group(2)})" if top and not _ASYNCIO_LIB.search(top.group(1)) else "asyncio task"
        ), False
    if message.startswith(_CALLBACK):  # asyncio's own callback: a transport's, or one defined in its package
        own = _ASYNCIO_LIB.search(message) is not None or _TRANSPORT.match(message[len(_CALLBACK) :]) is not None
        return "asyncio", own and (peer or name.endswith("CancelledError"))
    if message.startswith(_UNREAD):
        return "asyncio", peer and any(h.startswith("future: <Future ") for h in head[1:])
    return "asyncio", False


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
