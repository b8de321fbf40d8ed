"""TensorRT 10/11 on the runner's CUDA stream (pycuda device layer): the running part.

The engine comes from ``tensorrt_loader`` (built from ONNX with a profile over the run's batch
sizes and cached, or a serialized engine file). Tensors are bound by name
(``set_tensor_address``), inference is ``execute_async_v3`` on the device's stream, and
``--launch graph`` replays a CUDA graph captured from one ``execute_async_v3``.

TensorRT could not run on the GPU this project was developed on (see the README): this module
is written against the documented Python API and tested with a stand-in ``tensorrt`` module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tracegen.backends.base import Backend, Bindings, Device, call_all
from tracegen.backends.tensorrt_loader import EngineLoader
from tracegen.models.feed import primary_input
from tracegen.errors import BackendError, ModelError
from tracegen.optional import require


class TensorRTBackend(Backend):
    name = "tensorrt"
    device_kind = "cuda"
    launches = ("eager", "graph")
    requires = ("tensorrt", "pycuda.driver")
    precisions = ("fp32", "fp16")

    def __init__(self, model, *, precision="fp32", threads=None):
        super().__init__(model, precision=precision, threads=threads)
        self.trt = None
        self.batches: list[int] = [1]
        self.engine = None
        self.context = None
        self._buffers: list[Any] = []
        self._enqueue = None
        self._graph = None
        self.build_info: dict[str, Any] = {}

    def expect_batches(self, batch_sizes: list[int]) -> None:
        self.batches = sorted(set(batch_sizes)) or [1]

    # -- engine ---------------------------------------------------------------------------------
    def activate(self, device: Device) -> None:
        trt = self.trt = require("tensorrt")
        self.device = device
        self._logger = trt.Logger(trt.Logger.WARNING)
        loader = EngineLoader(trt, self._logger, self.model, self.precision, self.batches, self._gpu_identity())
        try:
            data = loader()
        finally:
            self.build_info = loader.build_info
        runtime = self._runtime = trt.Runtime(self._logger)
        try:
            engine = runtime.deserialize_cuda_engine(data)
        except Exception as exc:  # noqa: BLE001 - TensorRT raises RuntimeError or returns None
            engine, why = None, str(exc).splitlines()[0]
        else:
            why = "TensorRT returned no engine"
        if engine is None:
            raise BackendError(
                f"the TensorRT engine for {self.model.spec} cannot run here ({why}); it was built for another GPU, "
                f"TensorRT version, or does not fit in GPU memory",
                f"rebuild it with this TensorRT ({trt.__version__}) on this GPU, or pass the ONNX model",
            )
        self.engine = engine
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendError("TensorRT could not create an execution context (GPU memory?)",
                               "use smaller --batch-sizes, or free GPU memory")
        self._io = self._tensors()

    def _gpu_identity(self) -> tuple[str, str]:
        info = self.device.info() if hasattr(self.device, "info") else {}
        return str(info.get("name", "unknown-gpu")), str(info.get("compute_capability", "?"))

    def _tensors(self) -> dict[str, list[str]]:
        trt, engine = self.trt, self.engine
        io: dict[str, list[str]] = {"inputs": [], "outputs": []}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            kind = "inputs" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "outputs"
            io[kind].append(name)
        if not io["inputs"]:
            raise ModelError(f"{self.model.spec} has no input tensor", "export the model with its inputs")
        return io

    # -- per batch -------------------------------------------------------------------------------
    def prepare(self, batch: int, launch: str = "eager") -> Bindings:
        trt, engine, ctx, dev = self.trt, self.engine, self.context, self.device
        self.release()
        plan = self.model.plan
        planned = {t.name: i for i, t in enumerate(plan.specs)} if plan is not None else {}
        inputs: dict[str, np.ndarray] = {}
        d_ins = []
        for name in self._io["inputs"]:
            lo, _, hi = (tuple(s) for s in engine.get_tensor_profile_shape(name, 0))
            follows_batch = plan.batched[planned[name]] if name in planned else True
            if follows_batch and not lo[0] <= batch <= hi[0]:
                raise BackendError(f"batch {batch} is outside the engine's optimization profile ({lo[0]}..{hi[0]})",
                                   f"use --batch-sizes within {lo[0]}..{hi[0]}, or rebuild the engine from ONNX")
            declared = tuple(engine.get_tensor_shape(name))
            if name in planned:
                shape = plan.shape(planned[name], batch)
            else:
                shape = (batch, *declared[1:]) if declared and declared[0] < 0 else declared
            ctx.set_input_shape(name, shape)
            host = dev.host_buffer(shape, np.dtype(trt.nptype(engine.get_tensor_dtype(name))))
            d_in = dev.alloc(host.nbytes)
            ctx.set_tensor_address(name, int(d_in))
            inputs[name] = host
            d_ins.append((host, d_in))
        outputs = []
        for out in self._io["outputs"]:
            oshape = tuple(ctx.get_tensor_shape(out))
            host = dev.host_buffer(oshape, np.dtype(trt.nptype(engine.get_tensor_dtype(out))))
            d_out = dev.alloc(host.nbytes)
            ctx.set_tensor_address(out, int(d_out))
            outputs.append((host, d_out))
        self._buffers = [*(d for _, d in d_ins), *(d for _, d in outputs)]
        stream = dev.stream_handle
        eager = lambda: ctx.execute_async_v3(stream)  # noqa: E731
        if launch == "graph":
            eager()  # one normal launch first: TensorRT allocates and settles shapes outside the capture
            dev.synchronize()
            self._graph = dev.capture_graph(eager)
            self._enqueue = self._graph
        else:
            self._enqueue = eager
        host_output, d_first = outputs[0]
        first = primary_input(plan) if plan is not None and len(plan.specs) == len(d_ins) else 0
        host_input, d_in = d_ins[first]  # the image input the pipeline's preprocess writes
        copies_in = [dev.copy_to_device(int(d), h) for h, d in d_ins]
        copies_out = [dev.copy_to_host(h, (lambda d=d: int(d))) for h, d in outputs]
        return Bindings(batch=batch, host_input=host_input, host_output=host_output,
                        copy_in=call_all(copies_in), copy_out=call_all(copies_out),
                        inputs=inputs, outputs=dict(zip(self._io["outputs"], (h for h, _ in outputs))),
                        device_input=int(d_in), device_output=lambda: int(d_first))

    def enqueue(self) -> None:
        self._enqueue()

    def release(self) -> None:
        if self.device is not None and getattr(self.device, "stream", None) is not None:
            self.device.synchronize()
        self._graph = None
        self._enqueue = None
        for buf in self._buffers:
            free = getattr(buf, "free", None)
            if free is not None:
                free()
        self._buffers = []

    def deactivate(self) -> None:
        try:
            self.release()
        finally:
            self.context = None
            self.engine = None

    def info(self) -> dict[str, Any]:
        info = super().info()
        if self.trt is not None:
            info["versions"] = {"tensorrt": self.trt.__version__}
        info["build"] = self.build_info
        return info
