"""port-in-use: a second instance on a busy port fails fast and clearly; a clean stop frees the port at once."""

from __future__ import annotations

import re
import time
from dataclasses import replace

from harness.plan import Plan
from harness.runner import LiveServer
from harness.scenario import AnyTarget, Check, ScenarioContext, ScenarioResult, chatter, conclude, run
from harness.target import PortTaken, ServerRun, TargetError, listening, port_free
from scenarios.registry import register

FAST = 5.0  # seconds a refused second instance may take to give up


class PortInUse(AnyTarget):
    """Start, start again on the same port, check the first still serves; stop and restart at once."""

    name = "port-in-use"
    description = "a second instance on the busy port fails fast with a clear message while the first keeps serving"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Three instances in a row on one port."""
        t0 = self.begin(ctx)
        live = LiveServer(ctx.target, ctx.rundir / "servers")
        runs, checks = [], []
        try:
            first = live.ensure()
            port = first.port
            second = ServerRun(ctx.target, ctx.rundir / "second", port=port).launch()
            started = time.monotonic()
            code = second.wait_exit(FAST)
            took = time.monotonic() - started
            text = second.output().strip()
            second.kill()
            checks += [
                Check(f"a second instance on port {port} exits within {FAST:g} s", code is not None, f"{took:.2f} s"),
                Check("with a non-zero exit code", code not in (None, 0), f"exit code {code}"),
                Check(
                    "saying why, naming the port",
                    bool(re.search(rf"{port}|in use|en uso|already", text, re.I)),
                    text.splitlines()[-1][:200] if text else "it printed nothing",
                ),
                Check("without a traceback", not second.traceback(), second.traceback()[:200]),
            ]
            plan = Plan(chatter(3, messages=3), seed=ctx.seed, name=self.name)
            ordinary = replace(ctx.config.options, reset_after_server_close=False)  # clients as people's are
            runs.append(run(ctx, plan, "first-still-serving", server=live, options=ordinary))
            stop = first.stop()
            if ctx.target.stop != "kill":  # a server that can only be killed has no clean stop to judge
                checks.append(
                    Check(
                        f"the first stops cleanly ({ctx.target.stop})",
                        stop.exit_code in ctx.target.stop_exit_codes and not stop.forced,
                        f"exit code {stop.exit_code} in {stop.seconds:.2f} s",
                    )
                )
            again, check = restart_at_once(ctx, port)
            checks.append(check)
            if again is not None:
                restarted = LiveServer(ctx.target, ctx.rundir)
                restarted.run = again
                runs.append(run(ctx, plan, "restarted-serving", server=restarted))
                restarted.close()
        finally:
            live.close()
        return conclude(self, ctx, t0, runs, checks)


def restart_at_once(ctx: ScenarioContext, port: int) -> tuple[ServerRun | None, Check]:
    """A new instance on the port just freed, without waiting; if TIME_WAIT stops it, say so and start it later."""
    name = "a new instance binds the same port at once"
    try:
        again = ServerRun(ctx.target, ctx.rundir / "restarted", port=port).start(wait_port=False)
    except PortTaken as exc:  # about another program, not about this server
        return None, Check(name, None, str(exc)[:300])
    except TargetError as exc:
        if port_free(ctx.target.host, port) or listening(ctx.target.host, port):
            return None, Check(name, False, str(exc)[:300])
        why = (
            "the port was still in TIME_WAIT from the connections the first instance closed, and the server "
            f"does not set SO_REUSEADDR: {str(exc)[:200]}"
        )
        return None, Check(name, False, why)
    return again, Check(name, True, f"ready {time.monotonic() - again.started_at:.2f} s after the start")


register(PortInUse())
