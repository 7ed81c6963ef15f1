"""Acknowledges a message even when its insert failed (the database was locked)."""

import sys

from chat import server, store

SCENARIO = "db-locked"
CAUGHT_BY = ("lost",)


def apply() -> None:
    """Install the defect."""
    insert_many = store.Store.insert_many

    def careless(self: store.Store, items: list[store.NewMessage]) -> list[store.Outcome]:
        out = insert_many(self, items)
        return [
            store.Stored(0, store.now_iso(), m.contenido, m.remitente) if isinstance(o, store.Rejected) else o
            for m, o in zip(items, out, strict=False)
        ]

    store.Store.insert_many = careless  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
