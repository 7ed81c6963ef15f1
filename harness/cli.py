"""``chat-harness``: run scenarios, replay a plan, re-check a stored run, list scenarios.

Exit codes: 0 valid, 1 invalid (an invariant was broken), 2 unknown or harness error.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import failures, isolation, parallel, report, reproduce
from harness import history as hist
from harness.checker import check
from harness.doctor import Diagnosis
from harness.history import History
from harness.log import LogError, LogReader
from harness.plan import Plan
from harness.runner import MIN_CLIENTS_PER_WORKER, RunConfig, default_workers, run_plan
from harness.scenario import Scenario, ScenarioContext, ScenarioResult, run_scenario
from harness.target import Target, TargetError, install_sigterm_cleanup, kill_all, load_target, set_status

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN = 0, 1, 2


class Progress:
    """A live status line on a terminal (stderr); silent otherwise or with --quiet."""

    def __init__(self, quiet: bool) -> None:
        """Show progress unless ``quiet`` or stderr is not a terminal."""
        self.live = not quiet and sys.stderr.isatty()
        self.quiet = quiet
        self.started = time.monotonic()
        self.scenario = ""

    def say(self, text: str) -> None:
        """Replace the status line."""
        if self.live:
            line = f"[{time.monotonic() - self.started:6.1f}s] {self.scenario} {text}"
            sys.stderr.write("\r\x1b[2K" + line[:150])
            sys.stderr.flush()

    def history(self, h: History) -> None:
        """Status from a running history."""
        sends = oks = 0
        for r in h.records[-20000:]:
            if r.f == "send":
                sends += r.type == hist.INVOKE
                oks += r.type == hist.OK
        self.say(f"sends {sends} acked {oks}")

    def line(self, text: str) -> None:
        """A permanent line (also when not on a terminal, unless quiet)."""
        if self.live:
            sys.stderr.write("\r\x1b[2K")
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)


def argv_is_ours() -> bool:
    """Whether sys.argv is this command's (not pytest's, when called from a test)."""
    return Path(sys.argv[0]).name in ("chat-harness", "__main__.py")


def exit_code(valid: bool | None) -> int:
    """The process exit code for a verdict."""
    return {True: EXIT_VALID, False: EXIT_INVALID, None: EXIT_UNKNOWN}[valid]


def cmd_list(args: argparse.Namespace) -> int:
    """Print the scenarios with their descriptions."""
    from scenarios.registry import load

    registry = load()
    width = max(len(n) for n in registry)
    for name, scenario in sorted(registry.items()):
        print(f"{name:<{width}}  {scenario.description}")
    return EXIT_VALID


def cmd_run(args: argparse.Namespace) -> int:
    """Run named scenarios (default: random) and write a report."""
    from scenarios.registry import load

    registry = load()
    names: list[str] = list(registry) if args.all else list(dict.fromkeys(args.scenarios or ["random"]))
    unknown = [n for n in names if n not in registry]
    if unknown:
        print(f"chat-harness: unknown scenario(s): {', '.join(unknown)} (see chat-harness list)", file=sys.stderr)
        return EXIT_UNKNOWN
    target = load_target(args.target)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    run_id = report.new_run_id()
    report_dir = Path(args.report_dir)
    out_dir = report_dir / run_id
    progress = Progress(args.quiet)
    set_status(progress.say)
    workers = args.workers if args.workers is not None else default_workers()
    if workers < 1:
        raise ValueError(f"--workers must be 1 or more, not {workers}")
    progress.line(f"chat-harness: run {run_id}, target {target.name}, seed {seed}, scenarios {', '.join(names)}")
    isolated = isolation_mode(target, args.isolate)
    jobs = jobs_for(args.jobs, target, isolated, progress)
    if target.fixed_port:
        how = (
            f"each scenario in its own {isolated}" if isolated else "one after another, each start waiting for the port"
        )
        progress.line(f"chat-harness: fixed port {target.port}: scenarios run {how}")
    slots: list[ScenarioResult | dict[str, Any]] = []
    for name in names:
        scenario = registry[name]
        why = scenario.not_applicable(target)
        if why:
            slots.append(ScenarioResult(name, scenario.description, None, applicable=False, reason=why))
            continue
        slots.append(
            {
                "target": args.target,
                "scenario": name,
                "description": scenario.description,
                "rundir": str(out_dir / name),
                "seed": seed,
                "clients": args.clients,
                "duration": args.duration,
                "quiet": args.quiet or jobs > 1,
                "workers": workers,
            }
        )
    todo = [s for s in slots if isinstance(s, dict)]
    jobs = min(jobs, max(1, len(todo)))
    if jobs > 1:
        progress.line(f"chat-harness: {jobs} scenarios at a time (--jobs 1 for one after another)")
    for s in slots:
        if isinstance(s, ScenarioResult):
            progress.line(f"  {s.name:<20} not applicable: {s.reason}")

    t0 = time.monotonic()
    ran = execute(todo, jobs, isolated, progress)
    results = [s if isinstance(s, ScenarioResult) else ran[s["scenario"]] for s in slots]
    command = " ".join(["chat-harness", *(sys.argv[1:] if argv_is_ours() else [])])
    isolation_text = isolated or (
        "waiting for the port between starts" if target.fixed_port else "none needed (port 0)"
    )
    if jobs > 1:
        isolation_text += f"; {jobs} scenarios at a time, each in its own process"
    write_reproductions(target, results)
    data = report.build(run_id, target, seed, results, time.monotonic() - t0, out_dir, command, isolation_text)
    path = report.write(report_dir, run_id, data)
    for i, f in enumerate(data["findings"], 1):
        progress.line(f"finding {i}: {f['title']} [{', '.join(f['scenarios'])}]")
    kept = keep_failures(target, results, data)
    if kept:
        progress.line(
            f"kept {len(kept)} failing plan(s) in {kept[0].parent}: after a fix, rerun them with"
            f" chat-harness replay --failures --target {report.target_arg(target)}"
        )
    applicable = [r for r in results if r.applicable]
    failing = [f for f in data["failures"] if f["verdict"] == "invalid"]
    tally = f" ({len(failing)} of {len(applicable)} scenarios failed)" if failing else ""
    progress.line(f"verdict: {data['verdict']}{tally}; report: {path}")
    progress.line(f"open it: python3 -m webbrowser {path.with_name('report.html').resolve().as_uri()}")
    for f in data["failures"]:
        if f.get("reproduce"):
            progress.line(f"reproduce {f['scenario']} without the harness: {f['reproduce']}")
        if f.get("replay"):
            progress.line(f"replay {f['scenario']}: {f['replay']}")
    return {"valid": EXIT_VALID, "invalid": EXIT_INVALID}.get(data["verdict"], EXIT_UNKNOWN)


def jobs_for(asked: int | None, target: Target, isolated: str | None, progress: Progress) -> int:
    """How many scenarios run at once: as asked (default from the CPUs), one for a fixed port without namespaces."""
    jobs = asked if asked is not None else parallel.default_jobs()
    if jobs < 1:
        raise ValueError(f"--jobs must be 1 or more, not {jobs}")
    why = None
    if target.fixed_port and not isolated:
        why = "one fixed port, no network namespace to give each its own"
    elif not own_log(target):
        why = f"every instance would write the same log ({target.log.path})"
    if why:
        if jobs > 1:
            progress.line(f"chat-harness: one scenario at a time: {why}")
        return 1
    return jobs


def own_log(target: Target) -> bool:
    """Whether each run's server writes a log of its own (its ``{db}``, or a file in its own copy of the code)."""
    path = target.log.path
    return "{db}" in path or ("{workdir}" in path and target.copy_cwd)


