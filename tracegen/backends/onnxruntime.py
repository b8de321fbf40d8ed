"""onnxruntime on the CPU: the backend that runs on any machine."""

from __future__ import annotations

from typing import Any

import numpy as np

from tracegen.backends.base import Backend, Bindings, Device
from tracegen.errors import BackendError, ModelError
from tracegen.optional import require

_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


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
        if self.model.kind != "onnx":
            raise ModelError(
                f"{self.model.spec} is a serialized TensorRT engine, which onnxruntime cannot run",
                "use --backend tensorrt, or give the ONNX model",
            )
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
                f"onnxruntime cannot load {self.model.spec}: {str(exc).splitlines()[0]}",
                "check the model with `python -m onnx.checker`, or re-export it",
            ) from None

    def prepare(self, batch: int, launch: str = "eager") -> Bindings:
        if launch != "eager":
            raise BackendError(f"the onnxruntime backend has no {launch!r} launch mode", "use --launch eager")
        self.release()
        sess = self._session
        inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
        in_shape = (batch, *self.model.image_shape)
        in_type = _NP_TYPES.get(inp.type, np.float32)
        out_type = _NP_TYPES.get(out.type, np.float32)
        host_input = self.device.host_buffer(in_shape, in_type)
        # Run once to learn the output shape for this batch, then bind a buffer of that shape
        # so every timed run writes into the same memory (no allocation in the loop).
        probe = sess.run([out.name], {inp.name: host_input})[0]
        host_output = self.device.host_buffer(probe.shape, out_type)
        binding = sess.io_binding()
        binding.bind_input(inp.name, "cpu", 0, in_type, list(in_shape), host_input.ctypes.data)
        binding.bind_output(out.name, "cpu", 0, out_type, list(probe.shape), host_output.ctypes.data)
        self._binding = binding
        self._bindings = Bindings(batch=batch, host_input=host_input, host_output=host_output)
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
