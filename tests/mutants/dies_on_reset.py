"""The whole server dies when a client resets its connection."""

import os
import sys

from chat import server

SCENARIO = "abrupt-disconnect"
CAUGHT_BY = ("server-crashed",)


def apply() -> None:
    """Install the defect."""
    finish = server.Session._finish

    def fragile(self: server.Session, reset: bool) -> None:
        if reset:
            os._exit(1)  # an uncaught ConnectionResetError in the main loop
        finish(self, reset)

    server.Session._finish = fragile  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
