"""No framing: whatever one recv(1024) returns is stored as one message, so lines merge and split."""

import sys

from chat import protocol, server

SCENARIO = "pipelined"
CAUGHT_BY = ("merged",)


def apply() -> None:
    """Install the defect."""
    server.Session.RECV_SIZE = 1024

    def feed(self: protocol.ClientStreamParser, data: bytes) -> list[protocol.ClientEvent]:
        chunk = data.rstrip(b"\n")
        first = protocol.parse_client_line(chunk.split(b"\n")[0])  # the first line's id or command
        if not isinstance(first, protocol.Message):
            return [first]
        text = chunk.decode("utf-8", "replace")
        if first.cid is not None:
            text = text.split(" ", 2)[2]  # drop "/id CID "
        return [protocol.Message(text, first.cid)]

    protocol.ClientStreamParser.feed = feed  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
