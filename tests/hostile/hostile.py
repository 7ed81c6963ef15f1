"""A hostile chat server: a PFO1-style server (one line per message, SQLite, "Mensaje recibido") that misbehaves.

    python hostile.py --mode MODE --port PORT --db DB

It stands for untrusted code under test: the harness must reach a clear verdict against every
mode within its deadline, with bounded memory, no process left behind and an intact report.

Modes:
  polite       none: a correct server (the control)
  flood        answers the first line with an endless stream (no newline) until the client leaves
  bigline      answers every line with one line of 100 MB
  noread       accepts connections and never reads from them
  noanswer     reads and stores every line, never answers
  forker       forks a child that ignores SIGTERM and serves on the same listening socket
  escaper      the same, but the child leaves the process group first (setsid)
  html         answers and stores HTML and <script> (the report must escape it)
  garbage_db   after five messages, overwrites its SQLite file with garbage
  delete_db    after five messages, deletes its SQLite file
  exit_now     exits at once with code 3
  traceback    raises an exception at start
  slow_start   sleeps 30 s before it listens
"""

import argparse
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from datetime import datetime

SCRIPT = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", required=True)
    args = ap.parse_args()
    mode = args.mode
    if mode == "exit_now":
        sys.exit(3)
    if mode == "traceback":
        raise RuntimeError("hostile server: broken on purpose at start")
    if mode == "slow_start":
        time.sleep(30)
    db = sqlite3.connect(args.db, check_same_thread=False)
    db.execute(
        "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " contenido TEXT, fecha_envio TEXT, ip_cliente TEXT)"
    )
    db.commit()
    lock = threading.Lock()
    stored = [0]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(128)
    if mode in ("forker", "escaper") and os.fork() == 0:
        if mode == "escaper":
            os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(f"listening on {args.host}:{args.port}", flush=True)

    def store(text, ip):
        with lock:
            fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            db.execute("INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)", (text, fecha, ip))
            db.commit()
            stored[0] += 1
            if stored[0] == 5 and mode == "garbage_db":
                with open(args.db, "r+b") as f:
                    f.write(os.urandom(8192))
            if stored[0] == 5 and mode == "delete_db":
                os.remove(args.db)
        return fecha

    def serve(conn, ip):
        buf = b""
        with conn:
            if mode == "noread":
                time.sleep(3600)
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.decode("utf-8", "replace")
                    try:
                        if mode == "flood":
                            chunk = b"x" * 65536
                            while True:
                                conn.sendall(chunk)
                        if mode == "bigline":
                            conn.sendall(b"y" * (100 << 20) + b"\n")
                            continue
                        fecha = store(SCRIPT + text if mode == "html" else text, ip)
                        if mode == "noanswer":
                            continue
                        extra = " " + SCRIPT if mode == "html" else ""
                        conn.sendall(f"Mensaje recibido: {fecha}{extra}\n".encode())
                    except (OSError, sqlite3.Error) as exc:
                        print(f"error: {exc}", flush=True)
                        return

    while True:
        conn, addr = srv.accept()
        threading.Thread(target=serve, args=(conn, addr[0]), daemon=True).start()


if __name__ == "__main__":
    main()
