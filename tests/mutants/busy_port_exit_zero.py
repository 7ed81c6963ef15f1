"""When the port is busy it prints an error but exits 0, so scripts think it started."""

import sys

from chat import server

SCENARIO = "port-in-use"
CAUGHT_BY = ("check:with a non-zero exit code",)


def apply() -> None:
    """Install the defect."""
    server.EXIT_LISTEN = 0


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
