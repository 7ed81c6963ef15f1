"""The invariants, one small checker each, registered by number; importing this package registers them all.

Each checker is a function from the run's index (``harness.index.RunIndex``) to a ``Judgement``:
a status, the anomalies with their evidence, and how much it could not judge and why. They share
nothing but the index, so they run in any order — the way Jepsen composes checkers over one
history. Scenario checks join the same registry by name (``harness.checks.base.scenario_check``).
"""

from __future__ import annotations

from harness.checks import acks, answers, delivery, liveness, order, resources, shutdown, storage  # noqa: F401
from harness.checks.base import INVARIANTS, SCENARIO_CHECKS, Anomaly, Judgement, invariant, scenario_check

__all__ = ["INVARIANTS", "SCENARIO_CHECKS", "Anomaly", "Judgement", "invariant", "scenario_check"]
