"""Why a connection ended: one type shared by the simulated clients, the checker and the scenarios.

A simulated client records what it observed (``conn-end`` records carry ``reason``, one of these
values). The run index may then attribute an end the client could not tell apart to its real
cause: a close that a fault proxy made looks like ``SERVER_CLOSE`` to the client, and becomes
``FAULT`` once the proxy's own records say it closed that link.
"""

from __future__ import annotations

from enum import Enum


class End(str, Enum):
    """How a connection ended."""

    CLIENT_CLOSE = "client-close"  # the client closed politely (FIN after its answers), then the server closed
    RECONNECT = "reconnect"  # the same, to connect again
    EXIT_WORD = "exit-word"  # the client said the exit word and the server ended the session
    CLIENT_RESET = "client-reset"  # the client reset the connection on purpose (RST)
    HALF_RESET = "half-reset"  # the client sent half a message, then RST
    HALF_CLOSE = "half-close"  # the client sent half a message, then FIN
    SERVER_ERROR_CLOSE = "server-error-close"  # the server closed after an error line about the connection
    SERVER_CLOSE = "server-close"  # the server closed without a word
    RESET = "reset"  # the connection was reset (by the server, or something on the way)
    FAULT = "fault"  # a network fault closed, cut or reset it (from the proxy's records)
    NEMESIS = "nemesis"  # the server was stopped, killed or restarted while it was open
    ACK_TIMEOUT = "ack-timeout"  # no answer within the ack timeout: the client gave up
    CLOSE_TIMEOUT = "close-timeout"  # the server did not close after the client's FIN or exit word
    NO_GREETING = "no-greeting"  # the server accepted but never greeted (reference protocol)
    STOPPED = "stopped"  # the run stopped the client (its time was up)
    HARNESS_ERROR = "harness-error"  # a harness bug; never the server's fault

    @property
    def polite(self) -> bool:
        """The client ended it on purpose and the server let it go: everything before should have arrived."""
        return self in (End.CLIENT_CLOSE, End.RECONNECT, End.EXIT_WORD)

    @property
    def client_broke(self) -> bool:
        """The client broke the connection on purpose: what was in flight may be lost."""
        return self in (End.CLIENT_RESET, End.HALF_RESET, End.HALF_CLOSE)

    @property
    def by_server(self) -> bool:
        """The server ended it (with or without saying why)."""
        return self in (End.SERVER_CLOSE, End.SERVER_ERROR_CLOSE)

    @property
    def harness(self) -> bool:
        """The harness, not the server, ended it."""
        return self in (End.STOPPED, End.HARNESS_ERROR)

    @classmethod
    def parse(cls, value: object) -> End:
        """The End a history record names (records written before this type existed map by their words)."""
        if isinstance(value, End):
            return value
        text = str(value)
        try:
            return cls(text)
        except ValueError:
            pass
        legacy = {"close": cls.CLIENT_CLOSE, "reconnect": cls.RECONNECT, "exit": cls.EXIT_WORD, "reset": cls.RESET}
        if text in legacy:
            return legacy[text]
        if "reset by client" in text or text == "half-reset":
            return cls.CLIENT_RESET
        if "closed by the server" in text or "ended by server" in text:
            return cls.SERVER_CLOSE
        if "ack timeout" in text:
            return cls.ACK_TIMEOUT
        if "close timeout" in text:
            return cls.CLOSE_TIMEOUT
        if "harness" in text:
            return cls.HARNESS_ERROR
        return cls.RESET


#: Error codes of the reference protocol that are about the connection, not about one line.
CONNECTION_ERRORS = frozenset({"full", "idle", "slow", "shutdown"})
