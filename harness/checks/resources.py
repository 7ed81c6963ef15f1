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
                if wave and reused(wave):
                    j.notes.append(f"{stayed}; {_wave_words(wave)}: a pool, not a leak")
                    continue
                seen = f"; {_wave_words(wave)}" if wave else ""
                j.add("resource-leak", 10, f"{stayed}{named}{seen}", history=[rec.index])
    if j.anomalies:
        j.status = FAIL
    return j


def _wave_words(wave: dict[str, Any]) -> str:
    """What the threads that stayed did, quiet and under the second wave, in words."""
    stayed, clients, answered = wave.get("stayed"), wave.get("clients"), wave.get("answered")
    if not clients:
        if (stayed or 0) > MAX_WAVE:
            return f"{stayed} new threads stayed, more than the {MAX_WAVE} a second wave of clients may test"
        return "which threads stayed could not be watched, so whether they are a pool is not known"
    if wave.get("restless"):
        return (
            f"{wave['restless']} of the {stayed} that stayed ran on their own with no client connected"
            " (a timer?), so whether they are a pool is not known"
        )
    wave_of = f"a second wave of {clients} client{'' if clients == 1 else 's'} ({answered} answered)"
    still, helped = wave.get("still") or 0, wave.get("helped") or 0
    if still > helped:
        return f"{wave_of} left {still} of the {stayed} that stayed without running once: stuck"
    new = wave.get("new")
    if new is None:
        return f"{wave_of} was never all answered and connected at once, so whether they are a pool is not known"
    if new > 0:
        return (
            f"{wave_of} ran the {stayed} that stayed, but needed {new} new threads beside them: they did not serve it"
        )
    if still:
        ran = int(stayed or 0) - still
        idle = f"{helped} idle thread{'' if helped == 1 else 's'} from before"
        return f"{wave_of} ran {ran} of the {stayed} that stayed and {idle}, and no new thread"
    return f"{wave_of} ran every one of the {stayed} that stayed, and no new thread"
