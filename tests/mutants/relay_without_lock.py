"""Relays by iterating the shared client list without a lock, so clients leaving meanwhile make it skip others."""

import sys
from collections.abc import Sequence

from chat import server

SCENARIO = "concurrent-burst"
CAUGHT_BY = ("missed-relay",)


def apply() -> None:
    """Install the defect."""

    def relay(self: server.ChatServer, relays: Sequence[tuple[server.Session, bytes]]) -> None:
        for origin, line in relays:
            for member in self._members:  # the live list: leave() removes from it meanwhile
                if member is not origin:
                    member.post(line)

    server.ChatServer.relay = relay  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
