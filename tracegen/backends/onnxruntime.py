"""onnxruntime on the CPU: the backend that runs on any machine.

Every input and output is bound once per batch size (``io_binding`` onto fixed host buffers), so
the timed loop allocates nothing. A model with external data is loaded from its path, where
onnxruntime finds the ``.onnx.data`` file beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tracegen.backends.base import Backend, Bindings, Device
from tracegen.errors import BackendError, ModelError
from tracegen.models.feed import primary_input
from tracegen.models.shapes import plan_for
from tracegen.optional import require

_NP_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    device_kind = "host"
    launches = ("eager",)
    requires = ("onnxruntime",)
    precisions = ("fp32",)

    def __init__(self, model, *, precision="fp32", threads=None):
        super().__init__(model, precision=precision, threads=threads)
        self._ort = None
        self._session = None
        self._binding = None
        self._bindings: Bindings | None = None

    def activate(self, device: Device) -> None:
        if self.precision not in self.precisions:
            raise BackendError(
                f"the onnxruntime backend runs fp32 only, not {self.precision}",
                "use --precision fp32, or a GPU backend (torch, tensorrt) for fp16",
            )
        if self.model.kind == "engine":
            raise ModelError(
                f"{self.model.spec} is a serialized TensorRT engine, which onnxruntime cannot run",
                "use --backend tensorrt, or give the ONNX model",
            )
        if self.model.kind != "onnx":
            raise ModelError(f"{self.model.spec} is a PyTorch model ({self.model.loaded.get('format')}), which onnxruntime "
                             "cannot run", "use --backend torch, or export it to ONNX with torch.onnx.export")
        self.device = device
        ort = self._ort = require("onnxruntime")
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = self.model.onnx_bytes if self.model.onnx_bytes is not None else self.model.path
        try:
            self._session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own hierarchy
            raise ModelError(
                f"onnxruntime cannot load {self.model.spec}: {str(exc).splitlines()[0][:300]}",
                "check the model with `python -m onnx.checker`, or re-export it",
            ) from None
        self.plan = plan_for(self.model)

    def prepare(self, batch: int, launch: str = "eager") -> Bindings:
        if launch != "eager":
            raise BackendError(f"the onnxruntime backend has no {launch!r} launch mode", "use --launch eager")
        self.release()
        sess, plan = self._session, self.plan
        ins = {i.name: i for i in sess.get_inputs()}
        inputs: dict[str, np.ndarray] = {}
        for i, spec in enumerate(plan.specs):
            dtype = _NP_TYPES.get(ins[spec.name].type, np.dtype(spec.dtype)) if spec.name in ins else np.dtype(spec.dtype)
            inputs[spec.name] = self.device.host_buffer(plan.shape(i, batch), dtype)
        # Run once to learn the output shapes for this batch, then bind buffers of those shapes
        # so every timed run writes into the same memory (no allocation in the loop).
        outs = sess.get_outputs()
        try:
            probe = sess.run([o.name for o in outs], inputs)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"onnxruntime cannot run {self.model.spec} at batch {batch} with inputs "
                             f"{', '.join(f'{k}:{v.shape}' for k, v in inputs.items())}: {str(exc).splitlines()[0][:200]}",
                             "check --shapes against the model's inputs") from None
        outputs = {o.name: self.device.host_buffer(p.shape, p.dtype) for o, p in zip(outs, probe)}
        binding = sess.io_binding()
        for name, buf in inputs.items():
            binding.bind_input(name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
        for name, buf in outputs.items():
            binding.bind_output(name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
        self._binding = binding
        first_in = inputs[plan.specs[primary_input(plan)].name]  # the image the pipeline refills
        first_out = next(iter(outputs.values()))
        self._bindings = Bindings(batch=batch, host_input=first_in, host_output=first_out,
                                  inputs=inputs, outputs=outputs)
        return self._bindings

    def enqueue(self) -> None:
        self._session.run_with_iobinding(self._binding)

    def release(self) -> None:
        self._binding = None
        self._bindings = None

    def deactivate(self) -> None:
        self.release()
        self._session = None

    def info(self) -> dict[str, Any]:
        info = super().info()
        if self._ort is not None:
            info["versions"] = {"onnxruntime": self._ort.__version__}
            info["providers"] = ["CPUExecutionProvider"]
        info["intra_op_threads"] = self.threads or "onnxruntime default (one per physical core)"
        return info
