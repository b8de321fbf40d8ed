"""The steps of one iteration of a variant, wired to its device, backend and buffers."""

from __future__ import annotations

from typing import Callable

from tracegen.backends.base import Backend, Bindings, Device
from tracegen.run.inputs import FrameSource, top_k
from tracegen.run.loop import Step
from tracegen.run.plan import Variant


def plan_steps(variant: Variant, device: Device, backend: Backend, bindings: Bindings,
               frames: FrameSource, pacer: Callable[[], None]) -> list[Step]:
    full = variant.pipeline == "full"
    gpu = device.kind != "host"
    steps = [Step("idle", pacer, None)]
    if full:
        steps.append(Step("preprocess", lambda: frames.fill(bindings.host_input), None))
        if bindings.copy_in is not None:
            steps.append(Step("h2d", bindings.copy_in, device.timer()))
    steps.append(Step("infer", backend.enqueue, device.timer() if gpu else None))
    if full and bindings.copy_out is not None:
        steps.append(Step("d2h", bindings.copy_out, device.timer()))
    if gpu:
        steps.append(Step("sync", device.synchronize, None))
    if full:
        steps.append(Step("postprocess", lambda: top_k(bindings.host_output), None))
    return steps
