"""Every client thread writes through one shared SQLite connection (check_same_thread=False) with no lock."""

import sqlite3
import sys

from chat import protocol, server, store

SCENARIO = "concurrent-burst"
CAUGHT_BY = ("ack-mismatch",)


def apply() -> None:
    """Install the defect."""
    shared: list[sqlite3.Connection] = []

    def submit(self: server.Session, event: protocol.Message) -> None:
        if not shared:
            shared.append(sqlite3.connect(self.server.store.path, check_same_thread=False))
        conn = shared[0]
        ts = store.now_iso()
        conn.execute(
            "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente, puerto_cliente, remitente, id_cliente)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (event.text, ts, self.ip, self.port, self.name, event.cid),
        )
        conn.commit()
        row = conn.execute("SELECT MAX(id) FROM mensajes").fetchone()[0]  # "the row I just inserted"
        self.post(protocol.encode_ack(row, ts, event.cid))

    server.Session._submit = submit  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
