"""A standalone reproduction: ``reproduce.py`` beside a failing plan, readable, standard library only.

It starts nothing and imports nothing of the harness: the reader starts the server, runs
``python reproduce.py --port 5000 --db chat.db``, and sees the steps happen, then what the log
should hold and what it holds. Exit 1 when the defect shows, 0 when it does not. Only plans the
script can say in a few lines are written: no fault schedule (that needs the harness's proxy).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.plan import CLOSE, EXIT, HALF_CLOSE, HALF_RESET, NO_READ, PAUSE, RAW, RECONNECT, RESET, SEND, TRICKLE, Plan
from harness.target import Target

EXPRESSIBLE = {SEND, PAUSE, CLOSE, RESET, HALF_RESET, HALF_CLOSE, EXIT, RECONNECT, TRICKLE, NO_READ, RAW}


def steps(plan: Plan) -> list[list[list[Any]]] | None:
    """The plan as plain steps per client, or None when the script cannot express it."""
    if plan.faults:
        return None
    out = []
    for client in plan.clients:
        if client.pacing:
            return None
        mine: list[list[Any]] = [["pause", client.start]] if client.start else []
        for op in client.ops:
            if op.kind not in EXPRESSIBLE:
                return None
            if op.kind in (SEND, TRICKLE, HALF_RESET, HALF_CLOSE):
                mine.append([op.kind, op.text, op.seconds] if op.kind == TRICKLE else [op.kind, op.text, op.pipelined])
            elif op.kind in (PAUSE, NO_READ):
                mine.append(["pause", op.seconds])
            elif op.kind == RAW:
                mine.append([RAW, op.data])
            elif op.kind == EXIT:
                mine.append([EXIT, op.text])
            else:
                mine.append([op.kind])
        out.append(mine)
    return out


def protocol(target: Target) -> dict[str, Any]:
    """What the script must know of the wire."""
    if target.protocol == "pfo1":
        p = target.pfo1
        return {"kind": "pfo1", "framing": p.framing, "ack": p.ack, "error": p.error or "", "exit": p.exit_word}
    return {"kind": "chat", "framing": "newline", "exit": "éxito"}


def write(plan: Plan, target: Target, folder: Path, why: str) -> Path | None:
    """Write ``folder/reproduce.py`` for ``plan``; None when the plan cannot be expressed without the harness."""
    todo = steps(plan)
    if todo is None or target.log.path.startswith(":"):
        return None
    log = {"table": target.log.table, "id": target.log.id, "content": target.log.content}
    port = target.port or 5000
    text = (
        TEMPLATE.replace("@@WHY@@", why.replace('"""', "'''")[:300])
        .replace("@@TARGET@@", target.name)
        .replace("@@PROTOCOL@@", json.dumps(protocol(target), ensure_ascii=False))
        .replace("@@LOG@@", json.dumps(log))
        .replace("@@PORT@@", str(port))
        .replace("@@STEPS@@", json.dumps(todo, ensure_ascii=False, indent=1))
    )
    path = folder / "reproduce.py"
    path.write_text(text, encoding="utf-8")
    return path


def command(path: Path, target: Target) -> str:
    """How the report tells the reader to run it."""
    return f"python {path} --port {target.port or 5000} --db chat.db"


