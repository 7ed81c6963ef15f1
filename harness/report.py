"""Reliability reports: ``reports/<run-id>/`` with report.json, report.md, report.html, junit.xml.

``report.json`` follows a versioned schema (``chat-harness/report``, version 1) and holds
everything; the Markdown, HTML and JUnit files are rendered from it. ``reports/latest`` points
at the newest run and ``reports/index.html`` lists every run, comparing verdicts across Python
versions. The HTML is self-contained: charts are inline SVG, styles inline, no script, no network.
"""

from __future__ import annotations

import contextlib
import html as html_lib
import json
import os
import platform
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from harness import findings, plot
from harness.checker import NAMES
from harness.history import latencies
from harness.plan import Plan
from harness.runner import RunOutcome
from harness.scenario import ScenarioResult, percentile
from harness.target import Target

SCHEMA = "chat-harness/report"
SCHEMA_VERSION = 2  # 2: findings, per-kind anomaly counts, not-judged counts, isolation
MAX_PER_KIND = 10  # anomalies kept per kind and scenario (all are counted in anomaly_kinds)
MAX_RUNS_PLOTTED = 4


def new_run_id() -> str:
    """``YYYYmmdd-HHMMSS-pyXY-NNNN``: sortable, tagged with the interpreter, unique enough."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-py{sys.version_info[0]}{sys.version_info[1]}-{os.getpid() % 10000:04d}"


def verdict_word(valid: bool | None, applicable: bool = True) -> str:
    """``valid``, ``invalid``, ``unknown`` or ``not applicable``."""
    if not applicable:
        return "not applicable"
    return {True: "valid", False: "invalid", None: "unknown"}[valid]


def latency_stats(pairs: Sequence[tuple[float, float, int]]) -> dict[str, Any]:
    """Exact p50/p90/p99/max ack latency (ms) and acks per second of ``latencies()`` entries."""
    values = sorted(v for _, v, _ in pairs)
    stats: dict[str, Any] = {"acks": len(values)}
    for name, q in (("p50_ms", 0.50), ("p90_ms", 0.90), ("p99_ms", 0.99), ("max_ms", 1.0)):
        v = percentile(values, q)
        stats[name] = None if v is None else round(v * 1000, 3)
    span = max(t for t, _, _ in pairs) - min(t - v for t, v, _ in pairs) if len(pairs) >= 2 else 0
    stats["acks_per_s"] = round(len(pairs) / span, 1) if span > 0 else None
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


def target_arg(target: Target) -> str:
    """How to name the target on the command line."""
    return "reference" if target.source == "built-in" else target.source


def replay_command(plan: Path, target: Target) -> str:
    """The copy-paste command that replays ``plan``, from any directory (absolute paths)."""
    where = target_arg(target)
    if where != "reference":
        where = str(Path(where).resolve())
    return f"chat-harness replay {plan.resolve()} --target {where}"


def plan_size(plan: Plan) -> dict[str, int]:
    """Clients, operations and text bytes of a plan."""
    ops = sum(len(c.ops) for c in plan.clients)
    return {
        "clients": len(plan.clients),
        "operations": ops,
        "fault_steps": len(plan.faults),
        "text_bytes": plan.text_bytes,
    }


def _rel(path: Path | None, base: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def run_entry(run: RunOutcome, base: Path) -> dict[str, Any]:
    """One executed plan of a scenario: where its files are, what it found, its time series."""
    logs = {}
    if run.server_dir is not None:
        for name in ("stdout", "stderr"):
            path = run.server_dir / f"server.{name}"
            if path.exists():
                logs[name] = _rel(path, base)
    return {
        "name": run.rundir.name,
        "dir": _rel(run.rundir, base),
        "plan": _rel(run.rundir / "plan.json", base),
        "history": _rel(run.rundir / "history.jsonl", base),
        "server_logs": logs,
        "verdict": verdict_word(run.result.valid),
        "seconds": round(run.seconds, 3),
        "counts": vars(run.result.counts),
        "latency": latency_stats(latencies(run.records)),
        "series": plot.series(run.records),
        "windows": plot.windows(run.records),
    }


def scenario_entry(sr: ScenarioResult, target: Target, base: Path) -> dict[str, Any]:
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
    if sr.check is not None:
        check = sr.check.to_dict()
        anomalies = check.pop("anomalies")
        entry.update(check)
        entry["anomaly_count"] = len(anomalies)
        entry["anomalies"] = sample(anomalies)
    entry["checks"] = [c.to_dict() for c in sr.checks]
    entry["latency"] = latency_stats([p for run in sr.runs for p in latencies(run.records)])
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
            "cut": None
            if s.shrunk is None
            else {"runs": s.shrunk.runs, "kept": s.shrunk.accepted, "seconds": round(s.shrunk.seconds, 3)},
        }
    if sr.replay:
        entry["replay"] = replay_command(Path(sr.replay), target)
    if sr.extra:
        entry["extra"] = sr.extra
    entry["runs"] = [run_entry(run, base) for run in sr.runs]
    return entry


def sample(anomalies: list[dict[str, Any]], per_kind: int = MAX_PER_KIND) -> list[dict[str, Any]]:
    """Up to ``per_kind`` anomalies of each kind, in order: a rare kind is never cut off by a common one."""
    seen: dict[str, int] = {}
    out = []
    for a in anomalies:
        seen[a["kind"]] = seen.get(a["kind"], 0) + 1
        if seen[a["kind"]] <= per_kind:
            out.append(a)
    return out


def describe(item: dict[str, Any]) -> str:
    """One anomaly or failed check in one line."""
    if "kind" in item:
        name = NAMES.get(item["invariant"], "")
        return f"{item['kind']} (invariant {item['invariant']}{': ' + name if name else ''}): {item['message']}"
    return f"check {item['name']} failed" + (f": {item['detail']}" if item.get("detail") else "")


def lead(scenarios: list[dict[str, Any]], found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the report opens with: each failing or unknown scenario in one sentence, its evidence, its replay."""
    titles = {f["id"]: f["title"] for f in found}
    out = []
    for s in scenarios:
        if s["verdict"] not in ("invalid", "unknown"):
            continue
        items = [*s.get("anomalies", []), *(c for c in s.get("checks", []) if c["status"] == "fail")]
        evidence: list[str] = []
        if items:
            first = min(items, key=lambda item: findings.rank(item.get("consequence_of") or item.get("finding")))
            sentence = titles.get(first.get("consequence_of") or first.get("finding") or "") or describe(first)
            evidence.append(describe(first))
            for row in first.get("rows", [])[:3]:
                evidence.append(
                    f"  sent: {row['sent']!r}" if "sent" in row else f"  row {row.get('id')}: {row.get('content')!r}"
                )
            checks = sum(c["status"] == "fail" for c in s.get("checks", []))
            if s.get("anomaly_count", 0) + checks > 1:
                parts = [f"{k} × {n}" for k, n in (s.get("anomaly_kinds") or {}).items()]
                parts += [f"{checks} failed check{'s' if checks > 1 else ''}"] if checks else []
                evidence.append("in all: " + ", ".join(parts))
        else:
            sentence = "; ".join(s.get("notes", [])) or "no verdict could be reached"
        out.append(
            {
                "scenario": s["name"],
                "verdict": s["verdict"],
                "sentence": sentence,
                "evidence": evidence,
                "replay": s.get("replay"),
                "reproduce": (s.get("extra") or {}).get("reproduce"),
            }
        )
    return out


