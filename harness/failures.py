"""The failures database: every failing plan kept per target, to rerun after a fix until it passes.

``.chat-harness/failures/<target>/<scenario>-<hash>.json`` (under the directory the harness runs
in) holds one failing plan each, with what it broke. ``chat-harness replay --failures`` reruns
them all and says FIXED or STILL FAILING; a plan that passes ``keep`` times in a row is dropped.
Only plans whose replay is the whole experiment are kept (no nemesis, no option the plan cannot
carry): rerunning a plan without its crash or its lock would say FIXED about nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.plan import Plan

ROOT = Path(".chat-harness") / "failures"
KEEP = 3  # passes in a row before a failure is dropped

#: Scenarios whose failing plan replays the whole experiment: clients, faults, nemesis, client settings
#: and target options are all in the plan. server-down and port-in-use also run the target's own client
#: or a second instance, which a plan does not describe.
REPLAYABLE = {
    "abrupt-disconnect",
    "bad-input",
    "bandwidth",
    "black-hole",
    "concurrent-burst",
    "crash-recovery",
    "db-locked",
    "exit-word",
    "flaky-network",
    "idle-clients",
    "large-message",
    "max-clients",
    "network-latency",
    "partition-heal",
    "pipelined",
    "random",
    "restart",
    "shutdown-under-load",
    "sliced-stream",
    "slow-clients",
}


@dataclass
class Failure:
    """One kept failure."""

    path: Path
    scenario: str
    plan: Plan
    kinds: list[str]
    first: str
    passes: int

    def save(self) -> None:
        """Write it back (after a rerun)."""
        data = {
            "scenario": self.scenario,
            "kinds": self.kinds,
            "first": self.first,
            "passes": self.passes,
            "plan": self.plan.to_dict(),
        }
        self.path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def folder(target_name: str, base: Path | None = None) -> Path:
    """Where a target's failures are kept."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", target_name) or "target"
    return (base or Path.cwd()) / ROOT / safe


def keep(
    target_name: str, scenario: str, plan: Plan, anomalies: list[dict[str, Any]], base: Path | None = None
) -> Path | None:
    """Add a failing plan (the same plan again resets its pass count); None if its replay would not be faithful.

    Only a failure with anomalies is kept: a replay judges the invariants, not a scenario's own
    checks, so a failure that only a check saw would come back FIXED without being fixed.
    """
    if scenario not in REPLAYABLE or not anomalies:
        return None
    digest = hashlib.sha256(json.dumps(plan.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    where = folder(target_name, base)
    where.mkdir(parents=True, exist_ok=True)
    first = anomalies[0] if anomalies else {}
    failure = Failure(
        where / f"{scenario}-{digest}.json",
        scenario,
        plan,
        sorted({a["kind"] for a in anomalies}),
        f"{first.get('kind', '?')}: {first.get('message', '')}"[:300],
        0,
    )
    failure.save()
    return failure.path


def load(target_name: str, base: Path | None = None) -> list[Failure]:
    """The kept failures of a target, oldest first; unreadable files are reported, not fatal."""
    out = []
    for path in sorted(folder(target_name, base).glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            plan = Plan.from_dict(data["plan"])
            out.append(
                Failure(path, str(data["scenario"]), plan, list(data["kinds"]), str(data["first"]), int(data["passes"]))
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a kept failure: {exc}") from exc
    return out
