"""A server under test: how to start it, know it is ready, stop it, and where its log is.

A target is described by a TOML file (see the README for two complete examples) or by the
built-in name ``reference`` (``python -m chat.server``). ``ServerRun`` starts one instance in its
own process group, with stdout and stderr captured to files, and always cleans up: the process
group is killed at stop, at interpreter exit, on SIGTERM to the harness, and — through the
``harness/launch.py`` wrapper, which sets the parent-death signal — even if the harness is SIGKILLed.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import queue
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import ports, syscalls
from harness.tracebacks import Traceback
from harness.tracebacks import parse as parse_tracebacks

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

PROTOCOLS = ("chat", "pfo1")
STOPS = ("sigterm", "sigint", "stdin-newline", "kill")
FRAMINGS = ("raw", "newline", "length64")
RELAYS = ("others", "all", "none")


class TargetError(Exception):
    """A target file is invalid or a server could not be started; the message says why."""


class PortTaken(TargetError):
    """Another program listens on the server's port: no verdict about the server can come of that run."""


@dataclass(frozen=True)
class LogMapping:
    """Where and how to read the server's message log."""

    path: str = "{db}"
    table: str = "mensajes"
    id: str = "id"
    content: str = "contenido"
    ts: str | None = None


@dataclass(frozen=True)
class Pfo1Options:
    """How to talk to a server that speaks the raw assignment protocol."""

    ack: str = "Mensaje recibido"
    exit_word: str = "éxito"
    framing: str = "raw"
    error: str | None = None  # how the server refuses a message (a regex), if it ever does
    messages_per_connection: int = 0  # the server answers this many messages, then closes (0: no limit)
    server_sees_exit_word: bool = True  # False: only the server's own client program acts on the exit word


@dataclass(frozen=True)
class Target:
    """Everything the harness needs to know about a server under test."""

    name: str
    command: tuple[str, ...]
    cwd: Path | None = None
    copy_cwd: bool = False
    env: tuple[tuple[str, str], ...] = ()
    host: str = "127.0.0.1"
    port: int = 0
    protocol: str = "chat"
    ready: str = "listen"
    start_timeout: float = 15.0
    stop: str = "sigterm"
    stop_timeout: float = 5.0
    relay: str = "others"
    max_line: int = 4096
    normalize: str = "exact"
    log: LogMapping = field(default_factory=LogMapping)
    pfo1: Pfo1Options = field(default_factory=Pfo1Options)
    client: tuple[str, ...] = ()
    stop_methods: tuple[str, ...] = ()
    shutdown_deadline: float | None = None
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()
    busy_timeout: float | None = None  # seconds the server waits for a locked log (None: not declared)
    single_session: bool = False  # the server serves one client session, then exits
    stop_exit_codes: tuple[int, ...] = (0,)  # exit codes of a clean stop (a JVM's after Ctrl+C: 130; -N: signal N)
    source: str = "built-in"

    @property
    def fixed_port(self) -> bool:
        """Whether the server always listens on the same port (tests must not run it twice at once)."""
        return self.port != 0

    def with_args(self, *args: str) -> Target:
        """The same target with extra command-line arguments (for scenarios that tune the reference)."""
        return replace(self, command=(*self.command, *args))

    def supports(self, option: str) -> bool:
        """Whether the target declares how to set ``option`` (``[options]`` in its file)."""
        return option in dict(self.options)

    def with_option(self, option: str, value: object = "") -> Target:
        """The same target with ``option`` set to ``value`` through its declared arguments."""
        template = dict(self.options)[option]
        return self.with_args(*(part.replace("{value}", str(value)) for part in template))

    @property
    def stops(self) -> tuple[str, ...]:
        """Every stop method the server supports (at least its ``stop``)."""
        return self.stop_methods or (self.stop,)

    def client_command(self, host: str, port: int, *extra: str) -> list[str]:
        """The target's own client program, with {host} {port} {python} filled in (run it in ``cwd``)."""
        values = {"{host}": host, "{port}": str(port), "{python}": sys.executable}
        cmd = []
        for part in self.client:
            for key, value in values.items():
                part = part.replace(key, value)
            cmd.append(part)
        return cmd + list(extra)

    @property
    def exit_words(self) -> tuple[str, ...]:
        """The words that end a session at the server (none when only the server's own client knows one)."""
        if self.protocol == "chat":
            return ("éxito", "exito", "/quit")
        return (self.pfo1.exit_word,) if self.pfo1.server_sees_exit_word and self.pfo1.exit_word else ()

    @property
    def deadline(self) -> float:
        """Seconds a clean stop may take."""
        return self.shutdown_deadline if self.shutdown_deadline is not None else self.stop_timeout


