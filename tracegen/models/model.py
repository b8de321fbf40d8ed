"""ModelSource: a model the runner was asked to benchmark, with what was loaded and how."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracegen.models.signature import InputPlan, Signature, TensorSpec

# kind -> the backends that can run it
KINDS = {
    "onnx": ("onnxruntime", "torch", "tensorrt"),
    "engine": ("tensorrt",),
    "torch-export": ("torch",),
    "torchscript": ("torch",),
    "torch-factory": ("torch",),
}
TORCH_KINDS = ("torch-export", "torchscript", "torch-factory")


@dataclass(frozen=True)
class ModelSource:
    spec: str  # as given: "builtin:tiny", "/path/model.onnx", "torchvision.models:resnet50"
    kind: str  # a key of KINDS
    path: str | None  # file path; None for built-ins held in memory and for factories
    sha256: str | None  # of the model file(s); None for a factory (code, not a file)
    signature: Signature
    params: int | None = None
    flops_per_image: int | None = None
    onnx_bytes: bytes | None = field(default=None, repr=False, compare=False)  # ONNX without external data
    loaded: dict[str, Any] = field(default_factory=dict)  # how it was loaded (format, files, opset, producer)
    token_high: dict[str, int] = field(default_factory=dict)  # input -> vocabulary size read off the model
    plan: InputPlan | None = None  # the concrete inputs, once --shapes / --inputs were applied
    handle: Any = field(default=None, repr=False, compare=False)  # a loaded torch object, if any

    # -- compatibility with the single-image view (first input, first output) ------------------
    @property
    def _first_in(self) -> TensorSpec | None:
        if self.plan is not None:
            return self.plan.specs[0]
        return self.signature.inputs[0] if self.signature.inputs else None

    @property
    def input_name(self) -> str:
        return self._first_in.name if self._first_in else ""

    @property
    def input_shape(self) -> tuple:
        first = self.signature.inputs[0] if self.signature.inputs else None
        return tuple(first.shape) if first is not None and first.shape is not None else ()

    @property
    def input_dtype(self) -> str:
        return (self._first_in.dtype or "") if self._first_in else ""

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of the first input without its batch dimension (C, H, W for an image model)."""
        if self.plan is not None:
            return tuple(self.plan.shape(0, 1)[1:])
        return tuple(int(d) for d in self.input_shape[1:])

    @property
    def output_name(self) -> str:
        return self.signature.outputs[0].name if self.signature.outputs else ""

    @property
    def output_shape(self) -> tuple:
        first = self.signature.outputs[0] if self.signature.outputs else None
        return tuple(first.shape) if first is not None and first.shape is not None else ()

    @property
    def output_dtype(self) -> str:
        return (self.signature.outputs[0].dtype or "") if self.signature.outputs else ""

    def with_plan(self, plan: InputPlan) -> "ModelSource":
        from dataclasses import replace

        return replace(self, plan=plan)

    def manifest(self) -> dict[str, Any]:
        first_out = self.signature.outputs[0] if self.signature.outputs else None
        first_in = self._first_in
        return {
            "spec": self.spec,
            "kind": self.kind,
            "path": self.path,
            "sha256": self.sha256,
            "loaded": self.loaded,
            # The first input and output, as earlier manifests had them.
            "input": first_in.to_dict() if first_in else None,
            "output": first_out.to_dict() if first_out else None,
            "signature": self.signature.to_dict(),
            "inputs": self.plan.to_dict() if self.plan is not None else None,
            "params": self.params,
            "flops_per_image": self.flops_per_image,
        }
