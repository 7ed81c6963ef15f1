"""Defect: acknowledges every message, then silently deletes every third row."""

import sys

from chat import server, store

_insert_many = store.Store.insert_many


def insert_many(self: store.Store, items: list[store.NewMessage]) -> list[store.Outcome]:
    out = _insert_many(self, items)
    for o in out:
        if isinstance(o, store.Stored) and not o.duplicate and o.id % 3 == 0:
            self.conn.execute("DELETE FROM mensajes WHERE id = ?", (o.id,))
    return out


store.Store.insert_many = insert_many  # type: ignore[method-assign]
sys.exit(server.main())
