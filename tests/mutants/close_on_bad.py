"""Not a defect: closes the connection cleanly on a bad line instead of answering it with an error."""

import sys

from chat import server

SCENARIO = "bad-input"
CAUGHT_BY = ()  # a correct variant: it must pass its scenario


def apply() -> None:
    """Install the behaviour."""

    def close_instead(self: server.Session, line: bytes) -> None:
        self.interrupt()  # stop reading: the session answers what came before, then ends with a FIN

    server.Session._answer_in_order = close_instead  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
