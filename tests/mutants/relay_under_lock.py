"""Relays with a blocking send while holding the lock, so one client that stops reading stalls everyone."""

import contextlib
import sys
from collections.abc import Sequence

from chat import server

SCENARIO = "slow-clients"
CAUGHT_BY = ("check:p99 ack latency",)


def apply() -> None:
    """Install the defect."""

    def relay(self: server.ChatServer, relays: Sequence[tuple[server.Session, bytes]]) -> None:
        with self._lock:
            for origin, line in relays:
                for member in self._members:
                    if member is not origin:
                        with contextlib.suppress(OSError):
                            member.sock.sendall(line)  # blocks while that client does not read

    server.ChatServer.relay = relay  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
