"""``chat-harness doctor TARGET``: check every claim of a target file against the real server, in seconds.

It starts the server once, sends one message, reads the answer and the log, stops the server, and
says for each key whether it holds — and, when it does not, what the server actually did and which
value would fit (a reply the ack pattern misses is quoted; a log that is not where the file says
is looked for; the tables and columns found are listed).
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.log import LogError, LogReader
from harness.runner import new_run_id
from harness.target import ServerRun, Target, TargetError, wait_for_port
from harness.wire import for_target

ANSWER_WAIT = 5.0


@dataclass
class Finding:
    """One claim of the target file, checked."""

    key: str
    ok: bool | None
    said: str
    fix: str = ""


@dataclass
class Diagnosis:
    """Everything the doctor found."""

    target: Target
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    isolation: str | None = None  # how a fixed-port server was kept apart from this machine's port

    def add(self, key: str, ok: bool | None, said: str, fix: str = "") -> None:
        """Record one checked claim."""
        self.findings.append(Finding(key, ok, said, fix))

    @property
    def healthy(self) -> bool:
        """No claim was found false."""
        return all(f.ok is not False for f in self.findings)

    def text(self) -> str:
        """For people: one line per claim, a fix under each wrong one."""
        where = f", in a {self.isolation} of its own" if self.isolation else ""
        lines = [f"chat-harness doctor: {self.target.name} ({self.target.source}{where})"]
        for f in self.findings:
            mark = {True: "ok  ", False: "FAIL", None: "??  "}[f.ok]
            lines.append(f"  {mark} {f.key}: {f.said}")
            if f.fix and f.ok is not True:
                lines.append(f"       fix: {f.fix}")
        verdict = "the target file matches the server" if self.healthy else "fix the lines marked FAIL"
        lines.append(f"{verdict} ({self.seconds:.1f} s)")
        return "\n".join(lines)


def diagnose(target: Target, workdir: Path, isolation: str | None = None) -> Diagnosis:
    """Start ``target`` once in ``workdir`` and check its file's claims (``isolation``: the namespace it runs in)."""
    started = time.monotonic()
    d = Diagnosis(target, isolation=isolation)
    srv = ServerRun(target, workdir / "server")
    try:
        if target.fixed_port:
            waited = wait_for_port(target.host, target.port, timeout=10)
            if waited > 1:
                d.add("port", None, f"port {target.port} was busy (TIME_WAIT?) for {waited:.0f} s before the start")
        try:
            srv.start()
        except TargetError as exc:
            d.add("command / ready", False, str(exc)[:500], _start_fix(target, str(exc)))
            return d
        d.add(
            "command / ready",
            True,
            f"ready {time.monotonic() - srv.started_at:.2f} s after the start on port {srv.port}",
        )
        run_id = new_run_id()
        token = f"{run_id}.0.1"
        texts = [f"[{token}] hola doctor"]
        if target.protocol == "pfo1" and target.pfo1.messages_per_connection != 1:
            texts.append(f"[{run_id}.0.2] otra vez")  # does the connection outlive one message?
        replies = _talk(target, srv, texts)
        _check_reply(d, target, replies[0])
        if len(replies) > 1 and not replies[0].startswith(CLOSED):
            _check_second(d, replies[1])
        time.sleep(0.2)  # a commit after the answer (itself a defect) still counts as "stored" here
        _check_log(d, target, srv, token)
        if target.protocol == "pfo1":
            _check_session(d, target, srv)
        _check_stop(d, target, srv)
    finally:
        srv.kill()
        d.seconds = time.monotonic() - started
    return d


CLOSED = "\x00"  # a reply that starts so: the connection failed or the server closed it (the reason follows)


def _talk(target: Target, srv: ServerRun, texts: list[str]) -> list[str]:
    """Send ``texts`` on one connection, each once the previous one was answered; return the answers.

    An answer is whatever came back within a few seconds; one starting with CLOSED says the connection
    failed or the server closed it before answering (and no later text is sent).
    """
    wire = for_target(target)
    out: list[str] = []
    try:
        with socket.create_connection((srv.host, srv.port), timeout=ANSWER_WAIT) as s:
            s.settimeout(ANSWER_WAIT)
            if target.protocol == "chat":
                with contextlib.suppress(TimeoutError):
                    s.recv(4096)  # the greeting
            for text in texts:
                token = text[1 : text.index("]")]
                try:
                    s.sendall(wire.encode(text, token if wire.ids else None))
                    data, closed = _answer(target, s)
                except OSError as exc:
                    out.append(f"{CLOSED}{exc.strerror or exc}")
                    break
                reply = data.decode("utf-8", errors="replace")
                out.append(f"{CLOSED}the server closed the connection" if closed and not reply.strip() else reply)
                if closed:
                    if len(out) < len(texts) and reply.strip():
                        out.append(f"{CLOSED}the server closed the connection after answering the first")
                    break
    except OSError as exc:
        out.append(f"{CLOSED}{exc.strerror or exc}")
    return out or [f"{CLOSED}nothing sent"]


