"""Fitting a run to its model: which backends can run a model kind, and the batch sizes a model
with a fixed batch dimension can take."""

from __future__ import annotations

import dataclasses

from tracegen.errors import ModelError
from tracegen.models.model import KINDS, TORCH_KINDS, ModelSource


def auto_backend(kind: str, resolved: str) -> str:
    """``--backend auto`` for a model only one backend can run."""
    if kind in TORCH_KINDS:
        return "torch"
    if kind == "engine":
        return "tensorrt"
    return resolved


def check_backend_runs(model: ModelSource, backend: str) -> None:
    able = KINDS.get(model.kind, ())
    if backend not in able:
        what = model.loaded.get("format") or model.kind
        raise ModelError(f"the {backend} backend cannot run {model.spec} ({what})",
                         f"use --backend {' or '.join(able)}" + (", or export the model to ONNX (torch.onnx.export) "
                                                                "for the other backends" if model.kind in TORCH_KINDS else ""))


def fit_fixed_batch(model: ModelSource, config) -> tuple[object, str | None]:
    """A model exported with a fixed batch runs only that batch: the config with its batch sizes
    and idle batch set to it, and the message saying so (None when nothing changed)."""
    plan = model.plan
    fixed = plan.fixed_batch if plan is not None else None
    if not fixed:
        return config, None
    scenarios = config.scenarios
    sizes = set(config.batch_sizes if "batch" in scenarios else ()) | ({config.idle_batch} if "idle" in scenarios else set())
    if sizes <= {fixed}:
        return config, None
    first = plan.specs[0].name
    note = (f"{model.spec} has a fixed batch of {fixed} (axis 0 of input {first!r} is fixed): the batch scenario runs "
            f"batch {fixed} only and the idle scenario batch {fixed}; export it with a dynamic batch dimension to "
            "measure batch scaling")
    return dataclasses.replace(config, batch_sizes=(fixed,), idle_batch=fixed), note
