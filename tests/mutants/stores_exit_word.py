"""Stores the exit word as a chat message before ending the session."""

import sys

from chat import protocol, server

SCENARIO = "exit-word"
CAUGHT_BY = ("exit-word-stored",)


def apply() -> None:
    """Install the defect."""
    parse = protocol.parse_client_line

    def parse_keeping_the_word(line: bytes | protocol.LineTooLong) -> protocol.ClientEvent:
        event = parse(line)
        if isinstance(event, protocol.Quit) and isinstance(line, bytes) and not line.startswith(b"/"):
            return protocol.Message(line.decode("utf-8", "replace"))  # stored, and the session goes on
        return event

    protocol.parse_client_line = parse_keeping_the_word


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
