"""Invariant 10: server threads and descriptors return to their baseline after the clients leave."""

from __future__ import annotations

from typing import Any

from harness.checks.base import FAIL, NA, PASS, UNKNOWN, Judgement, invariant
from harness.index import RunIndex
from harness.reuse import MAX_WAVE, reused


@invariant(10, "resources return to baseline")
def resources(ix: RunIndex) -> Judgement:
    """Threads and file descriptors, measured before the clients and after they left."""
    j = Judgement(status=NA)
    for rec in ix.of("resources"):
        if j.status == NA:
            j.status = PASS
        for what in ("threads", "fds"):
            before, after = rec.get(f"{what}_before"), rec.get(f"{what}_after")
            slack = int(rec.get(f"{what}_slack", 0))
            if before is None or after is None:
                j.status = UNKNOWN if j.status == PASS else j.status
            elif after > before + slack:
                leaked = rec.get(f"{what}_leaked")
                named = f": {leaked}" if leaked else ""
                stayed = f"server {what}: {before} before the clients, still {after} {rec.get('waited', 0):g} s after they left"
                wave = rec.get("reuse") if what == "threads" else None
                if wave and reused(wave, after):
                    j.notes.append(f"{stayed}; {_wave_words(wave, after)}: a pool, not a leak")
                    continue
                seen = f"; {_wave_words(wave, after)}" if wave else ""
                j.add("resource-leak", 10, f"{stayed}{named}{seen}", history=[rec.index])
    if j.anomalies:
        j.status = FAIL
    return j


def _wave_words(wave: dict[str, Any], after: int) -> str:
    """What the reuse wave showed, in words."""
    clients, acked, peak = wave.get("clients"), wave.get("acked"), wave.get("peak")
    if not clients:
        return f"more than {MAX_WAVE} stayed, too many to test whether a second wave reuses them"
    wave_of = f"a second wave of {clients} client{'' if clients == 1 else 's'}"
    if acked != clients:
        return f"{wave_of} got {acked} answers, so whether they are reused is not known"
    if peak is None:
        return f"{wave_of} was never all connected at once, so whether they are reused is not known"
    return f"{wave_of}, all connected at once, raised them to {peak} ({peak - after:+d})"
