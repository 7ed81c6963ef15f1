"""Listens without SO_REUSEADDR, so an immediate restart fails while old connections sit in TIME_WAIT."""

import socket
import sys

from chat import server

SCENARIO = "restart"
CAUGHT_BY = ("check:it started again on the same port and log",)


def apply() -> None:
    """Install the defect."""

    def open_listener(host: str, port: int, backlog: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            sock.bind((host, port))
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            raise server.ListenError(f"cannot listen on {server.format_address(host, port)}: {exc.strerror}") from exc
        return sock

    server.open_listener = open_listener


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
