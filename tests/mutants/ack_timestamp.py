"""The ack carries its own clock reading, not the timestamp stored in the row."""

import sys

from chat import protocol, server, store

SCENARIO = "concurrent-burst"
CAUGHT_BY = ("ack-mismatch",)


def apply() -> None:
    """Install the defect."""
    encode_ack = protocol.encode_ack

    def ack_now(row: int, ts: str, cid: str | None = None, duplicate: bool = False) -> bytes:
        return encode_ack(row, store.now_iso(), cid, duplicate)  # "now" again, a moment later

    protocol.encode_ack = ack_now


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
