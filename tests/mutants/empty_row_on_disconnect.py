"""Inserts an empty row when a client disconnects (it stores the empty read at end of stream)."""

import sys

from chat import server, store

SCENARIO = "abrupt-disconnect"
CAUGHT_BY = ("empty-row",)


def apply() -> None:
    """Install the defect."""
    finish = server.Session._finish

    def finish_with_a_row(self: server.Session, reset: bool) -> None:
        with self._pending_lock:
            self._pending += 1
        self.server.writer.submit(self, store.NewMessage("", self.ip, self.port, self.name), timeout=5)
        finish(self, reset)

    server.Session._finish = finish_with_a_row  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
