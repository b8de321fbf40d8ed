"""The steps of one full-pipeline iteration, for each place pre/postprocessing can run.

The runner prepends the ``idle`` step and times every step; this module decides what each step
does and whether it has device work (then the runner brackets it with CUDA events).

    host pre/post (CPU backend, ``--preprocess host``):
        preprocess (host resize + normalise into the input buffer) -> h2d -> infer -> d2h -> sync
        -> postprocess (host softmax + top-k)
    device pre/post (GPU default):
        h2d (host copies the raw uint8 frame into page-locked memory, then the raw upload)
        -> preprocess (device resize + normalise into the model's input) -> infer
        -> postprocess (device softmax + top-k) -> d2h (the k indices and probabilities) -> sync
    user steps (``--preprocess mymod:fn``): the user's function replaces the host step.

With device preprocessing the host part of ``h2d`` is the copy into page-locked memory and the
host part of ``preprocess`` and ``postprocess`` is the kernel launch; their GPU times are the
kernels'. CPU backends have no copies and no sync, so those steps are absent there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from tracegen.errors import ConfigError
from tracegen.prepost.host import TOP_K, HostPreprocess, softmax_top_k
from tracegen.prepost.user import load_step, spec_of


@dataclass(frozen=True)
class PipelineStep:
    name: str
    work: Callable[[], Any]
    on_device: bool  # enqueues device work: time it with device events too


@dataclass
class Pipeline:
    steps: list[PipelineStep]
    _close: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Free what the pipeline allocated for this batch (device buffers)."""
        for fn in self._close:
            fn()
        self._close.clear()


class FrameCycle:
    """The raw frames of each iteration: ``batch`` views of the source frames, cycled so that
    consecutive iterations see different frames; nothing is copied or allocated per call."""

    def __init__(self, frames: np.ndarray, batch: int):
        n = len(frames)
        self._lists = [[frames[(p + j) % n] for j in range(batch)] for p in range(n)]
        self._n, self._batch, self._at = n, batch, 0

    def next(self) -> list[np.ndarray]:
        out = self._lists[self._at]
        self._at = (self._at + self._batch) % self._n
        return out


def resolve_modes(preprocess, postprocess, gpu: bool, device_ok: bool = True) -> tuple[Any, Any]:
    """Defaults (device on a GPU where the kernels can run, i.e. CuPy imports; else host) and the
    CPU's refusal of device steps. Asking for ``device`` explicitly without CuPy is an error."""
    default = "device" if gpu and device_ok else "host"
    pre = preprocess if preprocess is not None else default
    post = postprocess if postprocess is not None else default
    if gpu and not device_ok and "device" in (pre, post):
        from tracegen.optional import require

        require("cupy")  # raises with the install hint
    if not gpu:
        for option, value in (("preprocess", pre), ("postprocess", post)):
            if value == "device":
                raise ConfigError(f"--{option} device needs a GPU backend", f"use --{option} host on the CPU")
    return pre, post


def load_user_steps(pre, post) -> tuple[Any, Any]:
    """Import the user's functions (once per run, before anything is written)."""
    pre = load_step("preprocess", pre) if pre not in ("host", "device") else pre
    post = load_step("postprocess", post) if post not in ("host", "device") else post
    return pre, post


def describe(pre, post) -> dict[str, str]:
    """The manifest's words for where pre/postprocessing ran."""
    words = {
        "host": {"preprocess": "host: bilinear resize + normalise into the input buffer",
                 "postprocess": f"host: softmax + top-{TOP_K} of the output"},
        "device": {"preprocess": "device: raw uint8 frame uploaded, bilinear resize + normalise by a CUDA kernel",
                   "postprocess": f"device: softmax + top-{TOP_K} by a CUDA kernel, only the result copied back"},
    }
    out = {}
    for option, value in (("preprocess", pre), ("postprocess", post)):
        out[option] = words[value][option] if isinstance(value, str) and value in words else f"user: {spec_of(value)}"
    return out


def build_pipeline(*, device, bindings, enqueue: Callable[[], None], frames: np.ndarray, pre, post,
                   host_library: str = "auto") -> Pipeline:
    """The steps after ``idle`` of a full-pipeline iteration. ``pre``/``post`` are "host",
    "device" or the user's function (``load_user_steps``); ``frames`` are the raw source frames."""
    gpu = device.kind != "host"
    cycle = FrameCycle(frames, bindings.batch)
    host_in, host_out = bindings.host_input, bindings.host_output
    steps: list[PipelineStep] = []
    pipe = Pipeline(steps)
    ops = None
    if "device" in (pre, post):
        from tracegen.prepost.device import DevicePrepost

        ops = DevicePrepost(device, tuple(frames.shape[1:]), host_in.shape, host_in.dtype, host_out.shape,
                            host_out.dtype, device_input=bindings.device_input if pre == "device" else None,
                            device_output=bindings.device_output if post == "device" else None)
        pipe._close.append(ops.close)
        if (pre == "device" and ops.preprocess is None) or (post == "device" and ops.postprocess is None):
            pipe.close()
            raise ConfigError("this backend does not expose its device buffers for device pre/postprocessing",
                              "use --preprocess host --postprocess host")
    if pre == "device":
        stage, upload = ops.stage, ops.upload

        def h2d() -> None:
            stage(cycle.next())
            upload()
        steps += [PipelineStep("h2d", h2d, True), PipelineStep("preprocess", ops.preprocess, True)]
    else:
        pre_fn = HostPreprocess(*host_in.shape[1:], library=host_library) if pre == "host" else pre
        steps.append(PipelineStep("preprocess", lambda: pre_fn(cycle.next(), host_in), False))
        if bindings.copy_in is not None:
            steps.append(PipelineStep("h2d", bindings.copy_in, True))
    steps.append(PipelineStep("infer", enqueue, gpu))
    if post == "device":
        steps += [PipelineStep("postprocess", ops.postprocess, True), PipelineStep("d2h", ops.download, True)]
    elif bindings.copy_out is not None:
        steps.append(PipelineStep("d2h", bindings.copy_out, True))
    if gpu:
        steps.append(PipelineStep("sync", device.synchronize, False))
    if post != "device":
        post_fn = softmax_top_k if post == "host" else post
        steps.append(PipelineStep("postprocess", lambda: post_fn(host_out), False))
    return pipe


def engine_only(*, device, enqueue: Callable[[], None]) -> Pipeline:
    """``--pipeline infer``: the engine alone (like trtexec without transfers)."""
    steps = [PipelineStep("infer", enqueue, device.kind != "host")]
    if device.kind != "host":
        steps.append(PipelineStep("sync", device.synchronize, False))
    return Pipeline(steps)


def step_order(pre, post, gpu: bool) -> list[str]:
    """The steps of a full-pipeline iteration, in the order they run (for the manifest)."""
    if not gpu:
        return ["idle", "preprocess", "infer", "postprocess"]
    head = ["h2d", "preprocess"] if pre == "device" else ["preprocess", "h2d"]
    tail = ["postprocess", "d2h", "sync"] if post == "device" else ["d2h", "sync", "postprocess"]
    return ["idle", *head, "infer", *tail]