REFERENCE_OPTIONS = (
    ("max_clients", ("--max-clients", "{value}")),
    ("idle_timeout", ("--idle-timeout", "{value}")),
    ("busy_timeout", ("--busy-timeout", "{value}")),
    ("no_relay", ("--no-relay",)),
    ("client_retry", ("--retry", "{value}")),  # appended to the client command, not the server's
)


def reference(extra: tuple[str, ...] = ()) -> Target:
    """The built-in target: this project's ``chat.server``."""
    return Target(
        name="reference",
        command=(
            "{python}",
            "-m",
            "chat.server",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--db",
            "{db}",
            "--max-clients",
            "10000",
            *extra,
        ),
        log=LogMapping(ts="fecha_envio"),
        client=("{python}", "-m", "chat.client", "--host", "{host}", "--port", "{port}"),
        stop_methods=("sigterm", "sigint", "stdin-newline"),
        shutdown_deadline=2.0,
        options=REFERENCE_OPTIONS,
    )


_TOP_KEYS = {
    "name",
    "command",
    "cwd",
    "copy_cwd",
    "env",
    "host",
    "port",
    "protocol",
    "ready",
    "start_timeout",
    "stop",
    "stop_timeout",
    "relay",
    "max_line",
    "normalize",
    "log",
    "pfo1",
    "client",
    "stop_methods",
    "shutdown_deadline",
    "options",
    "busy_timeout",
    "single_session",
    "stop_exit_codes",
}


