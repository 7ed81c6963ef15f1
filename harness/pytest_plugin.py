"""pytest plugin (entry point ``chat_harness``): fixtures to test chat servers with the harness.

Options::

    --chat-target FILE     a target file or 'reference' (repeat it to run against several targets)
    --chat-seed N          seed for scenarios (default: a fixed one, so runs repeat)
    --chat-report-dir DIR  also write a report for every scenario run through ``chat_scenario``

Fixtures: ``chat_target`` (the Target, parametrised over every --chat-target), ``chat_server``
(a started instance, stopped after the test) and ``chat_scenario`` (runs a named scenario and
returns its ScenarioResult). Under pytest-xdist every worker gets its own port range, and tests
against a fixed-port target take turns on a machine-wide lock on that port (they are also marked
``xdist_group`` for ``--dist loadgroup``, which pytest 9.2 with pytest-xdist 3.8 ignores).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.scenario import ScenarioContext, ScenarioResult, run_scenario
from harness.target import ServerRun, Target, load_target

PORTS_PER_WORKER = 400
FIRST_PORT = 20000
PORT_LOCK_WAIT = 900.0  # seconds a test waits for another one to give a fixed port back
DEFAULT_SEED = 20261128


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's command-line options."""
    group = parser.getgroup("chat-harness")
    group.addoption("--chat-target", action="append", default=[], help="target file or 'reference' (repeatable)")
    group.addoption("--chat-seed", type=int, default=DEFAULT_SEED, help="seed for scenarios")
    group.addoption("--chat-report-dir", default=None, help="write a report for each scenario run")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; give this xdist worker its own port range."""
    config.addinivalue_line("markers", "scenario: runs a named chat-harness scenario against a live server")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    m = re.fullmatch(r"gw(\d+)", worker)
    if m:
        low = FIRST_PORT + int(m.group(1)) * PORTS_PER_WORKER
        os.environ.setdefault("CHAT_HARNESS_PORTS", f"{low}-{low + PORTS_PER_WORKER - 1}")


def _specs(config: pytest.Config) -> list[str]:
    return list(config.getoption("chat_target")) or ["reference"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``chat_target`` over every --chat-target."""
    if "chat_target" in metafunc.fixturenames:
        specs = _specs(metafunc.config)
        metafunc.parametrize("chat_target", specs, indirect=True, ids=[Path(s).stem for s in specs])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep tests against a fixed-port target on one xdist worker (they cannot run side by side)."""
    for item in items:
        spec = getattr(item, "callspec", None) and item.callspec.params.get("chat_target")  # type: ignore[attr-defined]
        if isinstance(spec, str) and spec != "reference":
            target = load_target(spec)
            if target.fixed_port:
                item.add_marker(pytest.mark.xdist_group(f"port-{target.port}"))


@contextlib.contextmanager
def port_lock(port: int, timeout: float = PORT_LOCK_WAIT) -> Iterator[None]:
    """Hold a machine-wide lock on a fixed port while a test uses it: xdist workers (and other test
    sessions) take turns. ``xdist_group`` alone is not enough: with pytest 9.2 and pytest-xdist 3.8
    ``--dist loadgroup`` silently stops grouping (pytest-dev/pytest-xdist#1386)."""
    if sys.platform == "win32":  # no flock: xdist_group is all there is
        yield
        return
    import fcntl

    path = Path(tempfile.gettempdir()) / f"chat-harness-port-{port}.lock"
    with path.open("a+") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"port {port} stayed in use by another test for {timeout:g} s") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture
def chat_target(request: pytest.FixtureRequest) -> Target:
    """The target under test (from --chat-target; the reference server by default)."""
    spec = getattr(request, "param", None) or _specs(request.config)[0]
    return load_target(spec)


@pytest.fixture
def chat_server(chat_target: Target, tmp_path: Path) -> Iterator[ServerRun]:
    """A running instance of the target, stopped (and its process group killed) after the test."""
    with port_lock(chat_target.port) if chat_target.fixed_port else contextlib.nullcontext():
        run = ServerRun(chat_target, tmp_path / "server").start()
        try:
            yield run
        finally:
            run.stop()
            run.kill()


@pytest.fixture
def chat_scenario(chat_target: Target, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., ScenarioResult]:
    """Run a named scenario against the target: ``chat_scenario("port-in-use", clients=10)``."""
    from harness import report
    from scenarios.registry import load

    registry = load()
    seed = int(request.config.getoption("chat_seed"))
    report_dir = request.config.getoption("chat_report_dir")

    def run(name: str, clients: int | None = None, duration: float | None = None, **_: Any) -> ScenarioResult:
        scenario = registry[name]
        why = scenario.not_applicable(chat_target)
        if why:
            return ScenarioResult(name, scenario.description, None, applicable=False, reason=why)
        run_id = f"{report.new_run_id()}-{name}"
        base = Path(report_dir) / run_id if report_dir else tmp_path
        with port_lock(chat_target.port) if chat_target.fixed_port else contextlib.nullcontext():
            result = run_scenario(scenario, ScenarioContext(chat_target, base / name, seed, clients, duration))
        if report_dir:
            data = report.build(run_id, chat_target, seed, [result], result.seconds, base)
            report.write(Path(report_dir), run_id, data)
        return result

    return run
