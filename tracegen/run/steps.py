"""The steps of one iteration of a variant: the idle gap, then the pipeline's steps
(``tracegen.prepost.pipeline``), those with device work timed with device events."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tracegen.backends.base import Backend, Bindings, Device
from tracegen.prepost.pipeline import Pipeline, build_pipeline, engine_only
from tracegen.run.loop import Step
from tracegen.run.plan import Variant


def plan_steps(variant: Variant, device: Device, backend: Backend, bindings: Bindings, frames: np.ndarray,
               pacer: Callable[[], None], pre: Any, post: Any) -> tuple[list[Step], Pipeline]:
    if variant.pipeline == "full":
        pipe = build_pipeline(device=device, bindings=bindings, enqueue=backend.enqueue, frames=frames, pre=pre, post=post)
    else:
        pipe = engine_only(device=device, enqueue=backend.enqueue)
    gpu = device.kind != "host"
    steps = [Step("idle", pacer, None)]
    steps += [Step(s.name, s.work, device.timer() if gpu and s.on_device else None) for s in pipe.steps]
    return steps, pipe