def _expect(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TargetError(f"{where}: '{key}' must be a {names}, not {value!r}")
    return value


PFO1_KEYS: dict[str, type] = {
    "ack": str,
    "exit_word": str,
    "framing": str,
    "error": str,
    "messages_per_connection": int,
    "server_sees_exit_word": bool,
}


def _regex(pattern: str, key: str, where: str) -> None:
    """Refuse a pattern that does not compile or that matches empty text (it would match everywhere)."""
    try:
        rx = re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise TargetError(f"{where}: '{key}' is not a valid regex: {exc}") from exc
    if rx.search("") is not None:
        raise TargetError(f"{where}: '{key}' matches empty text, so it would match anything: {pattern!r}")


def _choice(value: str, allowed: tuple[str, ...], key: str, where: str) -> str:
    if value not in allowed:
        raise TargetError(f"{where}: '{key}' must be one of {', '.join(allowed)}, not {value!r}")
    return value


def parse_target(data: dict[str, Any], where: str, base: Path | None = None) -> Target:
    """Build a Target from parsed TOML; ``base`` resolves a relative ``cwd``."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise TargetError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("name", "command"):
        if key not in data:
            raise TargetError(f"{where}: '{key}' is required")
    kw: dict[str, Any] = {"name": _expect(data, "name", str, where), "source": where}
    command = _expect(data, "command", list, where)
    if not command or not all(isinstance(c, str) for c in command):
        raise TargetError(f"{where}: 'command' must be a non-empty list of strings")
    kw["command"] = tuple(command)
    if "client" in data:
        client = _expect(data, "client", list, where)
        if not client or not all(isinstance(c, str) for c in client):
            raise TargetError(f"{where}: 'client' must be a non-empty list of strings")
        kw["client"] = tuple(client)
    if "stop_methods" in data:
        methods = _expect(data, "stop_methods", list, where)
        kw["stop_methods"] = tuple(_choice(m, STOPS, "stop_methods", where) for m in methods)
    if "shutdown_deadline" in data:
        kw["shutdown_deadline"] = _expect(data, "shutdown_deadline", float, where)
    if "busy_timeout" in data:
        kw["busy_timeout"] = _expect(data, "busy_timeout", float, where)
    if "single_session" in data:
        kw["single_session"] = _expect(data, "single_session", bool, where)
    if "stop_exit_codes" in data:
        codes = _expect(data, "stop_exit_codes", list, where)
        if not codes or not all(isinstance(c, int) and not isinstance(c, bool) and -64 <= c <= 255 for c in codes):
            raise TargetError(
                f"{where}: 'stop_exit_codes' must be a non-empty list of exit codes (0 to 255, or -N for a death by"
                f" signal N), not {codes!r}"
            )
        kw["stop_exit_codes"] = tuple(codes)
    if "options" in data:
        opts = _expect(data, "options", dict, where)
        for key, args in opts.items():
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise TargetError(f"{where}: [options] '{key}' must be a list of strings")
        kw["options"] = tuple((k, tuple(v)) for k, v in opts.items())
    if "cwd" in data:
        cwd = Path(_expect(data, "cwd", str, where))
        kw["cwd"] = cwd if cwd.is_absolute() or base is None else (base / cwd).resolve()
    if "env" in data:
        env = _expect(data, "env", dict, where)
        kw["env"] = tuple((str(k), str(v)) for k, v in env.items())
    for key, kind in (("copy_cwd", bool), ("host", str), ("port", int), ("ready", str), ("max_line", int)):
        if key in data:
            kw[key] = _expect(data, key, kind, where)
    for key in ("start_timeout", "stop_timeout"):
        if key in data:
            kw[key] = _expect(data, key, float, where)
    for key, allowed in (
        ("protocol", PROTOCOLS),
        ("stop", STOPS),
        ("relay", RELAYS),
        ("normalize", ("exact", "strip")),
    ):
        if key in data:
            kw[key] = _choice(_expect(data, key, str, where), allowed, key, where)
    protocol = kw.get("protocol", "chat")
    if protocol == "pfo1":
        if kw.get("relay", "none") != "none":
            raise TargetError(f"{where}: 'relay' needs protocol = \"chat\" (pfo1 replies carry no relayed messages)")
        kw["relay"] = "none"
        kw.setdefault("normalize", "strip")
    if not (0 <= kw.get("port", 0) <= 65535):
        raise TargetError(f"{where}: 'port' must be between 0 and 65535")
    ready = kw.get("ready", "listen")
    if ready != "listen" and not ready.startswith("line:"):
        raise TargetError(f'{where}: \'ready\' must be "listen" or "line:REGEX", not {ready!r}')
    if "log" in data:
        log = _expect(data, "log", dict, where)
        bad = set(log) - {"path", "table", "id", "content", "ts"}
        if bad:
            raise TargetError(f"{where}: unknown key(s) in [log]: {', '.join(sorted(bad))}")
        for key, value in log.items():
            if not isinstance(value, str) or not value:
                raise TargetError(f"{where}: [log] '{key}' must be a non-empty string")
            if key in ("table", "id", "content", "ts") and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
                raise TargetError(f"{where}: [log] '{key}' must be a plain SQL identifier, not {value!r}")
        kw["log"] = LogMapping(**log)
    elif protocol == "chat":
        kw["log"] = LogMapping(ts="fecha_envio")
    if "pfo1" in data:
        opts = _expect(data, "pfo1", dict, where)
        bad = set(opts) - set(PFO1_KEYS)
        if bad:
            raise TargetError(f"{where}: unknown key(s) in [pfo1]: {', '.join(sorted(bad))}")
        pw = where + " [pfo1]"
        for key, expected in PFO1_KEYS.items():
            if key in opts:
                _expect(opts, key, expected, pw)
        if "framing" in opts:
            _choice(opts["framing"], FRAMINGS, "framing", pw)
        if opts.get("messages_per_connection", 0) < 0:
            raise TargetError(f"{pw}: 'messages_per_connection' must be 0 (no limit) or more")
        for key in ("ack", "error"):
            if key in opts:
                _regex(opts[key], key, pw)
        kw["pfo1"] = Pfo1Options(**opts)
    return Target(**kw)


def load_target(spec: str | Path) -> Target:
    """``reference`` or the path of a TOML target file."""
    if str(spec) == "reference":
        return reference()
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TargetError(f"cannot read target file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{path}: not valid TOML: {exc}") from exc
    return parse_target(data, str(path), path.resolve().parent)


# ---------------------------------------------------------------------------
# Running a server
# ---------------------------------------------------------------------------

_live: set[subprocess.Popen[Any]] = set()
_live_lock = threading.Lock()


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


HARNESS_ROOT = str(Path(__file__).resolve().parent.parent)  # the directory that holds the harness package


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment, plus ``extra``, with the harness importable by a child (installed or not)."""
    env = {**os.environ, **(extra or {})}
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = HARNESS_ROOT + (os.pathsep + path if path else "")
    return env


def register_process(proc: subprocess.Popen[Any]) -> None:
    """Have ``kill_all`` kill this process group too (a child that runs scenarios, say)."""
    with _live_lock:
        _live.add(proc)


def unregister_process(proc: subprocess.Popen[Any]) -> None:
    """It ended on its own."""
    with _live_lock:
        _live.discard(proc)


def kill_all() -> None:
    """Kill every server this process started and has not stopped yet."""
    with _live_lock:
        procs = list(_live)
        _live.clear()
    for proc in procs:
        _kill_group(proc)
    if procs:  # their processes that left their groups: marked by this process, or by a child it ran scenarios in
        for pid in (os.getpid(), *(proc.pid for proc in procs)):
            kill_marked(f"{pid}.")


atexit.register(kill_all)


def install_sigterm_cleanup() -> None:
    """Make SIGTERM to the harness kill its servers and exit (call from the main thread)."""

    def on_term(signum: int, frame: object) -> None:
        kill_all()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)


