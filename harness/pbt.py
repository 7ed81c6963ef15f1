"""Property-based driving: draw plans with Hypothesis, run them against a live target, shrink failures.

Two entry points:

* ``search(...)`` — what ``chat-harness run`` and the tests use. Hypothesis draws whole plans from
  a seed; a failing plan is shrunk (within a time budget), the smallest failing plan is then
  re-executed K times and reported with its reproduction rate k/K instead of a bare ``Flaky``.
* ``LiveTarget`` — for your own ``@given(plans())`` tests: ``LiveTarget(target).check(plan)``
  raises AssertionError with the anomalies, and Hypothesis shrinks as usual.

Every example's plan is written to disk before it runs (``current/plan.json``), so a run that is
killed mid-example still leaves the plan to replay.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky, HypothesisException

from harness.plan import Plan, Shape, plans
from harness.runner import LiveServer, RunConfig, RunOutcome, run_plan
from harness.shrink import Shrunk, shrink
from harness.target import Target

BATCH = 10
HYPOTHESIS_SHARE = 1 / 3  # of the shrink budget, for Hypothesis' own shrinking; the rest cuts the plan itself


class PlanFailed(AssertionError):
    """A plan broke an invariant."""


@dataclass
class SearchOutcome:
    """What a search found."""

    seed: int
    examples: int = 0
    seconds: float = 0.0
    first_failure: RunOutcome | None = None
    first_failure_after: float | None = None
    minimal: RunOutcome | None = None
    reproduced: int = 0
    reruns: int = 0
    shrunk: Shrunk | None = None  # the domain-aware pass after Hypothesis' own
    last: RunOutcome | None = None
    runs: list[RunOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool | None:
        """False if a failure was found, None if nothing could be checked, True otherwise."""
        if self.minimal is not None:
            return False
        if self.examples == 0 or self.errors:
            return None
        return True


def _replace_dir(src: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("server-*"))


def search(
    target: Target,
    rundir: Path,
    shape: Shape,
    seed: int,
    max_examples: int = 20,
    budget: float = 60.0,
    shrink_budget: float = 120.0,
    reruns: int = 5,
    config: RunConfig | None = None,
    on_example: Callable[[int, RunOutcome], None] | None = None,
) -> SearchOutcome:
    """Draw up to ``max_examples`` plans (for at most ``budget`` seconds), shrink the first failure, rerun it."""
    rundir.mkdir(parents=True, exist_ok=True)
    live = LiveServer(target, rundir / "servers")
    out = SearchOutcome(seed=seed)
    counter = itertools.count()
    started = time.monotonic()
    shrink_deadline: list[float] = []
    failures: list[RunOutcome] = []

    def body(plan: Plan) -> None:
        now = time.monotonic()
        if failures:
            if now > shrink_deadline[0]:
                return  # out of shrinking time: keep the smallest failure found so far
        elif now - started > budget:
            return  # out of time for new examples
        i = next(counter)
        outcome = run_plan(target, plan, rundir / "current", server=live, config=config)
        out.examples += 1
        out.last = outcome
        out.runs.append(outcome)
        if on_example is not None:
            on_example(i, outcome)
        if outcome.result.valid is not False:
            return
        if not failures:
            shrink_deadline.append(time.monotonic() + shrink_budget * HYPOTHESIS_SHARE)
            shrink_deadline.append(time.monotonic() + shrink_budget)
            out.first_failure = outcome
            out.first_failure_after = time.monotonic() - started
            _replace_dir(outcome.rundir, rundir / "first-failure")
        if not failures or plan.sort_key() < min(f.plan.sort_key() for f in failures):
            _replace_dir(outcome.rundir, rundir / "minimal")
        failures.append(outcome)
        raise PlanFailed(outcome.result.summary())

    def batch(batch_seed: int, examples: int) -> None:
        test = settings(
            max_examples=examples,
            database=None,
            deadline=None,
            derandomize=False,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            print_blob=False,
        )(hypothesis_seed(batch_seed)(given(plans(shape))(body)))
        test()

    interrupted = False
    # Batches of examples, each seeded from ``seed``, until the budget or max_examples is spent:
    # Hypothesis has no time budget of its own, and drawing plans it will not run costs time.
    try:
        for k in itertools.count():
            if failures or out.examples >= max_examples or time.monotonic() - started > budget:
                break
            batch((seed + 7919 * k) % 2**32, min(BATCH, max_examples - out.examples))
    except (PlanFailed, Flaky):
        pass  # the failures are recorded above; a flaky final replay is measured below instead
    except HypothesisException as exc:
        out.errors.append(f"hypothesis: {exc}")
    except BaseException:  # interrupted (Ctrl+C, SIGTERM): keep what was found, spend no more time on it
        interrupted = True
        raise
    finally:
        try:
            if failures:
                minimal = min(failures, key=lambda f: f.plan.sort_key())
                minimal.rundir = rundir / "minimal"  # its files were copied there when it failed (not current/)
                smaller = None
                if not interrupted:
                    out.shrunk, smaller = cut_down(target, minimal, rundir, live, config, shrink_deadline[1])
                out.minimal = smaller or minimal
                out.reruns = 0 if interrupted else reruns
                for k in range(out.reruns):
                    again = run_plan(target, out.minimal.plan, rundir / "reruns" / str(k), server=live, config=config)
                    out.reproduced += again.result.valid is False
        finally:
            live.close()
    out.seconds = time.monotonic() - started
    return out


def failing_kinds(outcome: RunOutcome) -> set[str]:
    """The anomaly kinds of a failed run (empty when it did not fail)."""
    return {a.kind for a in outcome.result.anomalies} if outcome.result.valid is False else set()


def cut_down(
    target: Target, failed: RunOutcome, rundir: Path, live: LiveServer, config: RunConfig | None, deadline: float
) -> tuple[Shrunk | None, RunOutcome | None]:
    """Shrink ``failed``'s plan by its parts until ``deadline``; rerun the result into ``rundir/minimal``.

    Returns the shrinking's account and, when it found a smaller plan that failed again in its own
    directory, that run: the report's anomalies, plot and files then all come from it.
    """
    kinds = failing_kinds(failed)
    if not kinds or time.monotonic() >= deadline:
        return None, None

    def attempt(plan: Plan) -> set[str]:
        return failing_kinds(run_plan(target, plan, rundir / "shrinking", server=live, config=config))

    shrunk = shrink(failed.plan, attempt, kinds, deadline)
    if not shrunk.accepted:
        return shrunk, None
    for _ in range(3):  # the run the report tells: a failing one, then moved to minimal/
        shutil.rmtree(rundir / "shrunk", ignore_errors=True)
        again = run_plan(target, shrunk.plan, rundir / "shrunk", server=live, config=config)
        if failing_kinds(again) & kinds:
            shutil.rmtree(rundir / "minimal", ignore_errors=True)
            (rundir / "shrunk").rename(rundir / "minimal")
            again.rundir = rundir / "minimal"
            return shrunk, again
    return shrunk, None


class LiveTarget:
    """A target kept running across Hypothesis examples, for ``@given(plans())`` tests of your own."""

    def __init__(self, target: Target, workdir: Path, config: RunConfig | None = None) -> None:
        """Start instances of ``target`` under ``workdir`` when first needed."""
        self.target = target
        self.workdir = workdir
        self.config = config
        self.live = LiveServer(target, workdir / "servers")
        self._n = itertools.count()

    def check(self, plan: Plan) -> RunOutcome:
        """Run ``plan``; raise AssertionError (with the anomalies) unless the run is valid."""
        outcome = run_plan(
            self.target, plan, self.workdir / f"example-{next(self._n)}", server=self.live, config=self.config
        )
        if outcome.result.valid is not True:
            lines = [outcome.result.summary()] + [f"  {a.kind}: {a.message}" for a in outcome.result.anomalies[:10]]
            lines.append(f"  replay: chat-harness replay {outcome.rundir / 'plan.json'} --target {self.target.source}")
            raise AssertionError("\n".join(lines))
        return outcome

    def close(self) -> None:
        """Stop the server."""
        self.live.close()