def execute(
    todo: list[dict[str, Any]], jobs: int, isolated: str | None, progress: Progress
) -> dict[str, ScenarioResult]:
    """Run the scenario jobs, ``jobs`` at a time (longest first) or one after another; results by name."""
    from scenarios.registry import load

    registry = load()

    def done(result: ScenarioResult) -> None:
        progress.line(
            f"  {result.name:<20} {report.verdict_word(result.verdict)}  ({result.seconds:.1f} s)"
            + (f"  {result.check.summary()}" if result.check is not None else f"  {result.reason}")
        )

    def tick(running: list[str], finished: int) -> None:
        progress.say(f"{finished}/{len(todo)} done; running {', '.join(running)}")

    if jobs > 1:  # longest first, so the run is not left waiting on one long scenario at the end
        order = sorted(todo, key=lambda j: -expected_seconds(registry[j["scenario"]]))
        results = parallel.run_jobs(order, jobs, bool(isolated), done, tick)
        return {r["scenario"]: result for r, result in zip(order, results, strict=True)}
    ran = {}
    for job in todo:
        progress.scenario = job["scenario"]
        result = isolation.run(job) if isolated else run_job(job, None, progress)
        ran[job["scenario"]] = result
        done(result)
    return ran


def expected_seconds(scenario: Scenario) -> float:
    """About how long a scenario takes against the reference (to start the long ones first)."""
    return float(getattr(scenario, "expected_seconds", 3.0))


