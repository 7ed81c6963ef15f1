"""Shared fixtures: Hypothesis profiles and a running reference server per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from support import ServerProcess

from harness.pytest_plugin import port_lock

settings.register_profile("ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start reference servers in ``tmp_path``; every one is killed at teardown if still running."""
    started: list[ServerProcess] = []

    def start(*args: str, ready: bool = True, **kw: object) -> ServerProcess:
        server = ServerProcess(tmp_path, *args, **kw)  # type: ignore[arg-type]
        started.append(server)
        return server.ready() if ready else server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """One reference server on a free port with a fresh database."""
    return start_server()


@pytest.fixture
def port_5000() -> Iterator[None]:
    """Port 5000 of this machine for this test alone (fixed-port servers outside a network namespace)."""
    with port_lock(5000):
        yield
