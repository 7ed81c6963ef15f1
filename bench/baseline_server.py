"""The naive baseline: per message, take a global lock, open a new SQLite connection, insert, commit, close.

This is how most PFO 1 answers store messages. It speaks the same line protocol as the reference.

    python bench/baseline_server.py --port 0 --db FILE
"""

from __future__ import annotations

import argparse
import socket
import sqlite3
import threading
from datetime import datetime

LOCK = threading.Lock()


def store(db: str, text: str, ip: str) -> tuple[int, str]:
    """Insert one message the naive way; return its row id and timestamp."""
    ts = datetime.now().astimezone().isoformat(timespec="milliseconds")
    with LOCK:
        conn = sqlite3.connect(db)
        try:
            cur = conn.execute(
                "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)", (text, ts, ip)
            )
            conn.commit()
            return int(cur.lastrowid or 0), ts
        finally:
            conn.close()


def serve(conn: socket.socket, ip: str, db: str) -> None:
    """Store and acknowledge each line."""
    buf = b""
    with conn:
        conn.sendall(b"HELLO baseline 4096\n")
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            *lines, buf = (buf + data).split(b"\n")
            for line in lines:
                row, ts = store(db, line.decode("utf-8", "replace"), ip)
                try:
                    conn.sendall(f"Mensaje recibido: {ts} id={row}\n".encode())
                except OSError:
                    return


def main() -> None:
    """Listen and serve forever (the benchmark kills it)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--db", required=True)
    a = ap.parse_args()
    with sqlite3.connect(a.db) as c:
        c.execute(
            "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT,"
            " fecha_envio TEXT, ip_cliente TEXT)"
        )
    srv = socket.create_server(("127.0.0.1", a.port), backlog=1024)
    print(f"baseline listening on 127.0.0.1:{srv.getsockname()[1]}", flush=True)
    while True:
        conn, addr = srv.accept()
        threading.Thread(target=serve, args=(conn, addr[0], a.db), daemon=True).start()


if __name__ == "__main__":
    main()
