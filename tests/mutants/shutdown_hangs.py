"""Shutdown waits for every client to leave on its own, so it hangs while any client is connected."""

import sys

from chat import server

SCENARIO = "shutdown-under-load"
CAUGHT_BY = ("unclean-shutdown",)


def apply() -> None:
    """Install the defect."""
    shutdown = server.ChatServer.shutdown

    def patient(self: server.ChatServer) -> bool:
        self.stopping.set()
        self._accept.join(1)
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            s.reader.join()  # no timeout, and nobody tells the clients to go
        return shutdown(self)

    server.ChatServer.shutdown = patient  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
