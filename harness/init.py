"""``chat-harness init DIR``: a first target file for a server directory, guessed from its code.

It reads the Python files of the directory (it runs nothing): the file that binds and listens,
the port, the SQLite file and its ``CREATE TABLE``, the reply sent for each message, whether the
server reads lines, how it stops, the exit word, and a client program beside it. The guesses go
into a TOML file with a comment on each; ``chat-harness doctor`` then checks them against the
server itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

CONTENT_NAMES = ("contenido", "content", "mensaje", "message", "texto", "text", "msg")


@dataclass
class Guess:
    """What the code suggests."""

    server: str = "servidor.py"
    port: int = 5000
    db: str = "chat.db"
    table: str = "mensajes"
    columns: list[str] = field(default_factory=lambda: ["id", "contenido", "fecha_envio", "ip_cliente"])
    ack: str = "Mensaje recibido"
    framing: str = "raw"
    error: str | None = None  # how the server refuses a message, if it does
    stop: str = "sigint"
    exit_word: str = "éxito"
    server_sees_exit_word: bool = True
    messages_per_connection: int = 0
    single_session: bool = False
    client: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def content(self) -> str:
        """The column that holds the message text."""
        for name in CONTENT_NAMES:
            if name in self.columns:
                return name
        rest = [c for c in self.columns if c not in ("id",) and not c.startswith(("fecha", "ip", "sent", "date"))]
        return rest[0] if rest else "contenido"


# A server the standard library binds and listens for: socketserver's, or asyncio's.
SERVES = re.compile(r"\b(?:Threading|Forking)?TCPServer\(|\bserve_forever\(|\bstart_server\(|\bcreate_server\(")


def _serves(code: str) -> bool:
    """Whether ``code`` runs a server: it binds and listens, or has socketserver or asyncio do it (comments aside)."""
    code = re.sub(r"#[^\n]*", "", code)
    return (".bind(" in code and ".listen(" in code) or SERVES.search(code) is not None


def guess(directory: Path) -> Guess:
    """Read the server's code and guess how to run and check it."""
    g = Guess()
    sources = {p: p.read_text(encoding="utf-8", errors="replace") for p in sorted(directory.glob("*.py"))}
    servers = [p for p, text in sources.items() if _serves(text)]
    if not servers:
        g.notes.append("no file binds and listens; name the server's file in 'command'")
        return g
    servers.sort(key=lambda p: (not re.search(r"serv", p.stem, re.I), p.name))
    path = servers[0]
    code = sources[path]
    g.server = path.name
    if m := (
        re.search(r"\bPORT\w*\s*=\s*(\d{2,5})", code)
        or re.search(r"\bHOST\w*\s*,\s*PORT\w*\s*=\s*[^,\n]+,\s*(\d{2,5})", code)  # HOST, PORT = "localhost", 5000
        or re.search(r"\.bind\(\s*\([^,]+,\s*(\d{2,5})\s*\)", code)
    ):
        g.port = int(m.group(1))
    if m := re.search(r"""sqlite3\.connect\(\s*['"]([^'"]+)['"]""", code) or re.search(
        r"""\b(?:DB|DATABASE|DB_\w+|\w*_DB)\s*=\s*['"]([^'"]+\.(?:db|sqlite3?))['"]""", code
    ):
        g.db = m.group(1)
    joined = re.sub(r"""['"]\s*\n\s*f?['"]""", "", code)  # "CREATE TABLE x (" "id ..." written over several lines
    if table := _create_table(joined):
        g.table, g.columns = table
    if m := re.search(r"""send(?:all)?\(\s*f?['"]([^'"{\\]*?recib[^'"{\\]*)""", code, re.I) or re.search(
        r"""f?['"]([^'"{]*[Rr]ecibido[^'"{:]*)""", code
    ):
        g.ack = m.group(1).strip(" :[(")
    if re.search(r"makefile|readline\(|(?:split|find|index|partition)\(\s*b?['\"]\\n['\"]|\\n['\"]\s+in\b", code):
        g.framing = "newline"
    for line in code.splitlines():  # a reply (not a print) that starts with "Error": how it refuses
        m = re.search(r"""f?['"](Error|ERROR)\b""", line)
        if m and "print(" not in line and re.search(r"send|respond|reply|enviar|responder|encode", line, re.I):
            g.error = f"^{m.group(1)}"
            break
    if "KeyboardInterrupt" not in code and "signal.signal" not in code:
        g.stop = "sigint"
        g.notes.append("the code does not handle Ctrl+C: expect a KeyboardInterrupt traceback when it stops")
    if m := re.search(r"""['"](éxito|exito|salir|exit|chau|adios)['"]""", code, re.I):
        g.exit_word = m.group(1)
    clients = [p for p in sources if p != path and re.search(r"client", p.stem, re.I)]
    if clients:
        g.client = clients[0].name
        if g.exit_word not in code and g.exit_word in sources[clients[0]]:
            g.server_sees_exit_word = False
    return g


