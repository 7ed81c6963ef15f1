"""Hangs up on a client silent for 3 s, whatever its --idle-timeout says ("so that no thread hangs")."""

import sys
from typing import Any

from chat import server

SCENARIO = "idle-clients"
CAUGHT_BY = ("check:between messages stay connected",)
SHORT = 3.0


def apply() -> None:
    """Install the defect."""
    config = server.Config

    def impatient(*args: Any, **kwargs: Any) -> server.Config:
        kwargs["idle_timeout"] = min(kwargs.get("idle_timeout", SHORT), SHORT)
        return config(*args, **kwargs)

    server.Config = impatient  # type: ignore[misc, assignment]


if __name__ == "__main__":
    apply()
    sys.exit(server.main())