def isolation_mode(target: Target, wanted: str) -> str | None:
    """How a fixed-port target's scenarios are kept apart: a network namespace each, or None (wait for the port)."""
    if not target.fixed_port or wanted == "no":
        return None
    mode = isolation.available()
    if mode is None and wanted == "yes":
        raise TargetError("--isolate yes: network namespaces are not available here (Linux, root or user namespaces)")
    return mode


def run_job(job: dict[str, Any], mode: str | None, progress: Progress | None = None) -> ScenarioResult:
    """Run one scenario as ``job`` describes (here, or inside an isolated child process)."""
    from scenarios.registry import load

    scenario = load()[job["scenario"]]
    target = load_target(job["target"])
    progress = progress or Progress(bool(job["quiet"]))
    progress.scenario = job["scenario"]
    set_status(progress.say)
    ctx = ScenarioContext(
        target,
        Path(job["rundir"]),
        int(job["seed"]),
        job["clients"],
        job["duration"],
        RunConfig(progress=progress.history, workers=int(job.get("workers", 1))),
        say=progress.say,
    )
    result = run_scenario(scenario, ctx)
    if mode:
        result.extra["isolation"] = mode
    return result


def write_reproductions(target: Target, results: list[ScenarioResult]) -> None:
    """Beside each failing plan the script can express, a standalone ``reproduce.py`` (its command in ``extra``)."""
    for r in results:
        if r.verdict is not False or not r.replay or r.name not in failures.REPLAYABLE or r.check is None:
            continue
        shown = [a for a in r.check.anomalies if a.kind in reproduce.SHOWS]
        if not shown:  # the script compares the log with what was sent: it cannot show this defect
            continue
        try:
            path = reproduce.write(
                Plan.load(Path(r.replay)), target, Path(r.replay).parent, f"{shown[0].kind}: {shown[0].message}"
            )
        except (OSError, ValueError) as exc:
            print(f"chat-harness: no reproduce.py for {r.name}: {exc}", file=sys.stderr)
            continue
        if path is not None:
            r.extra["reproduce"] = reproduce.command(path.resolve(), target)


def keep_failures(target: Target, results: list[ScenarioResult], data: dict[str, Any]) -> list[Path]:
    """Put each failing scenario's failing plan in the failures database (where its replay is faithful)."""
    kept = []
    for r, entry in zip(results, data["scenarios"], strict=True):
        if r.verdict is False and r.replay:
            try:
                path = failures.keep(target.name, r.name, Plan.load(Path(r.replay)), entry.get("anomalies", []))
            except (OSError, ValueError) as exc:  # the run's verdict stands; only the keeping failed
                print(f"chat-harness: could not keep the failing plan of {r.name}: {exc}", file=sys.stderr)
                continue
            if path is not None:
                kept.append(path)
    return kept