def grouped(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failures with the same sentence (and verdict) together, in the order they first appear."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for f in failures:
        key = (f["verdict"], f["sentence"])
        groups.setdefault(key, {"verdict": f["verdict"], "sentence": f["sentence"], "scenarios": []})[
            "scenarios"
        ].append(f)
    return list(groups.values())


def build(
    run_id: str,
    target: Target,
    seed: int,
    results: Sequence[ScenarioResult],
    seconds: float,
    base: Path,
    command: str | None = None,
    isolation: str | None = None,
) -> dict[str, Any]:
    """The whole report as plain data (paths relative to ``base``, the run's directory)."""
    scenarios = [scenario_entry(r, target, base) for r in results]
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
    found = findings.annotate(scenarios)
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "failures": lead(scenarios, found),
        "findings": found,
        "run_id": run_id,
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "environment": {**environment(target, seed), "isolation": isolation},
        "command": command,
        "verdict": overall,
        "counts": totals,
        "scenarios": scenarios,
    }


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

_env = Environment(loader=PackageLoader("harness", "templates"), autoescape=select_autoescape(["html", "j2"]))
_env.globals["charts"] = plot.run_charts
_env.globals["shades"] = plot.SHADES
MD_SPECIAL = re.compile(r"[\\`*_\[\]!|]")  # Markdown's own characters, escaped in a server's text
MARKS = {"pass": "✓", "fail": "✗", "unknown": "?", "n/a": "–"}
_env.globals["marks"] = MARKS
_env.globals["invariant_names"] = {str(k): v for k, v in NAMES.items()}


