"""A missing answer whose row the log did not hold yet when the client stopped waiting is named as late.

Two real PFO1-style servers (a thread per client, newline framing, SQLite) differ in one message: one
does slow work before it stores it and answers it after, the other stores it at once and never
answers it. Both leave the message unanswered within a 1 s ack timeout on a connection nothing
touched; the auditor's reads of the log's largest id tell the first (stored after the wait ended:
``slow-under-load``) from the second (stored in time, never answered: ``unanswered``).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from harness import findings
from harness.clients import Options
from harness.plan import PAUSE, SEND, ClientPlan, Op, Plan
from harness.runner import RunConfig, run_plan
from harness.target import load_target

SERVER = r"""
import signal, socket, sqlite3, sys, threading, time
from datetime import datetime

db = sqlite3.connect("chat.db", check_same_thread=False)
db.execute("CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT, fecha_envio TEXT)")
db.commit()
lock = threading.Lock()

def store(text):
    fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    with lock:
        db.execute("INSERT INTO mensajes (contenido, fecha_envio) VALUES (?, ?)", (text, fecha))
        db.commit()
    return fecha

def serve(conn):
    with conn, conn.makefile("rb") as lines:
        for line in lines:
            text = line.decode().strip()
            if "lento" in text and sys.argv[2] == "late":
                time.sleep(1.6)  # slow work before storing: the answer comes after the client gave up
            fecha = store(text)
            if "lento" in text and sys.argv[2] == "silent":
                continue  # stored at once, never answered
            try:
                conn.sendall(f"Mensaje recibido: {fecha}\n".encode())
            except OSError:
                return

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=128)
print("listening", flush=True)
try:
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
finally:
    s.close()
"""

TARGET = """
name = "late-{mode}"
command = ["{{python}}", "{srv}", "{{port}}", "{mode}"]
port = 0
protocol = "pfo1"
ready = "line:listening"
stop = "sigterm"
stop_timeout = 5

[log]
path = "{{workdir}}/chat.db"
table = "mensajes"
id = "id"
content = "contenido"
ts = "fecha_envio"

[pfo1]
ack = 'Mensaje recibido: (?P<ts>[^\\n]+)'
framing = "newline"
"""


@pytest.mark.parametrize(("mode", "named"), [("late", "slow-under-load"), ("silent", "unanswered")])
def test_an_answer_missed_because_the_row_was_stored_late_is_named_slow(tmp_path: Path, mode: str, named: str) -> None:
    srv = tmp_path / "srv.py"
    srv.write_text(SERVER)
    spec = tmp_path / "target.toml"
    spec.write_text(TARGET.format(mode=mode, srv=srv))
    chatty = [op for i in range(25) for op in (Op(SEND, f"hola {i}"), Op(PAUSE, seconds=0.1))]  # audits go on meanwhile
    slow = ClientPlan([Op(SEND, "hola"), Op(PAUSE, seconds=0.3), Op(SEND, "lento"), Op(PAUSE, seconds=2.5)])
    plan = Plan([slow, *(ClientPlan(list(chatty)) for _ in range(3))], seed=1, name="late")
    config = RunConfig(options=Options(ack_timeout=1.0, close_timeout=1.0))
    outcome = run_plan(load_target(spec), plan, tmp_path / "run", config=config)
    result = outcome.result
    assert result.counts.lost == 0 and result.counts.stored == result.counts.sent, result.summary()
    [a] = result.anomalies
    assert a.kind == "unanswered" and a.client == 0, a.message
    assert findings.of_anomaly(asdict(a), "black-hole") == named, a.message
