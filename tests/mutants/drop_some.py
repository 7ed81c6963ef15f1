"""Acknowledges every message, then silently deletes every third row."""

import sys

from chat import server, store

SCENARIO = "concurrent-burst"
CAUGHT_BY = ("lost",)


def apply() -> None:
    """Install the defect."""
    insert_many = store.Store.insert_many

    def lossy(self: store.Store, items: list[store.NewMessage]) -> list[store.Outcome]:
        out = insert_many(self, items)
        for o in out:
            if isinstance(o, store.Stored) and not o.duplicate and o.id % 3 == 0:
                self.conn.execute("DELETE FROM mensajes WHERE id = ?", (o.id,))
        return out

    store.Store.insert_many = lossy  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
