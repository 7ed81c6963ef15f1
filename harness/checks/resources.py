"""Invariant 10: server threads, descriptors and child processes return to their baseline after the clients leave."""

from __future__ import annotations

from harness.checks.base import FAIL, NA, PASS, UNKNOWN, Judgement, invariant
from harness.history import Record
from harness.index import RunIndex
from harness.reuse import (
    files_in_words,
    held_by_pool,
    held_by_workers,
    held_until_next,
    in_words,
    next_in_words,
    reused,
    workers_in_words,
)


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
                    j.notes.append(f"{stayed}; {in_words(wave)}: a pool, not a leak")
                    continue
                pool = rec.get("reuse") or {}
                files = rec.get("fds_pool") if what == "fds" else None
                if files and "workers" in files:  # no thread stayed: workers started up front, or a leak
                    said = f"{stayed}{named}; {workers_in_words(files)}"
                    if files.get("died"):  # the crash is invariant 8's; whether it leaked is not known
                        j.status = UNKNOWN if j.status == PASS else j.status
                        j.notes.append(said)
                    elif files.get("rounds") and files["rounds"][-1] == {}:
                        j.notes.append(f"{said}: not a leak")
                    elif held_by_workers(files):
                        j.notes.append(f"{said}: a pool's connections, not a leak")
                    else:
                        j.add("resource-leak", 10, said, history=[rec.index])
                    continue
                later = rec.get("fds_next") if what == "fds" else None
                if later and later.get("died"):  # the crash is invariant 8's; whether it leaked is not known
                    j.status = UNKNOWN if j.status == PASS else j.status
                    j.notes.append(f"{stayed}{named}; {next_in_words(later)}")
                    continue
                if later and held_until_next(later):
                    j.notes.append(
                        f"{stayed}{named}; {next_in_words(later)}: held until the next client comes, not a leak"
                    )
                    continue
                files = files if reused(pool) else None
                still = int(pool.get("still") or 0)
                if files and held_by_pool(
                    files.get("grown"), str(files.get("db")), int(files.get("stayed") or 0), still
                ):
                    j.notes.append(f"{stayed}{named}; {files_in_words(files, still)}: a pool's connections, not a leak")
                    continue
                seen = f"; {in_words(wave)}" if wave else (f"; {files_in_words(files, still)}" if files else "")
                seen += f"; {next_in_words(later)}" if later else ""
                j.add("resource-leak", 10, f"{stayed}{named}{seen}", history=[rec.index])
        if zombie := _zombies(rec):
            j.add("resource-leak", 10, zombie, history=[rec.index])
    if j.anomalies:
        j.status = FAIL
    return j


def _zombies(rec: Record) -> str:
    """Why the server's unreaped children are a leak ("" if they are not, or were not counted)."""
    before, after, again = rec.get("zombies_before"), rec.get("zombies_after"), rec.get("zombies_again")
    if before is None or after is None or again is None or after <= before:
        return ""  # none, or not counted again (the server had died: invariant 8's)
    if again <= before + 1:  # reaped when the next client came; its own child may be the one left
        return ""
    still = f", and still {again} after one more client came and left"
    return (
        f"server child processes that ended and were never reaped (zombies): {before} before the clients, {after}"
        f" {rec.get('waited', 0):g} s after they left{still}"
    )
