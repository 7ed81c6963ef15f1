"""The main job's wall time: ``chat-harness run --all`` against the reference, one after another and side by side.

Runs the README's main command twice in one go, as a user would (a real process each, real
servers, the same seed): once with ``--jobs 1`` and once with the default ``--jobs``. Prints the
wall time, CPU time and verdict of each, then ``ratio concurrent/serial = R``.

Target (from the issue): the concurrent run takes <= 60 s on a 2-core machine, verdict valid.

    python bench/suite_time.py [--seed N] [--jobs N] [--only-concurrent]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_all(jobs: int | None, seed: int, report_dir: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (harness and servers) and verdict of one ``run --all``."""
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--all",
        "--quiet",
        "--seed",
        str(seed),
        "--report-dir",
        str(report_dir),
    ]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run(cmd, cwd=ROOT, env=env, timeout=900, check=False, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = json.loads((report_dir / "latest" / "report.json").read_text())
    return wall, cpu, str(report["verdict"])


def main() -> int:
    """Measure, print the table and the ratio; exit 1 if the concurrent run misses 60 s or is not valid."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--jobs", type=int, help="for the concurrent run (default: chat-harness's default)")
    ap.add_argument("--only-concurrent", action="store_true", help="skip the serial run")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; seed {args.seed}")
    print(f"{'run':<28} {'wall s':>8} {'cpu s':>8}  verdict")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="suite-time-") as tmp:
        plan = [("concurrent", args.jobs)] if args.only_concurrent else [("serial", 1), ("concurrent", args.jobs)]
        for label, jobs in plan:
            wall, cpu, verdict = run_all(jobs, args.seed, Path(tmp, label))
            rows[label] = wall
            name = f"{label} (--jobs {jobs if jobs else 'default'})"
            print(f"{name:<28} {wall:8.1f} {cpu:8.1f}  {verdict}", flush=True)
            if label == "concurrent":
                ok = wall <= 60 and verdict == "valid"
    if "serial" in rows:
        print(f"ratio concurrent/serial = {rows['concurrent'] / rows['serial']:.2f}")
    print(f"target: concurrent <= 60 s and valid: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
