"""Python tracebacks in a server's output: which thread died, of what, and whether it was Ctrl+C.

Handles what CPython prints: ``Traceback (most recent call last):`` blocks, preceded by
``Exception in thread NAME:`` for a thread that died, or ``Exception ignored in: ...`` (a
KeyboardInterrupt while the interpreter waits for non-daemon threads at exit), and chained
exceptions ("During handling of the above exception ..."), which count as one.

asyncio logs what it catches as a message (after whatever prefix the server's logging adds),
``key: value`` lines (in debug mode, with where the object was created), then the traceback. The
code serving one client that died counts like a thread that died: a coroutine (``Unhandled
exception in client_connected_cb``, ``Task exception was never retrieved``), an
``asyncio.Protocol`` (``Fatal error: protocol.data_received() call failed.``), a job of
``run_in_executor()``. "Never retrieved" is printed when the garbage collector frees the object,
at exit on 3.10, so such a report is ``late``. asyncio's other reports count like the main
thread's, and three are harmless, noise of the runtime rather than failures of the server's code:
a peer's reset kept in a stream's future nobody read (``Future exception was never retrieved`` on
a bare future; CPython prints it or not depending on the order the garbage collector finalises a
cycle), the same reset raised again by ``await writer.wait_closed()``, and asyncio's own callback
failing on a reset or a cancelled task (3.11.7 prints a CancelledError for each client coroutine
``asyncio.run()`` cancels at exit: cpython gh-113538). An exception group is named by its first
member.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADER = "Traceback (most recent call last):"
_THREAD = re.compile(r"Exception in thread (.+?):\s*$")
_IGNORED = re.compile(r"Exception ignored in: (.+)$")
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")
_CONTEXT = re.compile(r"^[a-z_]+: ")  # asyncio's "future: <Future ...>", "transport: <...>" lines
_CREATED = re.compile(r"^[a-z_]+_traceback: \w+ created at \(most recent call last\):$")  # debug mode's
CLIENT, TASK = "client", "task"  # what died, when asyncio's report says: a client's handler, or some other task
_HANDLER, _RETRIEVED, _PROTOCOL, _CALLBACK, _FUTURE, _OTHER = (
    "handler",
    "retrieved",
    "protocol",
    "callback",
    "future",
    "",
)
_MESSAGES = {
    "Unhandled exception in client_connected_cb": _HANDLER,
    "Task exception was never retrieved": _RETRIEVED,
    "Fatal error: protocol.": _PROTOCOL,  # an asyncio.Protocol's data_received() raised: its connection is closed
    "Exception in callback ": _CALLBACK,
    "Future exception was never retrieved": _FUTURE,
    "Fatal error on ": _OTHER,
    "Fatal write error on ": _OTHER,
    "unhandled exception during asyncio.run() shutdown": _OTHER,
}
_MESSAGE = re.compile(r"(?:^|[\s:\]|])(" + "|".join(map(re.escape, _MESSAGES)) + ")")  # after any logging prefix
_LOGGER = re.compile(r"^[A-Z]+:([\w.]+):$")
_NEVER_RETRIEVED = "never retrieved"  # printed when the object is freed, which may be long after it failed
_PEER_ERRORS = ("ConnectionResetError", "BrokenPipeError", "ConnectionAbortedError")
_ASYNCIO_LIB = re.compile(r"[\\/](?:lib[\\/](?:python|pypy)3\.\d+t?|Lib)[\\/]asyncio[\\/]")
_EXECUTOR = re.compile(r"[\\/]concurrent[\\/]futures[\\/]thread\.py$")
_TRANSPORT = re.compile(r"_?\w*Transport\.")
_FRAME = re.compile(r'^[\s|]*File "([^"]*)", line \d+, in (\S+)')
_GROUP_LINE = re.compile(r"^\| (?!(?:Exception Group )?Traceback \()(\S.*)$")  # an exception line in a group's box
_GROUP_OF = re.compile(r"^[\w.]*Group: .*\(\d+ sub-exceptions?\)$")  # a group's own line, nested or not
MAX_TEXT = 1500
INTERLEAVED = "(its exception line is lost among another thread's traceback, printed at the same time)"


@dataclass(frozen=True)
class Traceback:
    """One traceback."""

    thread: str  # "main", a thread's name, "ignored" (printed at exit), "asyncio task (f)", "asyncio", ...
    exception: str  # the last line: ``ValueError: bad thing``
    text: str  # the whole block (cut to MAX_TEXT characters)
    asyncio: bool = False  # asyncio printed it (its exception handler's report), not Python for a thread
    died: str = ""  # asyncio: CLIENT (a client's handler died), TASK (a task, job or callback of the server), or ""
    harmless: bool = False  # asyncio's own noise: a peer's reset the server handled, its callback failing on a cancel
    late: bool = False  # printed when the garbage collector freed it ("never retrieved"), perhaps long after it failed

    @property
    def interrupt(self) -> bool:
        """A KeyboardInterrupt (Ctrl+C, SIGINT) nobody handled."""
        return self.exception.split(":", 1)[0].strip().endswith("KeyboardInterrupt")

    @property
    def in_thread(self) -> bool:
        """It killed one thread (a client's handler, typically), not the whole program."""
        return bool(self.died) if self.asyncio else self.thread not in ("main", "ignored")

    def to_dict(self) -> dict[str, object]:
        """Plain data for a history record."""
        return {
            "thread": self.thread,
            "exception": self.exception,
            "text": self.text,
            "interrupt": self.interrupt,
            "in_thread": self.in_thread,
            "asyncio": self.asyncio,
            "died": self.died,
            "harmless": self.harmless,
            "late": self.late,
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
        exception, i = _block(lines, i + 1, group="Exception Group" in lines[i])
        while i < len(lines) and _chained(lines, i):  # one exception raised while handling another
            j = next((k for k in range(i, min(len(lines), i + 4)) if HEADER in lines[k]), None)
            if j is None:
                break
            exception, i = _block(lines, j + 1, group="Exception Group" in lines[j])
        text = "\n".join(lines[start:i])[:MAX_TEXT]
        if start < first - 1 and thread == "main":
            out.append(_asyncio_report(lines[start], lines[first:i], exception, text))
        else:
            out.append(Traceback(thread, exception, text))
    return out


def _asyncio_message(lines: list[str], i: int) -> int | None:
    """The line of asyncio's message above the traceback at ``i``, past its ``key: value`` lines (and, in
    debug mode, the frames of where the failed object was created), if there is one."""
    k = i - 1
    while k >= max(0, i - 200) and not _said_by_asyncio(lines[k]):
        if lines[k].startswith((" ", "\t")):
            while k >= 0 and lines[k].startswith((" ", "\t")):
                k -= 1
            if k < 0 or not _CREATED.match(lines[k]):
                return None
        elif not _CONTEXT.match(lines[k]):
            return None
        k -= 1
    return k if k >= max(0, i - 200) else None


def _said_by_asyncio(line: str) -> bool:
    """The line holds one of asyncio's messages, after no logging prefix or one that does not name another logger."""
    found = _MESSAGE.search(line)
    if found is None:
        return False
    named = _LOGGER.match(line[: found.start(1)])  # logging.basicConfig()'s "LEVEL:name:" names the logger
    return named is None or named.group(1) == "asyncio"


def _asyncio_report(head: str, frames: list[str], exception: str, text: str) -> Traceback:
    """What asyncio reported under the message line ``head``: whose code failed, and whether it matters."""
    found = _MESSAGE.search(head)
    kind = _MESSAGES.get(found.group(1), _OTHER) if found else _OTHER
    name, late = exception.split(":", 1)[0].strip(), _NEVER_RETRIEVED in head
    calls = [(m.group(1), m.group(2)) for f in frames if (m := _FRAME.match(f))]
    own = [fn for path, fn in calls if not _ASYNCIO_LIB.search(path) and not _EXECUTOR.search(path)]
    # Raised inside asyncio (its innermost frame is asyncio's), not by the server's code: a peer's reset it
    # carried, or a cancellation. Noise when asyncio's own machinery reports it.
    inner = bool(calls) and _ASYNCIO_LIB.search(calls[-1][0]) is not None
    noise = inner and (name in _PEER_ERRORS or name.endswith("CancelledError"))

    def report(thread: str, died: str = "", harmless: bool = False) -> Traceback:
        return Traceback(thread, exception, text, asyncio=True, died=died, harmless=harmless, late=late)

    if calls and _EXECUTOR.search(calls[0][0]):  # run_in_executor()'s job: a thread died, whatever asyncio says
        return report(f"executor thread ({own[0]})" if own else "executor thread", died=TASK)
    if kind in (_HANDLER, _RETRIEVED, _PROTOCOL):
        if noise and any(fn == "wait_closed" and _ASYNCIO_LIB.search(path) for path, fn in calls):
            return report("asyncio", harmless=True)  # close(); await wait_closed() re-raises the reset
        what = "protocol" if kind == _PROTOCOL else "task"
        who = CLIENT if kind in (_HANDLER, _PROTOCOL) else TASK  # a task nobody awaited may serve no client
        return report(f"asyncio {what} ({own[0]})" if own else f"asyncio {what}", died=who)
    if kind == _CALLBACK:
        mine = (
            _ASYNCIO_LIB.search(head) is not None or _TRANSPORT.match(head[found.end() :] if found else "") is not None
        )
        # asyncio's own callback (a transport's, or one in its package) on a cancel, or on a reset that no code of
        # the server's touched (a protocol's connection_lost() that raises it again is the server's doing)
        if mine and noise and (name.endswith("CancelledError") or not own):
            return report("asyncio", harmless=True)
        if own:  # the server's code raised in a callback: a callback of its own, or a protocol's method
            return report(f"asyncio callback ({own[0]})", died=TASK)
    if kind == _FUTURE and noise:  # a bare future holding a reset nobody read: a stream's close waiter
        bare = any(line.startswith("future: <Future ") for line in text.splitlines()[1:4])
        return report("asyncio", harmless=bare)
    return report("asyncio")


def _chained(lines: list[str], i: int) -> bool:
    for k in range(i, min(len(lines), i + 3)):
        if any(lines[k].startswith(c) for c in _CHAINED):
            return True
        if lines[k].strip():
            return False
    return False


def _block(lines: list[str], i: int, group: bool = False) -> tuple[str, int]:
    """The exception line ending the frames that start at ``i``, and the line after it."""
    if group:  # an exception group prints indented in a box: its own line, then each member's traceback
        box: list[str] = []
        while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
            box.append(lines[i].strip())
            i += 1
        if exception := _first_member(box):
            return exception, i
    while i < len(lines):
        line = lines[i]
        if line.startswith((" ", "\t")) or not line.strip() or line.startswith("^"):
            i += 1
            continue
        if HEADER in line or _THREAD.search(line):  # threads printing at once: another traceback cuts in
            return INTERLEAVED, i
        return line.strip(), i + 1
    return "(the traceback ends without its exception line)", i


def _first_member(box: list[str]) -> str | None:
    """What an exception group's first member died of: the last exception line before that member's box ends."""
    group = None
    for k, line in enumerate(box):
        m = _GROUP_LINE.match(line)
        if m is None or m.group(1).startswith(_CHAINED):
            continue
        said = m.group(1).strip()
        if _GROUP_OF.match(said):
            group = group or said.split(":", 1)[0]
            continue
        after = next((b for b in box[k + 1 :] if b not in ("", "|")), "+")
        if after.startswith("+"):  # the member's box closes: this is the exception it ended with
            return f"{said} (in {group})" if group else said
    return group
