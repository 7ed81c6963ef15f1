"""Defect: no framing; whatever one recv(1024) returns is stored as one message (merges and splits lines)."""

import sys

from chat import protocol, server

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
sys.exit(server.main())