def markdown(report: dict[str, Any]) -> str:
    """report.md: the verdict and what failed first, then one scenarios × invariants matrix, then the details."""
    env = report["environment"]
    scenarios = report["scenarios"]
    out = [
        f"# chat-harness: {report['verdict']}",
        "",
        f"Run `{report['run_id']}` · target `{env['target']['name']}` ({env['target']['source']}) · "
        f"Python {env['python']} ({env['implementation']}) · {env['platform']} · seed {env['seed']} · "
        f"{report['seconds']:.1f} s" + (f" · isolation: {env['isolation']}" if env.get("isolation") else ""),
        "",
        "## What failed",
        "",
    ]
    for group in grouped(report.get("failures", [])):
        out += [f"**{_md(group['sentence'])}** ({group['verdict']})", ""]
        for f in group["scenarios"]:
            out.append(
                f"- [{f['scenario']}](#{f['scenario']})" + (f": {_md(f['evidence'][0])}" if f["evidence"] else "")
            )
            out += [f"  - {_md(e.strip())}" for e in f["evidence"][1:]]
            if f.get("reproduce"):
                out.append(f"  - Reproduce with: `{f['reproduce']}`")
            if f.get("replay"):
                out.append(f"  - Replay: `{f['replay']}`")
        out.append("")
    if not report.get("failures"):
        applicable = [s for s in scenarios if s["verdict"] != "not applicable"]
        out.append(f"Nothing: all {len(applicable)} scenarios that apply passed.")
    found = report.get("findings", [])
    if found:
        out += ["", f"## Findings ({len(found)})", ""]
        for i, f in enumerate(found, 1):
            where = ", ".join(f["scenarios"]) + (
                f"; also behind failures in {', '.join(f['also_in'])}" if f.get("also_in") else ""
            )
            out += [f"{i}. **{f['title']}** ({f['count']} × in {where})", f"   - fix: {f['hint']}"]
            out += [f"   - e.g. {_md(e)}" for e in f["evidence"][:2]]
    numbers = invariant_numbers(scenarios)
    out += [
        "",
        "## Scenarios × invariants",
        "",
        "| scenario | verdict | " + " | ".join(numbers) + " | checks | s |",
        "|---|---|" + "---|" * len(numbers) + "---|---:|",
    ]
    for s in scenarios:
        inv = s.get("invariants") or {}
        cells = [cell_mark(inv.get(k)) for k in numbers]
        checks = s.get("checks") or []
        passed = sum(c["status"] == "pass" for c in checks)
        out.append(
            f"| [{s['name']}](#{s['name']}) | {s['verdict']} | "
            + " | ".join(cells)
            + f" | {f'{passed}/{len(checks)}' if checks else ''} | {s['seconds']:.1f} |"
        )
    out += [
        "",
        "✓ pass · ✗ fail · ? unknown · – not applicable · * some not judged (a fault or a nemesis touched them)",
    ]
    out += ["", "Invariants: " + "; ".join(f"{k} {NAMES.get(int(k), k)}" for k in numbers)]
    out += [
        "",
        "## Counts and latency",
        "",
        "| scenario | sent | acked | stored | lost | dup | indet. | p50 ms | p99 ms | acks/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scenarios:
        if s["verdict"] == "not applicable":
            continue
        c, lat = s.get("counts", {}), s.get("latency", {})
        cells = [c.get(k, "") for k in ("sent", "acked", "stored", "lost", "duplicated", "indeterminate")]
        cells += [_fmt(lat.get("p50_ms")), _fmt(lat.get("p99_ms")), _fmt(lat.get("acks_per_s"))]
        out.append(f"| {s['name']} | " + " | ".join(str(x) for x in cells) + " |")
    out += ["", "## Details"]
    for s in scenarios:
        out += ["", f'<a id="{s["name"]}"></a>', f"### {s['name']}: {s['verdict']}", "", s["description"]]
        if s["verdict"] == "not applicable":
            out += ["", f"Not applicable: {_md(s.get('reason', ''))}"]
            continue
        notable = {k: v for k, v in (s.get("invariants") or {}).items() if v["status"] != "pass" or v.get("not_judged")}
        if notable:
            out.append("")
            for k, v in notable.items():
                judged = ", ".join(f"{why} {n}" for why, n in (v.get("not_judged") or {}).items())
                out.append(
                    f"- invariant {k} ({v['name']}): {v['status']}"
                    + (f"; not judged: {judged} {v.get('unit', '')}".rstrip() if judged else "")
                )
        if s.get("checks"):
            out += ["", "| check | status | detail |", "|---|---|---|"]
            out += [f"| {_md(c['name'])} | {c['status']} | {_md(c['detail'])} |" for c in s["checks"]]
        if s.get("search"):
            srch = s["search"]
            out += [
                "",
                f"Search: {srch['examples']} plans in {srch['seconds']:.1f} s; minimal failing plan "
                f"{srch['minimal_plan']}, reproduced {srch['reproduced']}"
                + (
                    f"; cut by parts in {srch['cut']['runs']} runs ({srch['cut']['kept']} cuts kept)."
                    if srch.get("cut")
                    else "."
                ),
            ]
        if s.get("anomaly_kinds"):
            out += ["", "Anomalies by kind: " + ", ".join(f"{k} × {n}" for k, n in s["anomaly_kinds"].items())]
        for a in s.get("anomalies", [])[:20]:
            why = f" — consequence of: {a['consequence_of']}" if a.get("consequence_of") else ""
            out.append(f"- **{a['kind']}** (invariant {a['invariant']}): {_md(a['message'])}{why}")
        if s.get("anomaly_count", 0) > 20:
            out.append(f"- … and {s['anomaly_count'] - 20} more in report.json")
        if s.get("replay"):
            out += ["", f"Replay: `{s['replay']}`"]
        for note in s.get("notes", []):
            out += ["", f"> {_md(note)}"]
    out += ["", "## Environment", "", f"Command: `{report.get('command') or ''}`", f"Created: {report['created']}"]
    return "\n".join(out) + "\n"


def invariant_numbers(scenarios: list[dict[str, Any]]) -> list[str]:
    """The invariant numbers any scenario reported, in order."""
    seen: dict[str, None] = {}
    for s in scenarios:
        for k in s.get("invariants") or {}:
            seen[k] = None
    return sorted(seen, key=int)


def cell_mark(v: dict[str, Any] | None) -> str:
    """One matrix cell: ✓ ✗ ? or – and a star when part was not judged."""
    if v is None:
        return "–"
    status = str(v["status"])
    return MARKS.get(status, status) + ("*" if v.get("not_judged") else "")


def _md(text: str) -> str:
    """Text a server may have written, safe in Markdown: no HTML (a viewer would render it), no table breaks."""
    text = html_lib.escape(text, quote=False).replace("\n", " ")
    return MD_SPECIAL.sub(r"\\\g<0>", text)  # no link, image, emphasis or table cell of the server's making


def _fmt(v: object) -> str:
    return "" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))


