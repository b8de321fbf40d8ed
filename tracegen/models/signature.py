"""A model's inputs and outputs: names, dtypes, shapes with their dynamic dimensions.

A dimension is an ``int`` when the model fixes it, a ``str`` (its symbolic name, e.g. "batch")
or ``-1`` (anonymous) when it is dynamic, and ``None`` when the model does not say at all (a
TorchScript module or a Python factory: the user's ``--shapes`` or ``--inputs`` then define it).

The batch dimension is axis 0 of every input that has a dynamic axis 0: those inputs grow with
the batch size, the others are fed as they are. A model none of whose inputs has a dynamic axis 0
has a fixed batch, the size of axis 0 of its first input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Dim = int | str | None

# The dtypes a generated or user-given input may have, and what they are called in messages.
INPUT_DTYPES = ("float32", "float16", "int32", "int64", "bool")


def is_dynamic(dim: Dim) -> bool:
    return not (isinstance(dim, int) and dim >= 0)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str | None  # numpy name ("float32", "int64", "bool"); None where the model does not say
    shape: tuple[Dim, ...] | None  # None where the model does not say (even the rank is unknown)

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def batched(self) -> bool:
        """Axis 0 is dynamic: this input grows with the batch size."""
        return bool(self.shape) and is_dynamic(self.shape[0])

    @property
    def is_image(self) -> bool:
        """A float NCHW tensor with 1, 3 or 4 channels: fed by the frame pipeline."""
        s = self.shape
        return (self.dtype in ("float32", "float16") and s is not None and len(s) == 4
                and s[1] in (1, 3, 4) and all(isinstance(d, int) for d in s[1:]))

    def describe(self) -> str:
        dims = "?" if self.shape is None else "x".join(str(d) if not is_dynamic(d) else (d if isinstance(d, str) else "?")
                                                       for d in self.shape)
        return f"{self.name}:{dims}:{self.dtype or '?'}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = ()
    # True when names, dtypes and shapes come from the model (ONNX, torch.export); False when
    # only names (or nothing) are known and --shapes / --inputs must fill in the rest.
    declared: bool = True

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def fixed_batch(self) -> int | None:
        """The batch size of a model whose inputs all have a fixed axis 0 (None: dynamic/unknown)."""
        if not self.declared or not self.inputs or any(t.shape is None for t in self.inputs):
            return None
        if any(t.batched for t in self.inputs):
            return None
        first = self.inputs[0].shape
        return first[0] if first else None

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs],
                "declared": self.declared}


@dataclass(frozen=True)
class InputPlan:
    """The concrete inputs of a run: for each input, its shape at the reference batch (axis 0 of
    batched inputs is replaced by the batch size of each variant), dtype and how it is filled."""

    specs: tuple[TensorSpec, ...]  # every shape fully concrete, at batch ``reference_batch``
    batched: tuple[bool, ...]  # per input: axis 0 follows the batch size
    fill: tuple[str, ...]  # per input: "frames" | "random" | "ones" | "zeros" | "positions" | "tokens" | "user"
    token_high: tuple[int | None, ...] = ()  # exclusive upper bound of generated token ids
    user_arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    fixed_batch: int | None = None  # the only batch the model runs, if it has a fixed one
    origin: str = "model"  # where the shapes came from: "model" | "--shapes" | "--inputs"

    def shape(self, index: int, batch: int) -> tuple[int, ...]:
        s = self.specs[index].shape
        return (batch, *s[1:]) if self.batched[index] else tuple(s)

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        return {t.name: self.shape(i, batch) for i, t in enumerate(self.specs)}

    @property
    def image_inputs(self) -> list[str]:
        return [t.name for t, f in zip(self.specs, self.fill) if f == "frames"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "fixed_batch": self.fixed_batch,
            "inputs": [
                {"name": t.name, "dtype": t.dtype, "shape": list(self.shape(i, 1)),  # at batch 1 where batched
                 "batch_axis": 0 if self.batched[i] else None, "fill": self.fill[i],
                 **({"token_ids_below": self.token_high[i]} if self.token_high and self.token_high[i] else {})}
                for i, t in enumerate(self.specs)
            ],
        }