TEMPLATE = '''#!/usr/bin/env python3
"""Reproduce a defect chat-harness found in @@TARGET@@: @@WHY@@

Start the server first, then:  python reproduce.py --port PORT --db PATH/TO/ITS.db
This connects to HOST:PORT, performs the steps below in order (one thread per client when there
are several), then reads the server's SQLite log and prints what it expected and what it found.
Exit status 1: the defect showed. 0: it did not. Standard library only.
"""

import argparse
import json
import re
import socket
import sqlite3
import sys
import threading
import time
import uuid

PROTOCOL = json.loads(r"""@@PROTOCOL@@""")
LOG = json.loads(r"""@@LOG@@""")
STEPS = json.loads(r"""@@STEPS@@""")
TIMEOUT = 10.0
RUN = uuid.uuid4().hex[:6]


def frame(payload):
    if PROTOCOL["framing"] == "newline":
        return payload + b"\\n"
    if PROTOCOL["framing"] == "length64":
        return str(len(payload)).encode().ljust(64) + payload
    return payload


class Client:
    def __init__(self, index, host, port):
        self.index, self.host, self.port, self.seq = index, host, port, 0
        self.sent = []  # [token, text, acked, kind]
        self.buf = b""
        self.sock = None

    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
        self.buf = b""
        if PROTOCOL["kind"] == "chat":
            self.wait_line(lambda line: line.startswith("HELLO"))

    def payload(self, token, text):
        body = f"[{token}] {text}" if text else f"[{token}]"
        if PROTOCOL["kind"] == "chat":
            return f"/id {token} {body}".encode(), body
        return body.encode(), body

    def token(self):
        self.seq += 1
        return f"{RUN}.{self.index}.{self.seq}"

    def wait_line(self, match):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            lines = self.buf.decode("utf-8", "replace").split("\\n")
            for i, line in enumerate(lines):
                if match(line):  # take it, keep what came after it
                    self.buf = "\\n".join(lines[i + 1 :]).encode()
                    return line
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self.buf += data
        return None

    def wait_answer(self, token):
        if PROTOCOL["kind"] == "chat":
            line = self.wait_line(lambda line: f"cid={token}" in line)
            return bool(line and line.startswith("Mensaje recibido"))
        ack, error = re.compile(PROTOCOL["ack"], re.M), re.compile(PROTOCOL["error"], re.M) if PROTOCOL["error"] else None
        line = self.wait_line(lambda line: bool(ack.search(line) or (error and error.search(line))))
        return bool(line and ack.search(line))

    def send(self, text, pipelined=False):
        token = self.token()
        data, body = self.payload(token, text)
        self.sock.sendall(frame(data))
        entry = [token, body, False, "send"]
        self.sent.append(entry)
        print(f"client {self.index}: sent {body!r}")
        if not pipelined:
            self.settle()

    def settle(self):
        for entry in self.sent:
            if entry[3] == "send" and entry[2] is False:
                entry[2] = self.wait_answer(entry[0])
                entry[2] = entry[2] or None  # None: asked and got no ack
                print(f"client {self.index}: {entry[0]} {'acknowledged' if entry[2] else 'NOT acknowledged'}")

    def run(self, steps):
        self.connect()
        for step in steps:
            kind, args = step[0], step[1:]
            if kind == "send":
                self.send(args[0], args[1])
            elif kind == "trickle":
                token = self.token()
                data, body = self.payload(token, args[0])
                for i in range(len(frame(data))):
                    self.sock.sendall(frame(data)[i : i + 1])
                    time.sleep(args[1])
                self.sent.append([token, body, False, "send"])
                self.settle()
            elif kind == "raw":
                token = self.token()
                self.sock.sendall(frame(f"[{token}] ".encode() + bytes.fromhex(args[0])))
                self.sent.append([token, None, self.wait_answer(token) or None, "raw"])
            elif kind in ("half_reset", "half_close"):
                token = self.token()
                data, body = self.payload(token, args[0])
                self.sock.sendall(data[: max(1, len(data) // 2)])
                self.sent.append([token, body, None, "half"])
                print(f"client {self.index}: sent half of {body!r}, then {'RST' if kind == 'half_reset' else 'FIN'}")
                self.end(reset=kind == "half_reset")
                return
            elif kind == "pause":
                time.sleep(args[0])
            elif kind == "exit":
                self.settle()
                self.sock.sendall(frame((args[0] or PROTOCOL["exit"]).encode()))
                print(f"client {self.index}: sent the exit word")
                self.wait_line(lambda line: False)  # until the server closes
                return self.end()
            elif kind == "reconnect":
                self.settle()
                self.end()
                self.connect()
                if PROTOCOL["kind"] == "chat":  # resend what was not acknowledged, with the same id
                    for entry in self.sent:
                        if entry[3] == "send" and not entry[2]:
                            self.sock.sendall(frame(f"/id {entry[0]} {entry[1]}".encode()))
                            entry[2] = self.wait_answer(entry[0]) or None
            elif kind == "close":
                self.settle()
                return self.end()
            elif kind == "reset":
                return self.end(reset=True)
        self.settle()
        self.end()

    def end(self, reset=False):
        if self.sock is None:
            return
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
        self.sock.close()
        self.sock = None


def rows_after(db, baseline):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        q = f'SELECT "{LOG["id"]}", "{LOG["content"]}" FROM "{LOG["table"]}" WHERE "{LOG["id"]}" > ? ORDER BY 1'
        return conn.execute(q, (baseline,)).fetchall()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=@@PORT@@)
    ap.add_argument("--db", default="chat.db", help="the server's SQLite log")
    args = ap.parse_args()
    try:
        baseline = max([r[0] for r in rows_after(args.db, -1)] or [0])
    except sqlite3.Error as exc:
        sys.exit(f"cannot read the log {args.db}: {exc} (start the server first, and give --db its file)")
    clients = [Client(i, args.host, args.port) for i in range(len(STEPS))]
    threads = [threading.Thread(target=c.run, args=(s,)) for c, s in zip(clients, STEPS)]
    try:
        if len(threads) == 1:
            clients[0].run(STEPS[0])
        else:
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
    except OSError as exc:
        sys.exit(f"cannot talk to {args.host}:{args.port}: {exc}")
    time.sleep(0.5)  # a server that stores after it answers has a moment to do it
    rows = rows_after(args.db, baseline)
    print(f"\\nthe log holds {len(rows)} new row(s):")
    for row_id, content in rows:
        print(f"  {row_id}: {content!r}")
    problems = []
    for c in clients:
        for token, body, acked, kind in c.sent:
            mine = [content for _, content in rows if content and f"[{token}]" in content]
            if kind == "half" and mine:
                problems.append(f"half a message was stored: {mine[0]!r}")
            elif kind == "send" and acked and not mine:
                problems.append(f"{body!r} was acknowledged but is not in the log")
            elif kind == "send" and len(mine) > 1:
                problems.append(f"{body!r} is stored {len(mine)} times")
            elif kind == "send" and acked and mine[0] != body:
                problems.append(f"sent {body!r}, stored {mine[0]!r}")
    tokens = [f"[{e[0]}]" for c in clients for e in c.sent]
    for row_id, content in rows:
        if content and content.strip() == PROTOCOL["exit"]:
            problems.append(f"row {row_id} stores the exit word")
        elif not content or not any(t in content for t in tokens):
            problems.append(f"row {row_id} is no message that was sent: {content!r}")
    print("\\nexpected: every acknowledged message stored once, exactly as sent; nothing else")
    if problems:
        print("found:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("found: exactly that (the defect did not show)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''
