"""Every fourth message is inserted a second time (a retry loop that does not check)."""

import sys

from chat import server, store

SCENARIO = "concurrent-burst"
CAUGHT_BY = ("duplicate",)


def apply() -> None:
    """Install the defect."""
    insert_many = store.Store.insert_many

    def doubled(self: store.Store, items: list[store.NewMessage]) -> list[store.Outcome]:
        out = insert_many(self, items)
        for m, o in zip(items, out, strict=False):
            if isinstance(o, store.Stored) and not o.duplicate and o.id % 4 == 0:
                self.conn.execute(
                    "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
                    (m.contenido, o.fecha_envio, m.ip_cliente),
                )
        return out

    store.Store.insert_many = doubled  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
