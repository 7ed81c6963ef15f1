"""Reliability reports: ``reports/<run-id>/report.json`` (versioned schema) and ``reports/latest``."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.history import INVOKE, OK, Record
from harness.plan import Plan
from harness.scenario import ScenarioResult
from harness.target import Target

SCHEMA = "chat-harness/report"
SCHEMA_VERSION = 1
MAX_ANOMALIES = 50


def new_run_id() -> str:
    """``YYYYmmdd-HHMMSS-pyXY-NNNN``: sortable, tagged with the interpreter, unique enough."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-py{sys.version_info[0]}{sys.version_info[1]}-{os.getpid() % 10000:04d}"


def verdict_word(valid: bool | None, applicable: bool = True) -> str:
    """``valid``, ``invalid``, ``unknown`` or ``not applicable``."""
    if not applicable:
        return "not applicable"
    return {True: "valid", False: "invalid", None: "unknown"}[valid]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Exact nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    rank = max(1, min(len(values), int(q * len(values) + 0.999999)))
    return values[rank - 1]


def latencies(records: Iterable[Record]) -> list[tuple[float, float]]:
    """(ack time, seconds from the send that got acked to its ack), for every acked send."""
    sent: dict[str, float] = {}
    out = []
    for r in records:
        if r.f != "send":
            continue
        token = r.get("token")
        if r.type == INVOKE:
            sent[token] = r.time
        elif r.type == OK and token in sent:
            out.append((r.time, r.time - sent[token]))
    return out


def latency_stats(records: Iterable[Record]) -> dict[str, Any]:
    """Exact p50/p90/p99/max ack latency (ms) and acks per second."""
    pairs = latencies(records)
    values = sorted(v for _, v in pairs)
    stats: dict[str, Any] = {"acks": len(values)}
    for name, q in (("p50_ms", 0.50), ("p90_ms", 0.90), ("p99_ms", 0.99), ("max_ms", 1.0)):
        v = percentile(values, q)
        stats[name] = None if v is None else round(v * 1000, 3)
    if len(pairs) >= 2:
        span = max(t for t, _ in pairs) - min(t - v for t, v in pairs)
        stats["acks_per_s"] = round(len(pairs) / span, 1) if span > 0 else None
    else:
        stats["acks_per_s"] = None
    return stats


def environment(target: Target, seed: int) -> dict[str, Any]:
    """Where and against what the run happened."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "target": {"name": target.name, "source": target.source, "protocol": target.protocol, "relay": target.relay},
        "seed": seed,
    }


def replay_command(plan: Path, target: Target) -> str:
    """The copy-paste command that replays ``plan``."""
    return f"chat-harness replay {plan} --target {target.source if target.source != 'built-in' else 'reference'}"


def plan_size(plan: Plan) -> dict[str, int]:
    """Clients, operations and text bytes of a plan."""
    return {"clients": len(plan.clients), "operations": plan.size() - len(plan.clients), "text_bytes": plan.text_bytes}


def scenario_entry(sr: ScenarioResult, target: Target) -> dict[str, Any]:
    """One scenario of the report."""
    entry: dict[str, Any] = {
        "name": sr.name,
        "description": sr.description,
        "verdict": verdict_word(sr.verdict, sr.applicable),
        "seconds": round(sr.seconds, 3),
    }
    if not sr.applicable:
        entry["reason"] = sr.reason
        return entry
    records = [r for run in sr.runs for r in run.records]
    if sr.check is not None:
        check = sr.check.to_dict()
        anomalies = check.pop("anomalies")
        entry.update(check)
        entry["anomaly_count"] = len(anomalies)
        entry["anomalies"] = anomalies[:MAX_ANOMALIES]
    entry["latency"] = latency_stats(records)
    if sr.reason:
        entry["notes"] = [*entry.get("notes", []), sr.reason]
    if sr.search is not None:
        s = sr.search
        entry["search"] = {
            "examples": s.examples,
            "seconds": round(s.seconds, 3),
            "first_failure_after_s": None if s.first_failure_after is None else round(s.first_failure_after, 3),
            "first_failure_plan": plan_size(s.first_failure.plan) if s.first_failure else None,
            "minimal_plan": plan_size(s.minimal.plan) if s.minimal else None,
            "reproduced": f"{s.reproduced}/{s.reruns}" if s.reruns else None,
        }
    if sr.replay:
        entry["replay"] = replay_command(Path(sr.replay), target)
    if sr.extra:
        entry["extra"] = sr.extra
    return entry


def build(run_id: str, target: Target, seed: int, results: Sequence[ScenarioResult], seconds: float) -> dict[str, Any]:
    """The whole report as plain data."""
    scenarios = [scenario_entry(r, target) for r in results]
    applicable = [r for r in results if r.applicable]
    if any(r.verdict is False for r in applicable):
        overall = "invalid"
    elif any(r.verdict is None for r in applicable) or not applicable:
        overall = "unknown"
    else:
        overall = "valid"
    totals: dict[str, int] = {}
    for s in scenarios:
        for k, v in s.get("counts", {}).items():
            totals[k] = totals.get(k, 0) + v
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "run_id": run_id,
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "environment": environment(target, seed),
        "verdict": overall,
        "counts": totals,
        "scenarios": scenarios,
    }


def write(report_dir: Path, run_id: str, report: dict[str, Any]) -> Path:
    """Write ``report.json`` into ``report_dir/run_id`` and point ``report_dir/latest`` at it."""
    out = report_dir / run_id
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    link = report_dir / "latest"
    tmp = report_dir / f".latest-{os.getpid()}-{time.monotonic_ns()}"
    with contextlib.suppress(OSError):
        tmp.symlink_to(run_id, target_is_directory=True)
        os.replace(tmp, link)
    return path