class _Spawner:
    """Forks every server from one long-lived thread.

    Linux sends the parent-death signal when the *thread* that forked the child ends, so a server
    started from a short-lived thread (a nemesis restarting it) would be killed when that thread
    returns. Forking from this thread ties the servers' lives to the harness process instead.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[list[str], dict[str, Any], dict[str, Any], threading.Event]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        """``subprocess.Popen(cmd, **kw)``, run on the spawner thread."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="server-spawner", daemon=True)
                self._thread.start()
        box: dict[str, Any] = {}
        done = threading.Event()
        self._jobs.put((cmd, kw, box, done))
        if not done.wait(60):
            raise TargetError(f"could not start {cmd[0]!r} within 60 s")
        if "error" in box:
            raise box["error"]
        return box["proc"]  # type: ignore[no-any-return]

    def _serve(self) -> None:
        while True:
            try:
                cmd, kw, box, done = self._jobs.get(timeout=1.0)
            except queue.Empty:
                continue
            try:
                box["proc"] = subprocess.Popen(cmd, **kw)
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            finally:
                done.set()


spawn = _Spawner().popen


_next_port = itertools.count(int.from_bytes(os.urandom(2), "big"))  # two runs at once start apart


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now on ``host``: from ``CHAT_HARNESS_PORTS`` (``LOW-HIGH``, one range per test worker) or any."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    spec = os.environ.get("CHAT_HARNESS_PORTS")
    if not spec:
        with socket.socket(family) as s:
            s.bind((host, 0))
            return int(s.getsockname()[1])
    low, high = (int(x) for x in spec.split("-"))
    size = high - low + 1
    for _ in range(size):
        port = low + next(_next_port) % size  # rotate, so a port just closed is not reused at once
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise TargetError(f"no free port in CHAT_HARNESS_PORTS={spec}")


MAX_SCAN = 4 << 20  # bytes of server output scanned for tracebacks per look
OUTPUT_CAP = 16 << 20  # bytes of each of a server's stdout and stderr kept on disk
OUTPUT_TAIL = 256 << 10  # and, past that, the last bytes (written when the server ends)
_SWITCHES = ("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")  # /proc/PID/task/TID/status: times it ran
PORT_TRIES = 3  # ports tried when another program takes the one the harness picked
PORT_WAIT = 75.0  # seconds to wait for a fixed port to leave TIME_WAIT (Linux keeps it about 60 s)
NOT_CODE = {".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache", ".tox"}
NOT_CODE_SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg", ".gif", ".doc", ".docx", ".ppt", ".pptx", ".zip", ".mp4")
BIG_FILE = 5 << 20

_status: list[Callable[[str], None]] = []


def set_status(callback: Callable[[str], None] | None) -> None:
    """Where to say what the harness is waiting for (the CLI's live status line)."""
    _status.clear()
    if callback is not None:
        _status.append(callback)


def _say(text: str) -> None:
    for callback in _status:
        callback(text)


def _not_code(directory: str, names: list[str]) -> set[str]:
    """What ``copy_cwd`` leaves behind: repositories, caches, documents, pictures and anything over 5 MB."""
    skip = set()
    for name in names:
        path = os.path.join(directory, name)
        if (
            name in NOT_CODE
            or name.lower().endswith(NOT_CODE_SUFFIXES)
            or (os.path.isfile(path) and os.path.getsize(path) > BIG_FILE)
        ):
            skip.add(name)
    return skip


class _Drain(threading.Thread):
    """Copies one of a server's output pipes to a file, keeping at most OUTPUT_CAP bytes (and the tail)."""

    def __init__(self, fd: int, path: Path) -> None:
        super().__init__(name=f"drain {path.name}", daemon=True)
        self.fd = fd
        self.path = path
        self.dropped = 0

    def run(self) -> None:
        tail = bytearray()
        with open(self.path, "ab", buffering=0) as out:
            kept = out.tell()
            try:
                while data := os.read(self.fd, 65536):
                    room = OUTPUT_CAP - kept
                    if room > 0:
                        out.write(data[:room])
                        kept += min(room, len(data))
                        data = data[room:]
                    if data:
                        self.dropped += len(data)
                        tail += data
                        del tail[:-OUTPUT_TAIL]
            except OSError:
                pass
            finally:
                os.close(self.fd)
                if self.dropped:
                    note = f"\n[chat-harness: {self.dropped - len(tail)} bytes of output not kept; the last {len(tail)} follow]\n"
                    out.write(note.encode() + bytes(tail))


