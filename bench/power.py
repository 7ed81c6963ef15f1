"""Detection power: run scenarios against every mutant in the zoo and against the reference.

For each mutant (``tests/mutants``), runs the scenario its defect belongs to (``--all``: every
scenario, stopping at the first that catches it), then reruns the catching scenario K times for a
reproduction rate. Prints a table — mutant, detected, by which scenario and invariant or check,
time to first detection, size of the failing plan, reproduction rate — then ``detected N/M``, and
the same scenarios against the reference server, whose failures are false alarms.

Targets (from the issue): 100 % detected, median time to detect <= 10 s, 0 false alarms.

With ``--shrink`` it also lets the ``random`` scenario hunt each mutant with Hypothesis plans
(no scenario-specific knowledge) and reports how small the shrunk failing plan got.

    python bench/power.py [--all] [--shrink | --shrink-only] [--reruns 3] [--seed N] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from mutants.zoo import mutants  # noqa: E402

from harness.pbt import search  # noqa: E402
from harness.plan import Plan  # noqa: E402
from harness.scenario import ScenarioContext, ScenarioResult, shape_for  # noqa: E402
from harness.target import Target, reference  # noqa: E402
from scenarios.registry import load  # noqa: E402


def reported(result: ScenarioResult) -> set[str]:
    """What a scenario reported: anomaly kinds, and ``check:NAME`` for each failed check."""
    kinds = {a.kind for a in result.check.anomalies} if result.check else set()
    return kinds | {f"check:{c.name}" for c in result.checks if c.ok is False}


def caught_by(result: ScenarioResult, expected: tuple[str, ...]) -> tuple[str, bool]:
    """The expected kind (or check) when it was reported, else what was; and whether it was the expected one."""
    found = reported(result)
    for kind in expected:
        hits = [
            f for f in found if f == kind or (kind.startswith("check:") and f.startswith("check:") and kind[6:] in f)
        ]
        if hits:
            return hits[0], True
    return (sorted(found)[0] if found else "?"), False


def failing_plan_size(result: ScenarioResult) -> str:
    """Clients and operations of the first failing run's plan (the minimal one for searches)."""
    if result.search is not None and result.search.minimal is not None:
        plan = result.search.minimal.plan
    else:
        plan = next(
            (r.plan for r in result.runs if r.result.valid is False), result.runs[0].plan if result.runs else None
        )
    if plan is None:
        return "-"
    return f"{len(plan.clients)}c/{plan.size() - len(plan.clients)}op"


def run(name: str, target: Target, seed: int, workdir: Path) -> ScenarioResult:
    """One scenario run."""
    scenario = load()[name]
    return scenario.run(ScenarioContext(target, workdir / f"{name}-{time.monotonic_ns()}", seed))


