"""Decodes each chunk it reads on its own, so a multibyte character split across two reads is lost."""

import sys

from chat import protocol, server

SCENARIO = "sliced-stream"
CAUGHT_BY = ("corrupted",)


def apply() -> None:
    """Install the defect."""
    feed = protocol.ClientStreamParser.feed

    def decoding_feed(self: protocol.ClientStreamParser, data: bytes) -> list[protocol.ClientEvent]:
        return feed(self, data.decode("utf-8", errors="ignore").encode("utf-8"))

    protocol.ClientStreamParser.feed = decoding_feed  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