def _answer(target: Target, s: socket.socket) -> tuple[bytes, bool]:
    """What the server says within ANSWER_WAIT (until it falls silent after saying something); and whether it closed."""
    data = b""
    deadline = time.monotonic() + ANSWER_WAIT
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, min(0.3, deadline - time.monotonic())))
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            if data and (target.protocol != "chat" or b"\n" in data):
                return data, False  # something came, then silence
            continue
        if not chunk:
            return data, True
        data += chunk
    return data, False


def _check_second(d: Diagnosis, reply: str) -> None:
    if reply.startswith(CLOSED):
        d.add(
            "[pfo1] messages_per_connection",
            False,
            f"a second message on the same connection got no answer: {reply[1:]}",
            "[pfo1] messages_per_connection = 1 (the server answers one message per connection)",
        )
    elif not reply.strip():
        d.add("second message", None, f"a second message on the same connection got no answer within {ANSWER_WAIT:g} s")
    else:
        d.add("second message", True, "a second message on the same connection was answered")


def _check_session(d: Diagnosis, target: Target, srv: ServerRun) -> None:
    """Does the server outlive its first client? (``single_session`` says it does not.)"""
    code = srv.wait_exit(1.0)
    if code is None and target.single_session:
        d.add("single_session", None, "single_session = true, yet the server still runs after its first client left")
    elif code is not None and not target.single_session:
        d.add(
            "single_session",
            False,
            f"the server exited (code {code}) once its first client left",
            "single_session = true (the harness then starts it again for every client session)",
        )
    elif code is not None:
        d.add("single_session", True, f"the server exited (code {code}) once its client left, as declared")


def _check_reply(d: Diagnosis, target: Target, reply: str) -> None:
    if reply.startswith(CLOSED):
        d.add("answer", False, f"sending a message failed: {reply[1:]}")
        return
    if not reply.strip():
        fix = ""
        if target.protocol == "pfo1" and target.pfo1.framing != "newline":
            fix = 'if the server reads lines (makefile, readline, split on "\\n"): [pfo1] framing = "newline"'
        d.add("answer", False, f"no answer within {ANSWER_WAIT:g} s", fix)
        return
    if target.protocol == "chat":
        ok = "Mensaje recibido" in reply and " id=" in reply
        d.add(
            "answer",
            ok,
            f"the server answered {reply.strip()[:200]!r}",
            "" if ok else 'protocol = "pfo1", with an ack pattern',
        )
        return
    ack = re.compile(target.pfo1.ack, re.MULTILINE)
    m = ack.search(reply)
    if m:
        ts = m.groupdict().get("ts")
        d.add(
            "[pfo1] ack",
            True,
            f"{target.pfo1.ack!r} matches the answer {reply.strip()[:120]!r}" + (f" (ts = {ts!r})" if ts else ""),
        )
        return
    words = re.match(r"\W*([^\d\[\]():]+?)\s*[:\[(\d]", reply.strip())
    guess = _pattern(words.group(1).strip() if words else reply.strip()[:20])
    d.add(
        "[pfo1] ack",
        False,
        f"{target.pfo1.ack!r} does not match what the server answered: {reply.strip()[:200]!r}",
        f"[pfo1] ack = {guess!r}",
    )


def _pattern(text: str) -> str:
    """``text`` as a regex that matches it literally (spaces left as they are, for people to read)."""
    return "".join("\\" + ch if ch in ".^$*+?{}[]\\|()" else ch for ch in text)


def _check_log(d: Diagnosis, target: Target, srv: ServerRun, token: str) -> None:
    path = srv.db_path
    if not path.exists():
        found = sorted(p for pattern in ("*.db", "*.sqlite", "*.sqlite3") for p in srv.appdir.rglob(pattern))
        fix = ", ".join(f'path = "{{workdir}}/{p.relative_to(srv.appdir)}"' for p in found[:3]) or (
            "no SQLite file appeared in the server's directory; is the message stored at all?"
        )
        d.add("[log] path", False, f"no database at {path}", fix)
        return
    d.add("[log] path", True, f"{path.name} exists")
    tables = _tables(path)
    if target.log.table not in tables:
        d.add(
            "[log] table",
            False,
            f"no table {target.log.table!r}; the file has {sorted(tables) or 'no tables'}",
            f"table = {sorted(tables)[0]!r}" if len(tables) == 1 else "",
        )
        return
    columns = tables[target.log.table]
    missing = [c for c in (target.log.id, target.log.content, target.log.ts) if c and c not in columns]
    if missing:
        d.add(
            "[log] columns",
            False,
            f"{target.log.table} has columns {columns}, not {missing}",
            _column_fix(path, target, columns, token),
        )
        return
    d.add("[log] table / columns", True, f"{target.log.table}({', '.join(columns)})")
    try:
        stored = LogReader(path, target.log).contains(f"[{token}]", 0)
    except LogError as exc:
        d.add("the message's row", False, str(exc))
        return
    d.add(
        "the message's row",
        stored,
        f"the message sent is in {target.log.table}.{target.log.content}"
        if stored
        else "the message sent is not in the log",
        "" if stored else _column_fix(path, target, columns, token),
    )


