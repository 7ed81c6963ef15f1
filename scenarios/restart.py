"""restart: a clean stop and an immediate restart on the same port and log, while clients chat."""

from __future__ import annotations

from scenarios.crash_recovery import CrashRecovery
from scenarios.registry import register


class Restart(CrashRecovery):
    """Like crash-recovery, but stopped the polite way: the port must be free at once, nothing lost."""

    name = "restart"
    description = "a clean stop and an immediate restart on the same port and DB while clients chat and reconnect"
    clean = True


register(Restart())
