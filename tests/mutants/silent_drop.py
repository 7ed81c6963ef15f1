"""Drops every third message without a word: no row, no ack, no error."""

import itertools
import sys
import threading

from chat import server

SCENARIO = "concurrent-burst"
CAUGHT_BY = ("unanswered",)


def apply() -> None:
    """Install the defect."""
    submit = server.Session._submit
    counter = itertools.count(1)
    lock = threading.Lock()

    def sometimes(self: server.Session, event: object) -> None:
        with lock:
            n = next(counter)
        if n % 3 == 0:
            return  # forgotten: the client waits for an answer that never comes
        submit(self, event)  # type: ignore[arg-type]

    server.Session._submit = sometimes  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