def _tables(path: Path) -> dict[str, list[str]]:
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5)) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {
                n: [r[1] for r in conn.execute(f"PRAGMA table_info('{n}')")]
                for n in names
                if not n.startswith("sqlite_")
            }
    except sqlite3.Error:
        return {}


def _column_fix(path: Path, target: Target, columns: list[str], token: str) -> str:
    """Which column holds the message just sent (its token), as a target file line."""
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5)) as conn:
            for col in columns:
                hit = conn.execute(
                    f'SELECT 1 FROM "{target.log.table}" WHERE instr(CAST("{col}" AS TEXT), ?) > 0 LIMIT 1', (token,)
                ).fetchone()
                if hit:
                    return f"[log] content = {col!r}"
    except sqlite3.Error:
        pass
    return ""


def _check_stop(d: Diagnosis, target: Target, srv: ServerRun) -> None:
    if not srv.alive and target.single_session:  # it ended with its session: stop a fresh instance instead
        fresh = ServerRun(target, srv.workdir.parent / "stop-check")
        try:
            fresh.start()
            _check_stop(d, target, fresh)
        except TargetError as exc:
            d.add("stop", None, f"not checked: a second instance did not start ({str(exc)[:200]})")
        finally:
            fresh.kill()
        return
    if not srv.alive:
        d.add("stop", None, "not checked: the server had already exited")
        return
    result = srv.stop()
    if not result.forced and result.exit_code in target.stop_exit_codes:
        d.add("stop", True, f"{result.method} ended it with exit code {result.exit_code} in {result.seconds:.2f} s")
        return
    said = f"{result.method}: " + (
        f"still running after {target.stop_timeout:g} s (killed)" if result.forced else f"exit code {result.exit_code}"
    )
    fix = "" if result.forced else _by_signal(result.method, result.exit_code, target.stop_exit_codes)
    if result.forced:
        ended: list[tuple[str, int | None]] = []
        for method in (m for m in ("sigint", "sigterm", "stdin-newline") if m != result.method):
            again = ServerRun(target, srv.workdir.parent / f"stop-{method}")
            try:
                again.start()
                tried = again.stop(method)
            except TargetError:
                continue
            finally:
                again.kill()
            if not tried.forced:
                ended.append((method, tried.exit_code))
        ended.sort(key=lambda m: m[1] != 0)  # a clean exit first
        if ended:
            fix = f'stop = "{ended[0][0]}" (it ended the server, exit code {ended[0][1]})'
        else:
            fix = 'stop = "kill" (nothing else ends it; the shutdown scenarios will not apply)'
    d.add("stop", False if result.forced else None, said, fix)


STOP_SIGNALS = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}


def _by_signal(method: str, code: int | None, codes: tuple[int, ...]) -> str:
    """What to declare when the stop's own signal ended the server (128 + its number, as a JVM exits, or killed by
    it): a clean stop by that runtime's convention, if the rest of the stop is clean (the scenarios still judge it)."""
    sig = STOP_SIGNALS.get(method)
    if sig is None or code not in (128 + sig, -sig):
        return ""
    how = f"128 + {sig.name}, as a JVM exits on it" if code > 0 else f"killed by {sig.name}, its default action"
    return (
        f"exit code {code} is {how}: if the server closes what it must on {sig.name} (a shutdown hook, say), "
        f"declare stop_exit_codes = [{', '.join(str(c) for c in sorted({*codes, code}))}]; a stop is then judged "
        "by everything else (time, tracebacks, the log, the port, processes left)"
    )


def _start_fix(target: Target, error: str) -> str:
    if "in use" in error or "already" in error or "Errno 98" in error:
        return f"something else listens on port {target.port}; stop it (or give the server another port)"
    if target.ready.startswith("line:"):
        return 'the ready line never appeared: ready = "listen" waits for the port instead'
    return "check 'command' and 'cwd' (the server's own output is quoted above)"
