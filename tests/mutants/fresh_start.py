"""Starts every run with a clean slate, deleting the old messages, so a restart loses everything acknowledged before it."""

import sys

from chat import server, store

SCENARIO = "crash-recovery"
CAUGHT_BY = ("lost",)


def apply() -> None:
    """Install the defect."""
    init = store.Store.__init__

    def clean_slate(self: store.Store, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        self.conn.execute("DELETE FROM mensajes")  # "every run starts empty", as many answers do

    store.Store.__init__ = clean_slate  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
