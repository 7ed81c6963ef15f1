"""The ceiling: a threaded loopback server that answers every line like the chat server, with no database.

python bench/echo_server.py --port 0
"""

from __future__ import annotations

import argparse
import socket
import threading
from datetime import datetime


def serve(conn: socket.socket) -> None:
    """Answer each line with an ack-shaped line."""
    buf = b""
    n = 0
    with conn:
        conn.sendall(b"HELLO echo 4096\n")
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            *lines, buf = (buf + data).split(b"\n")
            out = []
            for _ in lines:
                n += 1
                ts = datetime.now().astimezone().isoformat(timespec="milliseconds")
                out.append(f"Mensaje recibido: {ts} id={n}\n".encode())
            try:
                conn.sendall(b"".join(out))
            except OSError:
                return


def main() -> None:
    """Listen and serve forever (the benchmark kills it)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    srv = socket.create_server(("127.0.0.1", a.port), backlog=1024)
    print(f"echo listening on 127.0.0.1:{srv.getsockname()[1]}", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
