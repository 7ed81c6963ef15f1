"""Stores every message but forgets to answer every tenth one: the row is there, the ack never comes."""

import itertools
import sys
import threading

from chat import protocol, server

SCENARIO = "black-hole"
CAUGHT_BY = ("unanswered",)


def apply() -> None:
    """Install the defect."""
    post = server.Session.post
    counter = itertools.count(1)
    lock = threading.Lock()

    def sometimes(self: server.Session, data: bytes) -> None:
        if data.startswith(protocol.ACK_PREFIX.encode()):
            with lock:
                n = next(counter)
            if n % 10 == 0:
                return  # stored, never answered
        post(self, data)

    server.Session.post = sometimes  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
