"""Defect: ignores the client message id, so a resent message is stored again."""

import sys
from dataclasses import replace

from chat import server, store

_insert_many = store.Store.insert_many


def insert_many(self: store.Store, items: list[store.NewMessage]) -> list[store.Outcome]:
    return _insert_many(self, [replace(m, id_cliente=None) for m in items])


store.Store.insert_many = insert_many  # type: ignore[method-assign]
sys.exit(server.main())