def main() -> int:
    """Run the zoo and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--all", action="store_true", help="try every scenario, not just the mutant's own")
    ap.add_argument("--reruns", type=int, default=3, help="reruns of the catching scenario (K)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--only", nargs="*", help="mutant names")
    ap.add_argument("--shrink", action="store_true", help="also hunt each mutant with random plans and shrink")
    ap.add_argument("--shrink-only", action="store_true", help="only the random-plan hunt (skip the scenario table)")
    a = ap.parse_args()
    registry = load()
    everyone = [m for m in mutants() if not a.only or m.name in a.only]
    zoo = [m for m in everyone if m.caught_by]
    if a.shrink_only:
        hunt(zoo, a.seed, a.reruns)
        return 0
    correct = [m for m in everyone if not m.caught_by]  # correct variants: they must pass
    rows, times, scenarios_used = [], [], set()
    right_kind = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for m in zoo:
            order = [m.scenario] + ([n for n in sorted(registry) if n != m.scenario] if a.all else [])
            target, found, elapsed = m.target(), None, 0.0
            for name in order:
                started = time.monotonic()
                result = run(name, target, a.seed, work)
                elapsed += time.monotonic() - started
                if result.verdict is False:
                    found = (name, result)
                    break
            if found is None:
                rows.append((m.name, "NO", "-", "-", f"{elapsed:.1f}", "-", "-"))
                continue
            name, result = found
            scenarios_used.add(name)
            detect = (
                result.search.first_failure_after if result.search and result.search.first_failure_after else elapsed
            )
            times.append(detect)
            again = sum(run(name, target, a.seed + k + 1, work).verdict is False for k in range(a.reruns))
            kind, expected = caught_by(result, m.caught_by)
            right_kind += expected
            rows.append(
                (
                    m.name,
                    "yes",
                    name,
                    kind if expected else f"{kind} (expected {', '.join(m.caught_by)})",
                    f"{detect:.1f}",
                    failing_plan_size(result),
                    f"{again}/{a.reruns}",
                )
            )
        false_alarms = []
        for name in sorted(scenarios_used):
            result = run(name, reference(), a.seed, work)
            if result.verdict is not True:
                false_alarms.append(f"reference, {name}: {result.check.summary() if result.check else result.reason}")
        for m in correct:
            result = run(m.scenario, m.target(), a.seed, work)
            if result.verdict is not True:
                false_alarms.append(f"{m.name} (correct), {m.scenario}: {sorted(reported(result))}")
    header = ("mutant", "detected", "scenario", "caught by", "time s", "plan", "repro")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)))
    detected = sum(r[1] == "yes" for r in rows)
    median = statistics.median(times) if times else float("nan")
    print(
        f"detected {detected}/{len(rows)}, with the anomaly kind (or check) it is known for: {right_kind}/{len(rows)}"
    )
    print(
        f"median time to detect {median:.1f} s (target <= 10 s); false alarms: {len(false_alarms)} "
        f"(the reference over {len(scenarios_used)} scenarios, and {len(correct)} correct variant(s))"
    )
    for alarm in false_alarms:
        print(f"  false alarm: {alarm}")
    if a.shrink:
        hunt(zoo, a.seed, a.reruns)
    return 0 if detected == right_kind == len(rows) and not false_alarms else 1


def hunt(zoo: list, seed: int, reruns: int) -> None:  # type: ignore[type-arg]
    """Random plans only: does the search find each mutant, and how small does the failing plan shrink?"""
    print()
    print("random plans (Hypothesis, 30 s to find, 60 s to shrink):")
    header = ("mutant", "found", "after s", "first plan", "shrunk plan", "cut runs", "repro")
    rows = []
    minimal: list[Plan] = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in zoo:
            target = m.target()
            found = search(
                target,
                Path(tmp) / m.name,
                shape_for(target, max_clients=6),
                seed,
                max_examples=200,
                budget=30,
                shrink_budget=60,
                reruns=reruns,
            )
            if found.minimal is None or found.first_failure is None:
                rows.append((m.name, "no", "-", "-", "-", "-", "-"))
                continue
            minimal.append(found.minimal.plan)
            cut = found.shrunk
            rows.append(
                (
                    m.name,
                    "yes",
                    f"{found.first_failure_after:.1f}",
                    size(found.first_failure.plan),
                    size(found.minimal.plan),
                    f"{cut.runs} ({cut.accepted} cuts)" if cut else "-",
                    f"{found.reproduced}/{found.reruns}",
                )
            )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)))
    print(f"found by random plans: {sum(r[1] == 'yes' for r in rows)}/{len(rows)}")
    if minimal:
        clients = [len(p.clients) for p in minimal]
        ops = [sum(len(c.ops) for c in p.clients) for p in minimal]
        med_c, med_o = statistics.median(clients), statistics.median(ops)
        met = med_c <= 2 and med_o <= 4 and max(clients) <= 3
        print(
            f"minimal plans: median {med_c:g} clients, {med_o:g} operations; at most {max(clients)} clients"
            f" (goal: median <= 2 and <= 4, every one <= 3: {'met' if met else 'MISSED'})"
        )


def size(plan: Plan) -> str:
    """Clients, operations, fault steps, nemesis steps (named) and text bytes of a plan."""
    ops = sum(len(c.ops) for c in plan.clients)
    nemesis = "+".join(str(s["action"]) for s in plan.nemesis) or "0n"
    return f"{len(plan.clients)}c/{ops}op/{len(plan.faults)}f/{nemesis}/{plan.text_bytes}B"


if __name__ == "__main__":
    sys.exit(main())