def html(report: dict[str, Any]) -> str:
    """report.html, self-contained."""
    return _env.get_template("report.html.j2").render(
        r=report,
        max_runs=MAX_RUNS_PLOTTED,
        fmt=_fmt,
        numbers=invariant_numbers(report["scenarios"]),
        groups=grouped(report.get("failures", [])),
    )


def junit(report: dict[str, Any]) -> str:
    """junit.xml: one test case per scenario."""
    suite = ET.Element("testsuite", name="chat-harness", tests=str(len(report["scenarios"])))
    failures = errors = skipped = 0
    target = report["environment"]["target"]["name"]
    for s in report["scenarios"]:
        case = ET.SubElement(
            suite, "testcase", classname=f"chat-harness.{target}", name=s["name"], time=str(s["seconds"])
        )
        if s["verdict"] == "not applicable":
            skipped += 1
            ET.SubElement(case, "skipped", message=s.get("reason", ""))
        elif s["verdict"] == "invalid":
            failures += 1
            lines = [f"{a['kind']} (invariant {a['invariant']}): {a['message']}" for a in s.get("anomalies", [])]
            lines += [f"check failed: {c['name']}: {c['detail']}" for c in s.get("checks", []) if c["status"] == "fail"]
            if s.get("replay"):
                lines.append(f"replay: {s['replay']}")
            failure = ET.SubElement(case, "failure", message=(lines[0] if lines else "invalid")[:500])
            failure.text = "\n".join(lines)
        elif s["verdict"] == "unknown":
            errors += 1
            ET.SubElement(case, "error", message="; ".join(s.get("notes", [])) or "unknown verdict")
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def index(report_dir: Path) -> str:
    """reports/index.html: every run, newest first, and each scenario's latest verdict per Python version."""
    runs = []
    for path in sorted(report_dir.glob("*/report.json"), reverse=True):
        if path.parent.is_symlink():  # "latest"
            continue
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("schema") == SCHEMA:
                runs.append(data)
    columns: list[tuple[str, str]] = []
    matrix: dict[str, dict[tuple[str, str], str]] = {}
    for data in runs:  # newest first: the first verdict seen per cell is the latest
        key = (data["environment"]["python"], data["environment"]["target"]["name"])
        if key not in columns:
            columns.append(key)
        for s in data["scenarios"]:
            matrix.setdefault(s["name"], {}).setdefault(key, s["verdict"])
    columns.sort()
    return _env.get_template("index.html.j2").render(runs=runs, columns=columns, matrix=dict(sorted(matrix.items())))


def write(report_dir: Path, run_id: str, report: dict[str, Any]) -> Path:
    """Write every file of the run into ``report_dir/run_id``, then ``latest`` and ``index.html``."""
    out = report_dir / run_id
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    (out / "report.html").write_text(html(report), encoding="utf-8")
    (out / "junit.xml").write_text(junit(report), encoding="utf-8")
    link = report_dir / "latest"
    tmp = report_dir / f".latest-{os.getpid()}-{time.monotonic_ns()}"
    with contextlib.suppress(OSError):
        tmp.symlink_to(run_id, target_is_directory=True)
        os.replace(tmp, link)
    (report_dir / "index.html").write_text(index(report_dir), encoding="utf-8")
    return path
