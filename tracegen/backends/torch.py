"""PyTorch on the runner's CUDA stream: ONNX models through onnx2torch, eager or CUDA graph.

Torch works on the primary CUDA context that ``CudaDevice`` retained, and on the device's own
stream (``torch.cuda.ExternalStream``), so the runner's CUDA events and copies bracket exactly the
work torch launches. Host buffers are pycuda page-locked arrays; copies are pycuda async copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tracegen.backends.base import Backend, Bindings, Device
from tracegen.errors import BackendError, ModelError
from tracegen.optional import require

GRAPH_WARMUP_RUNS = 3  # torch's advice: run a few times on a side stream before capture


class TorchBackend(Backend):
    name = "torch"
    device_kind = "cuda"
    launches = ("eager", "graph")
    requires = ("torch", "onnx2torch", "pycuda.driver")
    precisions = ("fp32", "fp16")

    def __init__(self, model, *, precision="fp32", threads=None):
        super().__init__(model, precision=precision, threads=threads)
        self.torch = None
        self.module = None
        self._stream = None
        self._prev_stream = None
        self._inference = None
        self._forward = None
        self._out = None
        self._graph = None

    def activate(self, device: Device) -> None:
        if self.model.kind != "onnx":
            raise ModelError(f"{self.model.spec} is a TensorRT engine; the torch backend runs ONNX models",
                             "use --backend tensorrt, or give the ONNX model")
        torch = self.torch = require("torch")
        onnx2torch = require("onnx2torch")
        import onnx

        self.device = device
        if not torch.cuda.is_available():
            raise BackendError("PyTorch sees no CUDA GPU", "install a CUDA build of torch, or use --backend onnxruntime")
        try:
            proto = onnx.load_from_string(self.model.onnx_bytes)
            module = onnx2torch.convert(proto).eval().to("cuda")
        except Exception as exc:  # noqa: BLE001 - onnx2torch raises plain exceptions per op
            raise ModelError(f"onnx2torch cannot convert {self.model.spec}: {str(exc).splitlines()[0]}",
                             "use --backend onnxruntime or tensorrt for this model") from None
        if self.precision == "fp16":
            module = module.half()
        self.module = module
        # inference_mode skips autograd's version counters and view tracking: in launch-bound
        # eager runs that is a measurable part of every op's launch cost.
        self._inference = torch.inference_mode()
        self._inference.__enter__()
        self._stream = torch.cuda.ExternalStream(device.stream_handle)
        self._prev_stream = torch.cuda.current_stream()
        torch.cuda.set_stream(self._stream)

    def _make_forward(self, d_in):
        module = self.module
        return lambda: module(d_in)

    @property
    def io_dtype(self):
        """Inputs and outputs travel in the compute precision (no cast kernels per iteration):
        preprocessing writes fp16 straight into the page-locked buffer for an fp16 model."""
        return np.float16 if self.precision == "fp16" else np.float32

    def prepare(self, batch: int, launch: str = "eager") -> Bindings:
        torch, dev = self.torch, self.device
        self.release()
        shape = (batch, *self.model.image_shape)
        try:
            d_in = torch.zeros(shape, dtype=torch.float16 if self.precision == "fp16" else torch.float32, device="cuda")
            forward = self._make_forward(d_in)
            out = forward()
            dev.synchronize()
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise BackendError(f"batch {batch} of {self.model.spec} does not fit in GPU memory",
                               "use smaller --batch-sizes or --precision fp16") from None
        host_input = dev.host_buffer(shape, self.io_dtype)
        host_output = dev.host_buffer(tuple(out.shape), np.dtype(str(out.dtype).replace("torch.", "")))
        self._d_in, self._out = d_in, out
        if launch == "graph":
            self._capture(forward)
            enqueue = self._graph.replay
        else:
            def enqueue():
                self._out = forward()
        self._forward = enqueue
        return Bindings(batch=batch, host_input=host_input, host_output=host_output,
                        copy_in=dev.copy_to_device(d_in.data_ptr(), host_input),
                        copy_out=dev.copy_to_host(host_output, lambda: self._out.data_ptr()),
                        device_input=d_in.data_ptr(), device_output=lambda: self._out.data_ptr())

    def _capture(self, forward) -> None:
        torch = self.torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP_RUNS):
                forward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._out = forward()
        self.device.synchronize()
        self._graph = graph

    def enqueue(self) -> None:
        self._forward()

    def release(self) -> None:
        if self.device is not None and self.device.stream is not None:
            self.device.synchronize()
        self._graph = None
        self._forward = None
        self._out = self._d_in = None

    def deactivate(self) -> None:
        torch = self.torch
        if torch is None:
            return
        try:
            self.release()
        finally:
            self.module = None
            if self._prev_stream is not None:
                torch.cuda.set_stream(self._prev_stream)
            if self._inference is not None:
                self._inference.__exit__(None, None, None)
                self._inference = None
            torch.cuda.empty_cache()
            self._stream = None

    def info(self) -> dict[str, Any]:
        info = super().info()
        torch = self.torch
        if torch is not None:
            versions = {"torch": torch.__version__, "cuda": torch.version.cuda,
                        "cudnn": str(torch.backends.cudnn.version())}
            try:
                from importlib.metadata import version

                versions["onnx2torch"] = version("onnx2torch")
            except Exception:  # noqa: BLE001
                pass
            info["versions"] = versions
        return info
