"""PyTorch on the runner's CUDA stream: ONNX models (normalised, then onnx2torch), torch.export
programs, TorchScript and Python factories; eager or CUDA graph.

Torch works on the primary CUDA context that ``CudaDevice`` retained, and on the device's own
stream (``torch.cuda.ExternalStream``), so the runner's CUDA events and copies bracket exactly the
work torch launches. Host buffers are pycuda page-locked arrays; copies are pycuda async copies,
one per input and per output. The conversion to a module (tracegen.models.torch_convert) needs no
CUDA and is tested on the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tracegen.backends.base import Backend, Bindings, Device, call_all
from tracegen.errors import BackendError, ModelError
from tracegen.models.feed import primary_input
from tracegen.models.shapes import plan_for
from tracegen.optional import require

GRAPH_WARMUP_RUNS = 3  # torch's advice: run a few times on a side stream before capture
_FLOATS = ("float32", "float16")


class TorchBackend(Backend):
    name = "torch"
    device_kind = "cuda"
    launches = ("eager", "graph")
    requires = ("torch", "pycuda.driver")  # onnx2torch only for ONNX models, checked on use
    precisions = ("fp32", "fp16")

    def __init__(self, model, *, precision="fp32", threads=None):
        super().__init__(model, precision=precision, threads=threads)
        self.torch = None
        self.module = None
        self._tm = None
        self._stream = None
        self._prev_stream = None
        self._inference = None
        self._forward = None
        self._outs: list = []
        self._d_in: list = []
        self._graph = None
        self.conversion: dict[str, Any] = {}

    def activate(self, device: Device) -> None:
        if self.model.kind == "engine":
            raise ModelError(f"{self.model.spec} is a TensorRT engine; the torch backend runs ONNX and PyTorch models",
                             "use --backend tensorrt, or give the ONNX model")
        torch = self.torch = require("torch")
        if self.model.kind == "onnx":
            require("onnx2torch")
        from tracegen.models.torch_convert import to_device, torch_model

        self.device = device
        if not torch.cuda.is_available():
            raise BackendError("PyTorch sees no CUDA GPU", "install a CUDA build of torch, or use --backend onnxruntime")
        self.plan = plan_for(self.model)
        tm = torch_model(self.model)
        self.conversion = dict(tm.info)
        self._tm = tm = to_device(tm, "cuda", self.precision == "fp16")
        self.module = tm.module
        # inference_mode skips autograd's version counters and view tracking: in launch-bound
        # eager runs that is a measurable part of every op's launch cost.
        self._inference = torch.inference_mode()
        self._inference.__enter__()
        self._stream = torch.cuda.ExternalStream(device.stream_handle)
        self._prev_stream = torch.cuda.current_stream()
        torch.cuda.set_stream(self._stream)

    def _io_dtype(self, dtype: str) -> str:
        """Float inputs travel in the compute precision (no cast kernels per iteration):
        preprocessing writes fp16 straight into the page-locked buffer for an fp16 model.
        Integer and bool inputs keep their type."""
        return "float16" if self.precision == "fp16" and dtype in _FLOATS else dtype

    @property
    def io_dtype(self):
        return np.float16 if self.precision == "fp16" else np.float32

    def prepare(self, batch: int, launch: str = "eager") -> Bindings:
        from tracegen.models.torch_convert import make_call

        torch, dev, plan = self.torch, self.device, self.plan
        self.release()
        names = [t.name for t in plan.specs]
        dtypes = [self._io_dtype(t.dtype) for t in plan.specs]
        shapes = [plan.shape(i, batch) for i in range(len(names))]
        try:
            d_in = [torch.zeros(s, dtype=getattr(torch, d if d != "bool" else "bool"), device="cuda")
                    for s, d in zip(shapes, dtypes)]
            call = make_call(self._tm, names, d_in)
            outs = [o.contiguous() for o in call()]
            dev.synchronize()
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise BackendError(f"batch {batch} of {self.model.spec} does not fit in GPU memory",
                               "use smaller --batch-sizes or --precision fp16") from None
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            raise ModelError(f"{self.model.spec} failed at batch {batch} with inputs "
                             f"{', '.join(f'{n}:{list(s)}:{d}' for n, s, d in zip(names, shapes, dtypes))}: "
                             f"{str(exc).strip().splitlines()[0][:200]}",
                             "check --shapes (names, shapes and dtypes the model's forward() takes)") from None
        if not outs:
            raise ModelError(f"{self.model.spec} returned no tensor", "return the outputs as tensors")
        inputs = {n: dev.host_buffer(s, np.dtype(d)) for n, s, d in zip(names, shapes, dtypes)}
        out_names = [t.name for t in self.model.signature.outputs] if len(self.model.signature.outputs) == len(outs) \
            else [f"output{i}" for i in range(len(outs))]
        outputs = {n: dev.host_buffer(tuple(o.shape), np.dtype(str(o.dtype).replace("torch.", "")))
                   for n, o in zip(out_names, outs)}
        self._d_in, self._outs = d_in, outs

        def forward():
            self._outs = [o.contiguous() for o in call()]

        if launch == "graph":
            self._capture(forward)
            enqueue = self._graph.replay
        else:
            enqueue = forward
        self._forward = enqueue
        copies_in = [dev.copy_to_device(t.data_ptr(), inputs[n]) for n, t in zip(names, d_in)]
        copies_out = [dev.copy_to_host(outputs[n], (lambda k=k: self._outs[k].data_ptr())) for k, n in enumerate(out_names)]
        image = primary_input(plan)  # the input the pipeline's preprocess writes (host or device)
        return Bindings(batch=batch, host_input=inputs[names[image]], host_output=outputs[out_names[0]],
                        copy_in=call_all(copies_in), copy_out=call_all(copies_out), inputs=inputs, outputs=outputs,
                        device_input=d_in[image].data_ptr(), device_output=lambda: self._outs[0].data_ptr())

    def _capture(self, forward) -> None:
        torch = self.torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP_RUNS):
                forward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                forward()
        except RuntimeError as exc:
            raise BackendError(f"{self.model.spec} cannot be captured in a CUDA graph "
                               f"({str(exc).strip().splitlines()[0][:160]})", "use --launch eager for this model") from None
        self.device.synchronize()
        self._graph = graph

    def enqueue(self) -> None:
        self._forward()

    def release(self) -> None:
        if self.device is not None and getattr(self.device, "stream", None) is not None:
            self.device.synchronize()
        self._graph = None
        self._forward = None
        self._outs, self._d_in = [], []

    def deactivate(self) -> None:
        torch = self.torch
        if torch is None:
            return
        try:
            self.release()
        finally:
            self.module = self._tm = None
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
            from importlib.metadata import PackageNotFoundError, version

            for pkg in ("onnx2torch", "onnxscript", "onnx"):
                try:
                    versions[pkg] = version(pkg)
                except PackageNotFoundError:
                    pass
            info["versions"] = versions
        if self.conversion:
            info["conversion"] = self.conversion
        return info
