"""False alarms: how often the harness calls a correct server broken.

Runs every named scenario with several seeds, and ``random`` (Hypothesis plans with fault schedules)
with many seeds, against servers known to be correct — the reference, a correct newline-framed
PFO1-style server (``examples/pfo1_newline``), and one like it whose clients are served by a thread
pool (``tests/pfo1_servers/pool``: its threads stay, and are reused) — and counts the invalid
verdicts. Each one is a bug in the harness; its replay command is printed. Target: 0.

    python bench/false_alarms.py                      # 3 seeds per scenario, 20 random seeds, all three servers
    python bench/false_alarms.py --seeds 1 --random-seeds 5 --targets reference
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import isolation, report  # noqa: E402
from harness.cli import Progress, isolation_mode, run_job  # noqa: E402
from harness.scenario import ScenarioResult  # noqa: E402
from harness.target import load_target, set_status  # noqa: E402
from scenarios.registry import load  # noqa: E402

TARGETS = {
    "reference": "reference",
    "pfo1-newline": str(ROOT / "examples" / "pfo1_newline.toml"),
    "pfo1-pool": str(ROOT / "tests" / "pfo1_servers" / "pool.toml"),
}


def main() -> int:
    """Run the matrix; print per-scenario counts, then ``false alarms N/M`` and the replay commands."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="*", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--seeds", type=int, default=3, help="seeds per named scenario (default %(default)s)")
    ap.add_argument("--random-seeds", type=int, default=20, help="seeds of the random scenario (default %(default)s)")
    ap.add_argument("--random-duration", type=float, default=20.0, help="search seconds per random seed")
    ap.add_argument("--scenarios", nargs="*", help="only these named scenarios")
    ap.add_argument("--report-dir", default=str(ROOT / "reports" / "false-alarms"))
    ap.add_argument("--first-seed", type=int, default=1)
    args = ap.parse_args()
    registry = load()
    names = sorted(n for n in registry if n != "random" and (not args.scenarios or n in args.scenarios))
    progress = Progress(quiet=False)
    set_status(progress.say)
    started = time.monotonic()
    rows: dict[tuple[str, str], list[ScenarioResult]] = {}
    alarms: list[tuple[str, str, int, ScenarioResult]] = []
    unknown: list[tuple[str, str, int, ScenarioResult]] = []
    for label in args.targets:
        spec = TARGETS[label]
        target = load_target(spec)
        isolated = isolation_mode(target, "auto")
        jobs = [(n, args.first_seed + k, None) for n in names for k in range(args.seeds)]
        jobs += [("random", args.first_seed + k, args.random_duration) for k in range(args.random_seeds)]
        run_id = report.new_run_id()
        for name, seed, duration in jobs:
            if registry[name].not_applicable(target):
                continue
            job = {
                "target": spec,
                "scenario": name,
                "rundir": str(Path(args.report_dir) / label / run_id / f"{name}-{seed}"),
                "seed": seed,
                "clients": None,
                "duration": duration,
                "quiet": True,
            }
            progress.say(f"{label} {name} seed {seed}")
            result = isolation.run(job) if isolated else run_job(job, None, Progress(quiet=True))
            rows.setdefault((label, name), []).append(result)
            if result.verdict is False:
                alarms.append((label, name, seed, result))
                progress.line(f"FALSE ALARM {label} {name} seed {seed}: {_why(result)}")
            elif result.verdict is None:
                unknown.append((label, name, seed, result))
    progress.line("")
    print(f"{'target':<14} {'scenario':<22} runs  invalid  unknown")
    for (label, name), results in sorted(rows.items()):
        bad = sum(r.verdict is False for r in results)
        unk = sum(r.verdict is None for r in results)
        print(f"{label:<14} {name:<22} {len(results):>4}  {bad:>7}  {unk:>7}")
    total = sum(len(v) for v in rows.values())
    print(
        f"\nfalse alarms {len(alarms)}/{total}   (unknown {len(unknown)}/{total})   in {time.monotonic() - started:.0f} s"
    )
    for label, name, seed, result in alarms:
        print(f"  {label} {name} seed {seed}: {_why(result)}")
        if result.replay:
            print(f"    replay: chat-harness replay {result.replay} --target {TARGETS[label]}")
    for label, name, seed, result in unknown:
        print(f"  unknown: {label} {name} seed {seed}: {result.reason or _why(result)}")
    return 1 if alarms else 0


def _why(result: ScenarioResult) -> str:
    parts = [result.check.summary()] if result.check else []
    parts += [f"check failed: {c.name}: {c.detail}" for c in result.checks if c.ok is False]
    return "; ".join(parts)[:600]


if __name__ == "__main__":
    sys.exit(main())
