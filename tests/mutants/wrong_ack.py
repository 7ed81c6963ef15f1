"""Acknowledges with a text of its own ("Mensaje guardado") instead of the protocol's ack line."""

import sys

from chat import protocol, server

SCENARIO = "large-message"
CAUGHT_BY = ("unexpected-reply",)


def apply() -> None:
    """Install the defect."""
    encode_ack = protocol.encode_ack

    def saved(row: int, ts: str, cid: str | None = None, duplicate: bool = False) -> bytes:
        return encode_ack(row, ts, cid, duplicate).replace(b"Mensaje recibido", b"Mensaje guardado")

    protocol.encode_ack = saved


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
