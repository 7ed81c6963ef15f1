"""sliced-stream: both directions cut into pieces of a few bytes: one recv() is never one message."""

from __future__ import annotations

from harness.plan import SEND, ClientPlan, Op, Plan
from harness.scenario import AnyTarget, ScenarioContext, ScenarioResult, conclude, fault, run
from scenarios.registry import register


class SlicedStream(AnyTarget):
    """Short, long and multibyte messages, some pipelined, through a slicer.

    TCP may deliver any message in pieces; a server whose protocol has no framing (raw ``recv``)
    stores each piece as a row. That is reported as a framing defect (``split``), which it is.
    """

    name = "sliced-stream"
    description = "the stream cut into 1-7 byte pieces both ways: servers that assume one recv() is one message fail"

    def run(self, ctx: ScenarioContext) -> ScenarioResult:
        """Every client sends the same mix through the slicer."""
        t0 = self.begin(ctx)
        steps = fault("slicer", "slicer", size=4, size_jitter=3, delay=0.0003)
        pipelined = ctx.target.protocol == "chat"
        ops = [
            Op(SEND, "corto"),
            Op(SEND, "ñandú 😀 " * 40),
            Op(SEND, "x" * 900),
            Op(SEND, "uno", pipelined=pipelined),
            Op(SEND, "dos", pipelined=pipelined),
            Op(SEND, "tres"),
        ]
        plan = Plan([ClientPlan(list(ops), start=0.01 * i) for i in range(ctx.n(8))], ctx.seed, self.name, steps)
        return conclude(self, ctx, t0, [run(ctx, plan, "sliced")])


register(SlicedStream())
