"""A client thread never ends after a connection reset: its thread and its socket leak."""

import sys
import threading

from chat import server

SCENARIO = "abrupt-disconnect"
CAUGHT_BY = ("resource-leak",)


def apply() -> None:
    """Install the defect."""
    finish = server.Session._finish

    def leaky(self: server.Session, reset: bool) -> None:
        if reset:
            threading.Event().wait()  # stuck: never closes the socket, never leaves
        finish(self, reset)

    server.Session._finish = leaky  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