def cmd_replay_failures(args: argparse.Namespace) -> int:
    """Rerun every kept failure of the target: FIXED or STILL FAILING, one line each."""
    target = load_target(args.target)
    kept = failures.load(target.name)
    if not kept:
        print(f"no kept failures for {target.name} in {failures.folder(target.name)}")
        return EXIT_VALID
    progress = Progress(args.quiet)
    base = Path(args.report_dir) / report.new_run_id()
    still = unknown = 0
    for f in kept:
        outcome = run_plan(target, f.plan, base / f.path.stem, config=RunConfig(progress=progress.history))
        where = f"{f.scenario} ({f.path.name})"
        if outcome.result.valid is False:
            still += 1
            f.passes = 0
            f.save()
            a = outcome.result.anomalies[0] if outcome.result.anomalies else None
            why = f"{a.kind}: {a.message}" if a else outcome.result.summary()
            progress.line(f"STILL FAILING  {where}: {why}")
        elif outcome.result.valid is None:
            unknown += 1
            progress.line(f"UNKNOWN        {where}: {outcome.result.summary()}")
        else:
            f.passes += 1
            if f.passes >= args.keep:
                f.path.unlink()
                progress.line(f"FIXED          {where}: passed {f.passes} times in a row, dropped")
            else:
                f.save()
                progress.line(f"FIXED          {where}: passed {f.passes}/{args.keep} in a row, kept until {args.keep}")
    progress.line(f"{len(kept) - still - unknown} fixed, {still} still failing, {unknown} unknown; runs in {base}")
    return EXIT_INVALID if still else (EXIT_UNKNOWN if unknown else EXIT_VALID)


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-execute a plan file K times against the target (or, with --failures, every kept failure)."""
    if args.failures:
        return cmd_replay_failures(args)
    if not args.plan:
        raise ValueError("replay needs a plan file, or --failures")
    plan = Plan.load(Path(args.plan))
    target = load_target(args.target)
    progress = Progress(args.quiet)
    base = Path(args.report_dir) / report.new_run_id()
    failed = 0
    valid: bool | None = True
    for k in range(args.times):
        outcome = run_plan(target, plan, base / f"replay-{k}", config=RunConfig(progress=progress.history))
        progress.line(f"replay {k + 1}/{args.times}: {outcome.result.summary()}")
        for a in outcome.result.anomalies[:5]:
            progress.line(f"    {a.kind} (invariant {a.invariant}): {a.message}")
        if outcome.result.valid is False:
            failed += 1
            valid = False
        elif outcome.result.valid is None and valid is True:
            valid = None
    progress.line(f"reproduced {failed}/{args.times}; runs in {base}")
    return exit_code(valid)


def cmd_check(args: argparse.Namespace) -> int:
    """Re-check a stored history against the log it names, without running anything."""
    records = hist.load(Path(args.history))
    target = load_target(args.target)
    run = next((r for r in records if r.f == "run"), None)
    if run is None:
        print(f"chat-harness: {args.history} has no run record", file=sys.stderr)
        return EXIT_UNKNOWN
    db = Path(args.db or run.get("db"))
    log_error = None
    try:
        rows = LogReader(db, target.log).rows_after(int(run.get("baseline_id", 0)))
    except LogError as exc:
        rows, log_error = [], str(exc)
    result = check(records, rows, log_error)
    print(result.summary())
    for a in result.anomalies[:20]:
        print(f"  {a.kind} (invariant {a.invariant}): {a.message}")
    return exit_code(result.valid)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check a target file's claims against the real server (start, one message, the log, the stop)."""
    d = _diagnose(args.target, args.isolate)
    print(d.text())
    return EXIT_VALID if d.healthy else EXIT_INVALID


def _diagnose(path: str, isolate: str) -> Diagnosis:
    """Run the doctor on the target file at ``path`` (a fixed-port server in its own namespace when possible)."""
    import tempfile

    from harness.doctor import diagnose

    target = load_target(path)
    isolated = isolation_mode(target, isolate)
    with tempfile.TemporaryDirectory(prefix="chat-harness-doctor-") as tmp:
        if isolated:  # a fixed port: this machine's port 5000 (busy, or in TIME_WAIT) does not matter
            job = {"call": "doctor", "target": str(Path(path).resolve()), "workdir": tmp}
            return isolation.run(job, timeout=300)  # type: ignore[no-any-return]
        return diagnose(target, Path(tmp))