def _create_table(code: str) -> tuple[str, list[str]] | None:
    """The first ``CREATE TABLE name (columns)`` in ``code``: its name and column names."""
    m = re.search(r"CREATE TABLE(?: IF NOT EXISTS)?\s+[\"'`]?(\w+)[\"'`]?\s*\(", code, re.I)
    if not m:
        return None
    depth, at = 1, m.end()
    while at < len(code) and depth:
        depth += {"(": 1, ")": -1}.get(code[at], 0)
        at += 1
    parts, depth, current = [], 0, ""
    for ch in code[m.end() : at - 1]:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    columns = [
        p.split()[0].strip("\"'`")
        for p in parts
        if p.split() and not p.split()[0].upper().startswith(("PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "CONSTRAINT"))
    ]
    return m.group(1), columns


def toml(g: Guess, name: str, cwd: str) -> str:
    """The target file for ``g``."""
    lines = [
        f"# Guessed by chat-harness init from {g.server}; check it with: chat-harness doctor <this file>",
        *(f"# note: {n}" for n in g.notes),
        f'name = "{name}"',
        f'command = ["{{python}}", "{g.server}"]',
        f'cwd = "{cwd}"',
        "copy_cwd = true          # run a fresh copy each time (the server writes its database next to its code)",
        'host = "127.0.0.1"',
        f"port = {g.port}",
        'protocol = "pfo1"',
        'ready = "listen"',
        f'stop = "{g.stop}"',
    ]
    if g.client:
        lines.append(f'client = ["{{python}}", "{g.client}"]')
    if g.single_session:
        lines.append("single_session = true    # it serves one client, then exits: started again for every session")
    lines += [
        "",
        "[log]",
        f'path = "{{workdir}}/{g.db}"',
        f'table = "{g.table}"',
        'id = "id"' if "id" in g.columns else f'id = "{g.columns[0]}"',
        f'content = "{g.content}"',
        "",
        "[pfo1]",
        f"ack = '{g.ack}'",
        f'exit_word = "{g.exit_word}"',
        f'framing = "{g.framing}"',
    ]
    if g.error:
        lines.append(f'error = "{g.error}"       # a reply starting so refuses the message')
    if g.messages_per_connection:
        lines.append(f"messages_per_connection = {g.messages_per_connection}  # then it closes the connection")
    if not g.server_sees_exit_word:
        lines.append("server_sees_exit_word = false  # only the client program understands the exit word")
    return "\n".join(lines) + "\n"


def learn(g: Guess, said: dict[str, tuple[bool | None, str]]) -> list[str]:
    """Correct ``g`` from what the doctor saw the server do (key -> (ok, what it said)); return what changed."""
    changed = []
    answer = said.get("answer")
    if answer and answer[0] is False and "no answer" in answer[1] and g.framing == "raw":
        g.framing = "newline"
        changed.append('framing = "newline": a message without a line end got no answer')
    if said.get("[pfo1] messages_per_connection", (True, ""))[0] is False:
        g.messages_per_connection = 1
        changed.append("messages_per_connection = 1: it closed the connection after one answer")
    if said.get("single_session", (True, ""))[0] is False:
        g.single_session = True
        changed.append("single_session = true: it exited once its first client left")
    return changed
