"""A standalone reproduction: ``reproduce.py`` beside a failing plan, readable, standard library only.

It starts nothing and imports nothing of the harness: the reader starts the server, runs
``python reproduce.py --port 5000 --db chat.db``, and sees the steps happen, then what the log
should hold and what it holds. Exit 1 when the defect shows, 0 when it does not. Only plans the
script can say in a few lines are written: no fault schedule (that needs the harness's proxy).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.plan import CLOSE, EXIT, HALF_CLOSE, HALF_RESET, NO_READ, PAUSE, RAW, RECONNECT, RESET, SEND, TRICKLE, Plan
from harness.target import Target

TEMPLATE = Path(__file__).with_name("templates") / "reproduce.py.j2"  # plain text with @@NAME@@ holes
UNSAFE = re.compile(r"[^\w .,:;()\[\]/+=<>'-]")
#: Anomaly kinds the script checks (what the log holds against what was sent and acknowledged).
SHOWS = {"lost", "duplicate", "corrupted", "partial-row", "empty-row", "phantom", "merged", "split", "exit-word-stored"}
EXPRESSIBLE = {SEND, PAUSE, CLOSE, RESET, HALF_RESET, HALF_CLOSE, EXIT, RECONNECT, TRICKLE, NO_READ, RAW}


def steps(plan: Plan) -> list[list[list[Any]]] | None:
    """The plan as plain steps per client, or None when the script cannot express it."""
    if plan.faults or plan.nemesis:  # a fault needs the harness's proxy; a crash or a lock, its nemesis
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
        return {
            "kind": "pfo1",
            "framing": p.framing,
            "ack": p.ack,
            "error": p.error or "",
            "exit": p.exit_word if p.server_sees_exit_word else "",
            "per_connection": p.messages_per_connection,
            "normalize": target.normalize,
        }
    return {"kind": "chat", "framing": "newline", "exit": "éxito", "per_connection": 0, "normalize": target.normalize}


def write(plan: Plan, target: Target, folder: Path, why: str) -> Path | None:
    """Write ``folder/reproduce.py`` for ``plan``; None when the plan cannot be expressed without the harness."""
    todo = steps(plan)
    if todo is None or target.log.path.startswith(":"):
        return None
    log = {"table": target.log.table, "id": target.log.id, "content": target.log.content}
    port = target.port or 5000
    plain = UNSAFE.sub("?", why)[:300]  # safe in a docstring, whatever the server wrote
    text = (
        TEMPLATE.read_text(encoding="utf-8")
        .replace("@@WHY@@", plain)
        .replace("@@SETUP@@", setup(plan, target))
        .replace("@@TARGET@@", target.name)
        .replace("@@PROTOCOL@@", json.dumps(protocol(target), ensure_ascii=False))
        .replace("@@LOG@@", json.dumps(log))
        .replace("@@PORT@@", str(port))
        .replace("@@STEPS@@", json.dumps(todo, ensure_ascii=False, indent=1))
    )
    path = folder / "reproduce.py"
    path.write_text(text, encoding="utf-8")
    return path


def setup(plan: Plan, target: Target) -> str:
    """How the server must be started for this plan (the target options it sets), for the script's first line."""
    args = []
    for name, value in plan.target_options.items():
        args += [part.replace("{value}", str(value)) for part in dict(target.options).get(name, ())]
    return f" (with {' '.join(args)})" if args else ""


def command(path: Path, target: Target) -> str:
    """How the report tells the reader to run it."""
    return f"python {path} --port {target.port or 5000} --db chat.db"