def cmd_init(args: argparse.Namespace) -> int:
    """Guess a target file for a server directory from its code, write it, and let doctor check (and correct) it."""
    from harness.init import guess, learn, toml

    directory = Path(args.directory).resolve()
    if not directory.is_dir():
        print(f"chat-harness: {directory} is not a directory", file=sys.stderr)
        return EXIT_UNKNOWN
    out = Path(args.output or f"{directory.name}.toml").resolve()
    if out.exists() and not args.force:
        print(f"chat-harness: {out} exists (--force to overwrite)", file=sys.stderr)
        return EXIT_UNKNOWN
    cwd = os.path.relpath(directory, out.parent)
    g = guess(directory)
    out.write_text(toml(g, directory.name, cwd), encoding="utf-8")
    print(f"wrote {out}")
    if args.no_doctor:
        return EXIT_VALID
    d = _diagnose(str(out), "auto")
    changed = learn(g, {f.key: (f.ok, f.said) for f in d.findings})
    if changed:  # what the server did overrules what its code suggested: write that, and check again
        out.write_text(toml(g, directory.name, cwd), encoding="utf-8")
        print("\n".join([f"corrected {out.name} from what the server did:", *(f"  {c}" for c in changed)]))
        d = _diagnose(str(out), "auto")
    print(d.text())
    return EXIT_VALID if d.healthy else EXIT_INVALID


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    ap = argparse.ArgumentParser(prog="chat-harness", description="Property-based concurrency tests for chat servers.")
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--target", default="reference", help="a target TOML file, or 'reference' (default)")
        p.add_argument("--report-dir", default="reports", help="where run directories go (default %(default)s)")
        p.add_argument("--quiet", action="store_true", help="no progress line (for CI)")

    run = sub.add_parser("run", help="run scenarios and write a report")
    run.add_argument("scenarios", nargs="*", help="scenario names (default: random); see 'list'")
    run.add_argument("--all", action="store_true", help="run every scenario")
    run.add_argument("--seed", type=int, help="seed for plans and faults (default: random, printed)")
    run.add_argument("--clients", type=int, help="simulated clients (scenario default otherwise)")
    run.add_argument("--duration", type=float, help="seconds of search or load per scenario")
    run.add_argument(
        "--isolate",
        choices=("auto", "yes", "no"),
        default="auto",
        help="fixed-port targets: run each scenario in its own network namespace (default: when possible)",
    )
    run.add_argument(
        "--jobs",
        "-j",
        type=int,
        help=f"scenarios at a time, each in its own process (default {parallel.default_jobs()}: twice the CPUs;"
        " 1: one after another in this process)",
    )
    run.add_argument(
        "--workers",
        type=int,
        help=f"processes driving the simulated clients of a run (default {default_workers()}: half the CPUs; used"
        f" only for runs of at least {MIN_CLIENTS_PER_WORKER} clients per worker)",
    )
    common(run)
    run.set_defaults(func=cmd_run)

    replay = sub.add_parser("replay", help="re-execute a plan file")
    replay.add_argument("plan", nargs="?", help="a plan.json (from a run directory)")
    replay.add_argument("--times", type=int, default=1, help="how many times (default %(default)s)")
    replay.add_argument(
        "--failures", action="store_true", help="rerun every failure kept for the target: FIXED or STILL FAILING"
    )
    replay.add_argument(
        "--keep",
        type=int,
        default=failures.KEEP,
        help="with --failures: drop a failure once it passed this many times in a row (default %(default)s)",
    )
    common(replay)
    replay.set_defaults(func=cmd_replay)

    chk = sub.add_parser("check", help="re-check a stored history.jsonl against its log")
    chk.add_argument("history", help="a history.jsonl")
    chk.add_argument("--target", default="reference", help="target file giving the log mapping")
    chk.add_argument("--db", help="the log file, if it moved since the run")
    chk.set_defaults(func=cmd_check)

    doc = sub.add_parser("doctor", help="check a target file against its server (in seconds)")
    doc.add_argument("target", help="a target TOML file")
    doc.add_argument(
        "--isolate",
        choices=("auto", "yes", "no"),
        default="auto",
        help="a fixed-port server runs in its own network namespace (default: when possible)",
    )
    doc.set_defaults(func=cmd_doctor)

    ini = sub.add_parser("init", help="write a first target file for a server directory, then check it")
    ini.add_argument("directory", help="the directory with the server's code")
    ini.add_argument("-o", "--output", help="the target file to write (default: DIRECTORY_NAME.toml here)")
    ini.add_argument("--force", action="store_true", help="overwrite an existing file")
    ini.add_argument("--no-doctor", action="store_true", help="only write the file")
    ini.set_defaults(func=cmd_init)

    lst = sub.add_parser("list", help="list the scenarios")
    lst.set_defaults(func=cmd_list)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``chat-harness`` and ``python -m harness``."""
    args = build_parser().parse_args(argv)
    install_sigterm_cleanup()
    try:
        return int(args.func(args))
    except (TargetError, ValueError, OSError) as exc:
        print(f"chat-harness: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    except KeyboardInterrupt:
        print("chat-harness: interrupted", file=sys.stderr)
        return EXIT_UNKNOWN
    finally:
        kill_all()
