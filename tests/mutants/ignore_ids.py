"""Ignores the client message id, so a message sent again after a reconnect is stored twice."""

import sys
from dataclasses import replace

from chat import server, store

SCENARIO = "flaky-network"
CAUGHT_BY = ("duplicate",)


def apply() -> None:
    """Install the defect."""
    insert_many = store.Store.insert_many

    def forgetful(self: store.Store, items: list[store.NewMessage]) -> list[store.Outcome]:
        return insert_many(self, [replace(m, id_cliente=None) for m in items])

    store.Store.insert_many = forgetful  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
