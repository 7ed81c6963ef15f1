"""Time series of a run and small inline SVG charts of them (no plotting library, no network needed).

Two line charts per run, acks per second and ack latency, with the windows when something was
done to the server (a shutdown, a crash, a lock, a network fault) shaded. SVG is text, so the
charts sit inside ``report.html`` and the file stays self-contained.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from harness.history import Record, latencies

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
SHADES = {"shutdown": "#fdd49e", "crash": "#fcbba1", "restart": "#fee391", "db-locked": "#c6dbef", "fault": "#d9d9d9"}


def series(records: Iterable[Record], buckets: int = 120) -> dict[str, Any]:
    """Acks per second and p50/max ack latency (ms), in at most ``buckets`` equal time slices."""
    records = list(records)
    acks = [(t, lat) for t, lat, _ in latencies(records)]
    end = max((r.time for r in records), default=0.0)
    if end <= 0:
        return {"t": [], "acks_per_s": [], "p50_ms": [], "max_ms": [], "step": 0.0}
    step = max(0.05, end / buckets)
    n = int(end / step) + 1
    slots: list[list[float]] = [[] for _ in range(n)]
    for t, lat in acks:
        slots[min(n - 1, int(t / step))].append(lat)
    p50, top = [], []
    for s in slots:
        s.sort()
        p50.append(round(s[len(s) // 2] * 1000, 3) if s else None)
        top.append(round(s[-1] * 1000, 3) if s else None)
    return {
        "step": round(step, 4),
        "t": [round(i * step, 3) for i in range(n)],
        "acks_per_s": [round(len(s) / step, 1) for s in slots],
        "p50_ms": p50,
        "max_ms": top,
    }


def windows(records: Iterable[Record]) -> list[dict[str, Any]]:
    """Time windows when something was done to the server or the network: nemesis and fault events."""
    open_: dict[str, tuple[float, str]] = {}
    out: list[dict[str, Any]] = []
    last = 0.0
    for r in records:
        last = max(last, r.time)
        if r.f not in ("nemesis", "fault") or r.get("window") is None:
            continue
        key = f"{r.f}:{r.get('window')}"
        label = str(r.get("label") or r.get("event") or r.get("window"))
        if r.get("phase") == "start":
            open_[key] = (r.time, label)
        elif r.get("phase") == "end" and key in open_:
            start, first = open_.pop(key)
            out.append({"kind": _kind(key), "label": first, "start": round(start, 3), "end": round(r.time, 3)})
    for key, (start, label) in open_.items():
        out.append({"kind": _kind(key), "label": label, "start": round(start, 3), "end": round(last, 3)})
    return out


def _kind(key: str) -> str:
    """The shading of a window: its nemesis name, or "fault" for every network fault."""
    f, _, window = key.partition(":")
    return "fault" if f == "fault" else window


@dataclass
class Line:
    """One line of a chart."""

    label: str
    values: Sequence[float | None]


def _nice(top: float) -> float:
    """A round number at or above ``top`` for the y axis."""
    if top <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(top))
    for m in (1, 2, 5, 10):
        if top <= m * exp:
            return float(m * exp)
    return float(10 * exp)


def chart(
    xs: Sequence[float],
    lines: Sequence[Line],
    shaded: Sequence[dict[str, Any]],
    title: str,
    unit: str,
    width: int = 640,
    height: int = 170,
) -> str:
    """An inline SVG line chart with shaded windows and a legend."""
    left, right, top, bottom = 52, 10, 22, 26
    w, h = width - left - right, height - top - bottom
    x_max = max(xs[-1] if xs else 1.0, max((s["end"] for s in shaded), default=0.0), 0.001)
    finite = [v for line in lines for v in line.values if v is not None]
    y_max = _nice(max(finite, default=0.0))

    def x(v: float) -> float:
        return left + w * v / x_max

    def y(v: float) -> float:
        return top + h - h * v / y_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="14" font-weight="bold">{escape(title)}</text>',
    ]
    for s in shaded:
        color = SHADES.get(str(s["kind"]), "#e0e0e0")
        x0, x1 = x(float(s["start"])), x(float(s["end"]))
        parts.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{max(1.0, x1 - x0):.1f}" height="{h}" fill="{color}" opacity="0.7">'
            f"<title>{escape(str(s['label']))} {s['start']}-{s['end']} s</title></rect>"
        )
    for i in range(5):
        v = y_max * i / 4
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for i in range(6):
        v = x_max * i / 5
        parts.append(f'<text x="{x(v):.1f}" y="{top + h + 14}" text-anchor="middle">{v:.1f}s</text>')
    parts.append(
        f'<text x="10" y="{top + h / 2:.0f}" transform="rotate(-90 10 {top + h / 2:.0f})" text-anchor="middle">{escape(unit)}</text>'
    )
    for k, line in enumerate(lines):
        color = COLORS[k % len(COLORS)]
        points: list[str] = []
        segments: list[list[str]] = []
        for xv, yv in zip(xs, line.values, strict=False):
            if yv is None:
                if points:
                    segments.append(points)
                points = []
            else:
                points.append(f"{x(xv):.1f},{y(yv):.1f}")
        if points:
            segments.append(points)
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="1.5" fill="{color}"/>')
            else:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.4" points="{" ".join(seg)}"/>')
        lx = left + w - 110 * (len(lines) - k)
        parts.append(f'<rect x="{lx}" y="5" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{lx + 14}" y="14">{escape(line.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def run_charts(data: dict[str, Any], title: str) -> list[str]:
    """The throughput and latency charts of one run (from its report entry)."""
    s, shaded = data["series"], data["windows"]
    if not s["t"]:
        return []
    return [
        chart(s["t"], [Line("acks/s", s["acks_per_s"])], shaded, f"{title}: throughput", "acks/s"),
        chart(s["t"], [Line("p50", s["p50_ms"]), Line("max", s["max_ms"])], shaded, f"{title}: ack latency", "ms"),
    ]
