"""Filling a prepared batch's input buffers: the frame pipeline for image inputs, values that are
valid for their type for the others (token ids below the vocabulary size, masks of ones, zero
token types, positions 0..n-1), or the user's own arrays.

Only image inputs are refilled every iteration (the ``preprocess`` step: decode-resize-normalise
of a frame, as a video pipeline does); every other input is written once when the batch is
prepared and then copied to the device every iteration like the images.
"""

from __future__ import annotations

import numpy as np

from tracegen.run.inputs import FrameSource
from tracegen.models.signature import InputPlan

# Token ids are drawn below this bound when the vocabulary size could not be read off the model.
DEFAULT_TOKEN_HIGH = 100


def generate(plan: InputPlan, index: int, batch: int, seed: int = 0) -> np.ndarray:
    """The values of input ``index`` at ``batch`` (for every fill but "frames", which the
    FrameSource writes each iteration; those are returned as zeros)."""
    spec, fill = plan.specs[index], plan.fill[index]
    shape, dtype = plan.shape(index, batch), np.dtype(spec.dtype)
    rng = np.random.default_rng(seed + index)
    if fill == "user":
        arr = plan.user_arrays[spec.name]
        if plan.batched[index] and arr.shape[0] != batch:
            # Other batch sizes repeat the user's rows cyclically along axis 0.
            arr = np.take(arr, np.arange(batch) % arr.shape[0], axis=0)
        return np.ascontiguousarray(arr, dtype=dtype)
    if fill == "ones":
        return np.ones(shape, dtype)
    if fill in ("zeros", "frames"):
        return np.zeros(shape, dtype)
    if fill == "positions":
        return np.broadcast_to(np.arange(shape[-1], dtype=dtype), shape).copy() if shape else np.zeros(shape, dtype)
    if fill == "tokens":
        high = (plan.token_high[index] if plan.token_high else None) or DEFAULT_TOKEN_HIGH
        return rng.integers(0, high, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


class InputFeeder:
    """Writes every input of one prepared batch into its host buffer; ``fill()`` is the
    per-iteration preprocess step (image inputs only)."""

    def __init__(self, plan: InputPlan, buffers: dict[str, np.ndarray], batch: int, seed: int = 0):
        self.frames: list[tuple[FrameSource, np.ndarray]] = []
        self.image: str | None = None  # the input the pipeline's preprocess step refills
        for i, spec in enumerate(plan.specs):
            buf = buffers[spec.name]
            if plan.fill[i] == "frames":
                self.frames.append((FrameSource(tuple(buf.shape[1:]), seed=seed + i), buf))
                self.image = self.image or spec.name
            else:
                buf[...] = generate(plan, i, batch, seed)
        self.fill()  # images hold a real frame from the start (also for --pipeline infer)

    def fill(self) -> None:
        for source, buf in self.frames:
            source.fill(buf)


def feeder_for(plan: InputPlan | None, bindings, batch: int, seed: int = 0) -> InputFeeder:
    """The feeder of one prepared batch. Without a plan (a TensorRT engine, whose inputs only the
    backend knows) the plan is read off the bound buffers."""
    buffers = dict(bindings.inputs) if bindings.inputs else {"input": bindings.host_input}
    if plan is None or set(buffers) != {t.name for t in plan.specs}:
        plan = plan_from_buffers(buffers)
    return InputFeeder(plan, buffers, batch, seed)


def plan_from_buffers(buffers: dict[str, np.ndarray]) -> InputPlan:
    from tracegen.models.shapes import plan_inputs
    from tracegen.models.signature import Signature, TensorSpec

    sig = Signature(tuple(TensorSpec(n, b.dtype.name, ("batch", *b.shape[1:])) for n, b in buffers.items()))
    return plan_inputs(sig)


def inputs_prepared_once(frames, out) -> None:
    """The preprocess step of a model without an image input: its inputs were written once
    when the batch was prepared (token ids, masks, the user's arrays); only copies remain."""


def frames_for(feeder: InputFeeder, bindings, pre, seed: int = 0):
    """The raw source frames and the preprocess step for the pipeline: the frame pipeline for a
    model with an image input (which the backend bound as ``host_input``), else a step with
    nothing to do (unless the user brought their own)."""
    if feeder.image is not None:
        return FrameSource(tuple(bindings.inputs[feeder.image].shape[1:]), seed=seed).frames, pre
    return FrameSource((3, 8, 8), seed=seed).frames, (inputs_prepared_once if pre in ("host", "device") else pre)


def primary_input(plan: InputPlan) -> int:
    """Index of the input bound as ``host_input``: the first image input, else the first."""
    return next((i for i, f in enumerate(plan.fill) if f == "frames"), 0)
