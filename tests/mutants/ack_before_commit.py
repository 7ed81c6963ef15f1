"""Acknowledges before the commit, so a crash loses messages that were already acknowledged."""

import sys
import time

from chat import server, store

SCENARIO = "crash-recovery"
# lost: the crash took acked messages; ack-before-commit: an audit read the log right after an ack and its row was
# not there yet (the same defect seen before the crash: py313 CI at 7b46683 saw only this one, and relay-mismatch)
CAUGHT_BY = ("lost", "ack-before-commit")


def apply() -> None:
    """Install the defect."""

    def commit(self: store.Writer, batch: list[tuple[object, store.NewMessage]]) -> None:
        c = self.store.conn
        c.execute("BEGIN IMMEDIATE")
        ts = store.now_iso()
        results = []
        for tag, m in batch:
            cur = c.execute(
                "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente, puerto_cliente, remitente, id_cliente)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (m.contenido, ts, m.ip_cliente, m.puerto_cliente, m.remitente, m.id_cliente),
            )
            results.append((tag, m, store.Stored(cur.lastrowid or 0, ts, m.contenido, m.remitente)))
        self.publish(results)  # the acks go out...
        time.sleep(0.05)  # ...while the rows are still uncommitted
        c.execute("COMMIT")

    store.Writer._commit = commit  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
