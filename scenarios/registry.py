"""The scenario registry: every named scenario registers itself here; the harness finds them only here."""

from __future__ import annotations

import importlib
import pkgutil

from harness.scenario import Scenario

REGISTRY: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    """Add a scenario (instances register themselves at import)."""
    if scenario.name in REGISTRY:
        raise ValueError(f"scenario {scenario.name!r} registered twice")
    REGISTRY[scenario.name] = scenario
    return scenario


def load() -> dict[str, Scenario]:
    """Import every scenario module of this package; return the registry."""
    import scenarios

    for info in pkgutil.iter_modules(scenarios.__path__):
        if info.name != "registry":
            importlib.import_module(f"scenarios.{info.name}")
    return REGISTRY
