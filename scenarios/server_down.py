"""server-down: clients against a stopped server, then the server comes back on the same port and log."""

from __future__ import annotations

import socket
import subprocess
import time

from harness.checks import scenario_check
from harness.log import LogReader
from harness.plan import Plan
from harness.runner import LiveServer
from harness.scenario import (
    AnyTarget,
    Check,
    ScenarioContext,
    ScenarioResult,
    chatter,
    conclude,
    run,
    run_client,
    still_stored,
)
from harness.target import TargetError
from scenarios.registry import register


class ServerDown(AnyTarget):
    """Chat, stop the server, knock on the closed port, bring it back, chat again: nothing acked is lost."""

    name = "server-down"
    description = (
        "clients against a stopped server: clear refusals and exit codes, retry until it is back, nothing lost"
    )

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Before, during and after the outage."""
        t0 = self.begin(ctx)
        live = LiveServer(ctx.target, ctx.rundir / "servers")
        checks: list[Check] = []
        runs = []
        try:
            before = run(ctx, Plan(chatter(3, messages=3), seed=ctx.seed, name=self.name), "before", server=live)
            runs.append(before)
            srv = live.run
            assert srv is not None
            srv.stop()
            host, port = srv.host, srv.port
            checks.append(refused_at_once(host, port))
            client = None
            if ctx.target.client:
                checks += client_when_down(ctx, host, port)
                client = start_retrying_client(ctx, host, port)
            try:
                back = live.restart()
            except TargetError as exc:
                checks.append(Check("the server starts again on the same port and log", False, str(exc)[:300]))
                return conclude(self, ctx, t0, runs, checks)
            if client is not None:
                checks += finish_retrying_client(client, LogReader(back.db_path, ctx.target.log))
            after = run(ctx, Plan(chatter(3, messages=3), seed=ctx.seed, name=self.name), "after", server=live)
            runs.append(after)
            checks.append(still_stored(before, LogReader(back.db_path, ctx.target.log), "the outage"))
        finally:
            live.close()
        return conclude(self, ctx, t0, runs, checks)


@scenario_check("refused-at-once")
def refused_at_once(host: str, port: int) -> Check:
    """Connections to a stopped server must be refused, not left hanging."""
    slowest, outcomes = 0.0, []
    for _ in range(5):
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=3):
                outcomes.append("accepted")
        except ConnectionRefusedError:
            outcomes.append("refused")
        except OSError as exc:
            outcomes.append(type(exc).__name__)
        slowest = max(slowest, time.monotonic() - started)
    ok = all(o == "refused" for o in outcomes) and slowest < 1.0
    return Check("connections to the stopped server are refused at once", ok, f"{outcomes[0]}, slowest {slowest:.3f} s")


def client_when_down(ctx: ScenarioContext, host: str, port: int) -> list[Check]:
    """The target's own client program against the stopped server."""
    started = time.monotonic()
    try:
        proc = run_client(ctx.target, host, port, "hola\n", timeout=30)
    except subprocess.TimeoutExpired:
        return [Check("the client gives up quickly when the server is down", False, "still running after 30 s")]
    took = time.monotonic() - started
    said = (proc.stderr + proc.stdout).decode(errors="replace").strip()  # many clients print errors on stdout
    lines = said.splitlines()
    return [
        Check(
            "the client exits non-zero when the server is down", proc.returncode != 0, f"exit code {proc.returncode}"
        ),
        Check(
            "saying why in a line or two, without a traceback",
            0 < len(lines) <= 3 and "Traceback" not in said,
            said[:300] or "it printed nothing",
        ),
        Check("within 5 s", took < 5, f"{took:.2f} s"),
    ]


def start_retrying_client(ctx: ScenarioContext, host: str, port: int) -> subprocess.Popen[bytes] | None:
    """The client with retries, started while the server is down (if the target says how to ask for retries)."""
    if not ctx.target.supports("client_retry"):
        return None
    retry = [p.replace("{value}", "10") for p in dict(ctx.target.options)["client_retry"]]
    return subprocess.Popen(
        ctx.target.client_command(host, port, *retry),
        cwd=ctx.target.cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish_retrying_client(proc: subprocess.Popen[bytes], reader: LogReader) -> list[Check]:
    """Once the server is back, the retrying client must get through and store its message once."""
    text = f"sent while the server was down {time.monotonic_ns()}"
    try:
        _, err = proc.communicate(text.encode() + b"\n", timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return [Check("a retrying client gets through once the server is back", False, "still running after 60 s")]
    stored = sum(1 for r in reader.rows_after(0) if r.content == text)
    return [
        Check(
            "a retrying client gets through once the server is back",
            proc.returncode == 0,
            f"exit code {proc.returncode}: {err.decode(errors='replace').strip()[-200:]}",
        ),
        Check("and its message is stored exactly once", stored == 1, f"stored {stored} times"),
    ]


register(ServerDown())