def listening(host: str, port: int) -> bool | None:
    """Whether a socket listens on ``port`` in this network namespace (None when /proc cannot tell)."""
    inodes = ports.listening_inodes(port)
    return None if inodes is None else bool(inodes)


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` now without SO_REUSEADDR."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(host: str, port: int, timeout: float = PORT_WAIT) -> float:
    """Wait (bounded) until ``host:port`` can be bound without SO_REUSEADDR; return the seconds waited."""
    started = time.monotonic()
    while not port_free(host, port):
        waited = time.monotonic() - started
        if waited > timeout:
            break
        if listening(host, port):
            break  # a server holds it: starting another will show what the target does about that
        _say(f"waiting for port {port} to leave TIME_WAIT ({waited:.0f} s)")
        time.sleep(0.25)
    return round(time.monotonic() - started, 3)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def describe_fds(before: Counter[str] | None, after: Counter[str] | None) -> str:
    """What leaked, in words: ``+3 socket, +2 chat.db``."""
    if before is None or after is None:
        return ""
    grown = after - before
    return ", ".join(f"+{n} {what}" for what, n in grown.most_common(5))


def rebindable(host: str, port: int) -> bool:
    """Whether a new server could listen on ``host:port`` right now (SO_REUSEADDR, as servers restart)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(1)
        except OSError:
            return False
    return True


def can_connect(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class StopResult:
    """How a server ended."""

    method: str
    exit_code: int | None
    seconds: float
    forced: bool
    left: int = 0  # processes of its own (children it started) still running once it had exited


LEFT_GRACE = 1.0  # seconds at least that a stopped server's own processes (its children) get to end after it exited


def _stat(pid: str) -> tuple[int, str, int, int] | None:
    """A process's id, state, parent and process group, from /proc (None if it is gone or unreadable)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # the command name, in brackets, may hold anything
    try:
        return int(pid), fields[0], int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None


def _state(task: str) -> str:
    """The state letter of a thread (``/proc/PID/task/TID``); raise OSError if it cannot be read."""
    text = Path(f"{task}/stat").read_text()
    return text[text.rfind(")") + 2 :].split()[0]


def processes() -> list[tuple[int, str, int, int]]:
    """Every process's id, state, parent and process group (Linux's /proc; empty elsewhere)."""
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    return [stat for pid in pids if (stat := _stat(pid)) is not None]


def group_running(pgid: int, mark: str | None = None) -> int:
    """Processes of group ``pgid``, or carrying ``mark`` (see ``marked``), that still run (zombies are over), once the
    group's leader (process ``pgid``) is gone: a process that took that number since is not counted."""
    stats = processes()
    carry = marked(mark, [pid for pid, _, _, group in stats if group != pgid]) if mark else set()
    return sum(1 for pid, state, _, group in stats if pid != pgid and state != "Z" and (group == pgid or pid in carry))


MARK = "CHAT_HARNESS_SERVER"  # set in each server's environment: whatever the server starts inherits it
_marks = itertools.count(1)


def new_mark() -> str:
    """A mark for one server this process starts: this process's id, a dot, a number."""
    return f"{os.getpid()}.{next(_marks)}"


def marked(mark: str, pids: list[int] | None = None) -> set[int]:
    """The processes (of ``pids``, or all) whose environment holds ``MARK=mark``, or ``MARK=mark...`` when ``mark``
    ends with a dot: a server's own processes, even those that left its process group (``setsid``, a daemon's double
    fork) and outlived it, which a group kill misses (readable only for this user's processes, or as root)."""
    needle = f"\0{MARK}={mark}".encode() + (b"" if mark.endswith(".") else b"\0")
    if pids is None:
        pids = [stat[0] for stat in processes()]
    found = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if (b"\0" + environ + b"\0").find(needle) >= 0:
            found.add(pid)
    return found


def kill_marked(mark: str, rounds: int = 20) -> int:
    """SIGKILL every running process that carries ``mark`` until none is left (those it starts meanwhile too, for
    up to ``rounds`` rounds); return how many were killed."""
    killed, refused = 0, {os.getpid()}
    for _ in range(rounds):
        running = {pid for pid, state, _, _ in processes() if state != "Z"}
        targets = marked(mark, sorted(running - refused))
        if not targets:
            break
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
            except PermissionError:  # a set-user-id program it ran: not waited for again
                refused.add(pid)
        deadline = time.monotonic() + 1.0
        while any((s := _stat(str(pid))) is not None and s[1] != "Z" for pid in targets):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)  # polling /proc: a process not our child cannot be waited on
    return killed


class ServerRun:
    """One running instance of a target, in ``workdir``."""

    def __init__(self, target: Target, workdir: Path, port: int | None = None, fresh: bool = True) -> None:
        """Prepare (not start) an instance; ``port`` overrides the target's; ``fresh=False`` reuses ``workdir`` as is."""
        self.target = target
        self.workdir = workdir.resolve()
        self.host = target.host
        self.port = port if port is not None else target.port
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout_path = workdir / "server.stdout"
        self.stderr_path = workdir / "server.stderr"
        self.stop_result: StopResult | None = None
        self.started_at = 0.0
        self.warmed = False  # a first message went through (the harness's resource baseline comes after)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.waited = 0.0  # seconds spent waiting for a fixed port to leave TIME_WAIT before the start
        self.sessions = 0  # client sessions given to this instance (single-session targets)
        self._drains: list[_Drain] = []
        self._launched_at: tuple[int, int] = (0, 0)
        self.env_mark = ""  # in the environment of this instance's processes (``MARK``), once started
        if target.copy_cwd and target.cwd is not None:
            if fresh:
                shutil.copytree(target.cwd, self.workdir / "app", dirs_exist_ok=True, ignore=_not_code)
            self.appdir = self.workdir / "app"
        else:
            self.appdir = target.cwd if target.cwd is not None else self.workdir

    @property
    def db_path(self) -> Path:
        """The server's database file."""
        return Path(self.expand(self.target.log.path))

    def expand(self, text: str) -> str:
        """Substitute {host} {port} {db} {workdir} {python} in ``text``."""
        values = {
            "host": self.host,
            "port": str(self.port),
            "workdir": str(self.appdir),
            "python": sys.executable,
        }
        values["db"] = str(self.workdir / "chat.db")
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        return text

    def start(self, wait_port: bool = True) -> ServerRun:
        """Start the server and wait until it is ready; raise TargetError with its output if it is not.

        If another program listens on the port instead of the server (it took a port the harness
        picked before the server could bind it), the harness picks another port, up to three times;
        on a port it did not pick, that is a clear error rather than a run against the wrong server.
        """
        picked = self.port == 0
        for attempt in range(PORT_TRIES):
            last = not picked or attempt == PORT_TRIES - 1
            self.launch(wait_port)
            try:
                self._wait_ready()
                other = ports.foreign_listener(self.port, self.pid)
            except TargetError:
                self.kill()
                if last or not listening(self.host, self.port):  # it failed on its own, not for a taken port
                    raise
                self.port = free_port(self.host)  # it could not bind the port someone else took meanwhile
                continue
            except BaseException:
                self.kill()
                raise
            if other is None:
                return self
            self.kill()
            if last:
                raise PortTaken(
                    f"port {self.port} is held by another program, {other}, not by {self.target.name}:"
                    " the harness will not test the wrong server"
                )
            self.port = free_port(self.host)
        raise AssertionError("unreachable")

    def launch(self, wait_port: bool = True) -> ServerRun:
        """Start the process without waiting for it to be ready.

        A fixed port still held by connections in TIME_WAIT would make a server without SO_REUSEADDR
        fail to bind: unless ``wait_port`` is False (to test an immediate restart), wait until it is free.
        """
        if self.port == 0:
            self.port = free_port(self.host)
        elif wait_port and self.target.fixed_port:  # a port the harness chose is its own business
            self.waited = wait_for_port(self.host, self.port)
        cmd = [self.expand(c) for c in self.target.command]
        env = python_env(dict(self.target.env))
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.env_mark = env[MARK] = new_mark()
        launcher = [sys.executable, str(Path(__file__).with_name("launch.py")), str(os.getpid()), "--"]
        self._launched_at = self.mark()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            self.proc = spawn(
                launcher + cmd,
                cwd=self.appdir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(out_r)
            os.close(err_r)
            raise TargetError(f"{self.target.name}: cannot run {cmd[0]!r}: {exc.strerror}") from exc
        finally:
            os.close(out_w)
            os.close(err_w)
        self._drains = [_Drain(out_r, self.stdout_path), _Drain(err_r, self.stderr_path)]
        for drain in self._drains:
            drain.start()
        with _live_lock:
            _live.add(self.proc)
        self.started_at = time.monotonic()
        return self

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the process ends within ``timeout`` seconds (None if it is still running)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.target.start_timeout
        line = re.compile(self.target.ready[5:]) if self.target.ready.startswith("line:") else None
        while True:
            code = self.proc.poll()
            if code is not None:
                self._join_drains(1.0)
                raise TargetError(f"{self.target.name} exited with code {code} before it was ready: {self.tails()}")
            if line is not None:
                if line.search(self.output_since(self._launched_at)[0]):  # this instance's output, not an earlier one's
                    return
            elif self._answers():
                return
            if time.monotonic() > deadline:
                raise TargetError(
                    f"{self.target.name} not ready within {self.target.start_timeout:g} s: {self.tails()}"
                )
            time.sleep(0.02)

    def _answers(self) -> bool:
        """Whether the server accepts a connection (and, speaking ``chat``, greets it: it is serving).

        A pfo1 server is only looked at from outside (its socket in LISTEN state) where the system says:
        a server that serves one session, or one client at a time, must not spend it on a probe.
        """
        if self.target.protocol != "chat":
            state = listening(self.host, self.port)
            if state is not None:
                return state
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2) as s:
                if self.target.protocol == "chat":
                    s.settimeout(max(0.2, self.target.start_timeout / 3))
                    return bool(s.recv(64))
                return True
        except OSError:
            return False

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, method: str | None = None) -> StopResult:
        """Stop by ``method`` (default: the target's); SIGKILL the group after ``stop_timeout``.

        ``sigint`` goes to the server's process group, as Ctrl+C in a terminal does; ``sigterm`` to the
        server's process alone, as ``kill PID`` does.
        """
        assert self.proc is not None
        method = method or self.target.stop
        t0 = time.monotonic()
        forced = False
        if self.proc.poll() is None:
            try:
                if method == "sigterm":
                    self.proc.send_signal(signal.SIGTERM)
                elif method == "sigint":
                    # Ctrl+C: a terminal signals its foreground process group, the children the server forked too
                    os.killpg(self.proc.pid, signal.SIGINT)
                elif method == "stdin-newline":
                    assert self.proc.stdin is not None
                    self.proc.stdin.write(b"\n")
                    self.proc.stdin.flush()
                else:
                    os.killpg(self.proc.pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass  # it died meanwhile
            try:
                self.proc.wait(self.target.stop_timeout)
            except subprocess.TimeoutExpired:
                forced = True
        seconds = time.monotonic() - t0
        # its children get what is left of the stop's timeout (at least LEFT_GRACE) to end too
        left = 0 if forced else self._left_running(max(LEFT_GRACE, self.target.stop_timeout - seconds))
        self.kill()
        self.stop_result = StopResult(method, self.proc.returncode, seconds, forced, left)
        return self.stop_result

    def _left_running(self, grace: float) -> int:
        """Once the server exited: how many processes of its group (children it forked) still run ``grace`` s later."""
        assert self.proc is not None
        deadline = time.monotonic() + grace
        while (left := group_running(self.proc.pid, self.env_mark)) and time.monotonic() < deadline:
            time.sleep(0.02)  # polling /proc: nothing to wait on for another process's children
        return left

    def zombies(self) -> int | None:
        """The server's child processes that ended and that it has not reaped (None if /proc is unreadable)."""
        if not Path("/proc/self/stat").exists():
            return None
        pid = self.pid
        return sum(1 for _, state, parent, _ in processes() if parent == pid and state == "Z")

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it (idempotent)."""
        if self.proc is None:
            return
        _kill_group(self.proc)
        if self.env_mark:
            kill_marked(self.env_mark)  # those that left its group
        with _live_lock:
            _live.discard(self.proc)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self._join_drains(2.0)

    def _join_drains(self, timeout: float) -> None:
        """Wait for the server's output to be written down (a process that left a child holding it: give up)."""
        deadline = time.monotonic() + timeout
        for drain in self._drains:
            drain.join(max(0.0, deadline - time.monotonic()))

    def threads(self) -> int | None:
        """The server process's thread count now (None if unknown)."""
        return self._status("Threads:")

    def thread_runs(self) -> dict[int, int] | None:
        """Each server thread's id, and how many times it has run and stopped so far (None if unknown)."""
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return None
        out: dict[int, int] = {}
        for tid in tids:
            try:
                lines = Path(f"/proc/{self.pid}/task/{tid}/status").read_text().splitlines()
                out[int(tid)] = sum(int(line.split()[1]) for line in lines if line.startswith(_SWITCHES))
            except (OSError, ValueError, IndexError):
                continue  # it ended meanwhile
        return out

    def connection_waits(self, ports: set[int]) -> set[int] | None:
        """The server threads asleep now waiting on a connection that one of ``ports`` (clients' own ports) opened to
        it: in a read of its socket, or a poll or select that includes it (``harness/syscalls.py``); None when this
        machine's calls are not known or ``/proc`` will not tell."""
        machine = os.uname().machine
        if not syscalls.known(machine):
            return None
        tables = []
        for name in ("tcp", "tcp6"):  # tcp6 is missing where IPv6 is off
            with contextlib.suppress(OSError):
                tables.append(Path(f"/proc/{self.pid}/net/{name}").read_text())
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return None
        if not tables:
            return None
        theirs = {f"socket:[{inode}]" for inode in syscalls.connections_from(tables, ports)}
        out: set[int] = set()
        try:
            mem = open(f"/proc/{self.pid}/mem", "rb", buffering=0)  # noqa: SIM115  (closed below)
        except OSError:
            mem = None  # poll and select cannot be read: only socket reads count

        def read_memory(address: int, size: int) -> bytes | None:
            if mem is None:
                return None
            try:
                mem.seek(address)
                return mem.read(size)
            except (OSError, OverflowError, ValueError):
                return None

        try:
            for tid in tids:
                task = f"/proc/{self.pid}/task/{tid}"
                try:
                    asleep = _state(task) == "S"
                    line = Path(f"{task}/syscall").read_text()
                    asleep = asleep and _state(task) == "S"  # the call read is the one it sleeps in
                except (FileNotFoundError, ProcessLookupError):
                    if os.path.isdir(task):  # no syscall file on this kernel
                        return None
                    continue  # it ended meanwhile
                except (OSError, IndexError):  # not ours to read (ptrace rules), or a line this does not know
                    return None
                if asleep and any(
                    self._fd_target(fd) in theirs for fd in syscalls.waited_descriptors(line, machine, read_memory)
                ):
                    out.add(int(tid))
        finally:
            if mem is not None:
                mem.close()
        return out

    def _fd_target(self, fd: int) -> str:
        try:
            return os.readlink(f"/proc/{self.pid}/fd/{fd}")
        except OSError:
            return ""

    def rss_kb(self) -> int | None:
        """The server process's resident memory in kB now (None if unknown)."""
        return self._status("VmRSS:")

    def _status(self, field: str) -> int | None:
        """A number from /proc/PID/status (None if unknown)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1])
        except (OSError, ValueError):
            return None
        return None

    def fds(self) -> int | None:
        """How many file descriptors the server has open now (None if unknown)."""
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return None

    def mark(self) -> tuple[int, int]:
        """Where the server's stdout and stderr end now (to read only what comes after)."""
        return (_size(self.stdout_path), _size(self.stderr_path))

    def output_since(self, mark: tuple[int, int] | None = None) -> tuple[str, str]:
        """What the server wrote to stdout and to stderr since ``mark`` (everything without one)."""
        out = []
        for path, start in zip((self.stdout_path, self.stderr_path), mark or (0, 0), strict=True):
            try:
                with open(path, "rb") as fh:
                    fh.seek(start)
                    out.append(fh.read(MAX_SCAN).decode("utf-8", errors="replace"))
            except OSError:
                out.append("")
        return out[0], out[1]

    def tracebacks(self, since: tuple[int, int] | None = None) -> list[Traceback]:
        """The Python tracebacks the server printed since ``since`` (on stderr, or on stdout)."""
        stdout, stderr = self.output_since(since)
        return parse_tracebacks(stderr) + parse_tracebacks(stdout)

    def traceback(self) -> str:
        """The first lines of the first Python traceback the server printed, if any."""
        found = [tb for tb in self.tracebacks() if not tb.harmless]
        return found[0].text[:400] if found else ""

    def fd_targets(self) -> Counter[str] | None:
        """What the server's open descriptors point at: ``socket``, ``pipe``, or a file's name (None if unknown)."""
        try:
            names = os.listdir(f"/proc/{self.pid}/fd")
        except OSError:
            return None
        out: Counter[str] = Counter()
        for name in names:
            try:
                target = os.readlink(f"/proc/{self.pid}/fd/{name}")
            except OSError:
                continue
            kind = target.split(":", 1)[0] if target.startswith(("socket:", "pipe:")) else None
            if target.startswith("anon_inode:"):
                kind = target.split(":", 1)[1].strip("[]")
            out[kind or os.path.basename(target) or target] += 1
        return out

    def integrity(self) -> str:
        """``PRAGMA integrity_check`` of the server's database file (``ok`` when sound)."""
        if not self.db_path.exists():
            return f"no database at {self.db_path}"
        try:
            with contextlib.closing(sqlite3.connect(self.db_path, timeout=5)) as conn:
                return "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
        except sqlite3.Error as exc:
            return str(exc)

    def aftermath(self, result: StopResult, since: tuple[int, int] | None = None) -> dict[str, Any]:
        """Everything invariant 9 judges about a stop: exit, time, the log's integrity, the port, and the
        tracebacks printed since ``since`` (the moment the stop began)."""
        return {
            "method": result.method,
            "exit_code": result.exit_code,
            "exit_codes": list(self.target.stop_exit_codes),
            "seconds": round(result.seconds, 3),
            "forced": result.forced,
            "left_running": result.left,
            "timeout": self.target.stop_timeout,
            "deadline": self.target.deadline,
            "rebind": rebindable(self.host, self.port),
            "integrity": self.integrity(),
            "tracebacks": [tb.to_dict() for tb in self.tracebacks(since)],
        }

    def stderr_tail(self, lines: int = 5) -> str:
        """The last lines the server wrote to stderr, on one line."""
        text = self.output_since(self._launched_at)[1].strip().splitlines()
        return " | ".join(text[-lines:]) or "(stderr empty)"

    def tails(self, lines: int = 4) -> str:
        """The last lines this instance wrote to stdout and to stderr (student servers print errors on stdout)."""
        out, err = (t.strip().splitlines() for t in self.output_since(self._launched_at))
        return f"stdout: {' | '.join(out[-lines:]) or '(empty)'}; stderr: {' | '.join(err[-lines:]) or '(empty)'}"
