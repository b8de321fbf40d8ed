"""TensorRT 10/11 on the runner's CUDA stream (pycuda device layer).

From ONNX it builds an engine whose optimization profile covers every batch size the run asks
for, in the requested precision, and caches the serialized engine on disk under a key of
everything that makes engines differ (ONNX bytes, TensorRT version, GPU and compute capability,
precision, profile). A serialized engine file can be given instead. Tensors are bound by name
(``set_tensor_address``), inference is ``execute_async_v3`` on the device's stream, and
``--launch graph`` replays a CUDA graph captured from one ``execute_async_v3``.

TensorRT could not run on the GPU this project was developed on (see the README): this module
is written against the documented Python API and tested with a stand-in ``tensorrt`` module.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tracegen.backends.base import Backend, Bindings, Device
from tracegen.errors import BackendError, ModelError
from tracegen.optional import require

WORKSPACE_BYTES = 4 << 30


def engine_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tracegen" / "engines"


def engine_cache_key(onnx_sha256: str, trt_version: str, gpu_name: str, compute_capability: str,
                     precision: str, profile: tuple[int, int, int]) -> str:
    """Engines are only valid for the exact TensorRT version and GPU they were built for."""
    text = "|".join([onnx_sha256, trt_version, gpu_name, compute_capability, precision, "x".join(map(str, profile))])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def profile_for(batches: list[int]) -> tuple[int, int, int]:
    """(min, opt, max) batch of the optimization profile; opt at the most common real-time size."""
    lo, hi = min(batches), max(batches)
    opt = 1 if lo <= 1 <= hi else lo
    return lo, opt, hi


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
        if self.model.kind == "engine":
            data = Path(self.model.path).read_bytes()
            self.build_info = {"source": "serialized engine", "path": self.model.path}
        else:
            data = self._cached_or_built()
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

    def _cached_or_built(self) -> bytes:
        trt = self.trt
        profile = profile_for(self.batches)
        gpu, cc = self._gpu_identity()
        key = engine_cache_key(self.model.sha256, trt.__version__, gpu, cc, self.precision, profile)
        path = engine_cache_dir() / f"{key}.engine"
        self.build_info = {"cache_key": key, "cache_path": str(path), "profile_batch": list(profile),
                           "precision": self.precision, "tensorrt": trt.__version__, "workspace_bytes": WORKSPACE_BYTES}
        if path.exists():
            self.build_info["source"] = "engine cache"
            return path.read_bytes()
        start = time.perf_counter()
        data = self._build(profile)
        self.build_info.update(source="built from ONNX", build_seconds=round(time.perf_counter() - start, 2))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError:
            pass  # an unwritable cache only costs a rebuild next time
        return data

    def _build(self, profile: tuple[int, int, int]) -> bytes:
        trt = self.trt
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(self.model.onnx_bytes):
            errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
            raise ModelError(f"TensorRT cannot parse {self.model.spec}: {errors or 'unknown error'}",
                             "check the model with `polygraphy inspect model`, or use --backend torch")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if self.precision == "fp16":
            self._fp16(config)
        opt_profile = builder.create_optimization_profile()
        image = self.model.image_shape
        opt_profile.set_shape(self.model.input_name, (profile[0], *image), (profile[1], *image), (profile[2], *image))
        config.add_optimization_profile(opt_profile)
        data = builder.build_serialized_network(network, config)
        if data is None:
            raise BackendError(f"TensorRT could not build an engine for {self.model.spec} (see its log above)",
                               "try --precision fp32, smaller --batch-sizes, or --backend torch")
        return bytes(data)

    def _fp16(self, config) -> None:
        """TensorRT 10 builds fp16 from an fp32 model with BuilderFlag.FP16 (weak typing). TensorRT
        11 removed the flag: every network is strongly typed, so fp16 needs an fp16 model."""
        trt = self.trt
        flag = getattr(trt.BuilderFlag, "FP16", None)
        if flag is not None:
            config.set_flag(flag)
            self.build_info["typing"] = "weak (BuilderFlag.FP16)"
            return
        self.build_info["typing"] = "strong"
        if self.model.input_dtype != "float16":
            raise BackendError(
                f"TensorRT {trt.__version__} builds strongly typed networks only, so --precision fp16 needs an fp16 "
                f"model and {self.model.spec} is {self.model.input_dtype or 'not fp16'}",
                "use --precision fp32, or convert the model to fp16 first (e.g. ModelOpt AutoCast)")

    def _tensors(self) -> dict[str, list[str]]:
        trt, engine = self.trt, self.engine
        io: dict[str, list[str]] = {"inputs": [], "outputs": []}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            kind = "inputs" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "outputs"
            io[kind].append(name)
        if len(io["inputs"]) != 1:
            raise ModelError(f"{self.model.spec} has {len(io['inputs'])} inputs; tracegen feeds one image tensor",
                             "export the model with a single NCHW input")
        return io

    # -- per batch -------------------------------------------------------------------------------
    def prepare(self, batch: int, launch: str = "eager") -> Bindings:
        trt, engine, ctx, dev = self.trt, self.engine, self.context, self.device
        self.release()
        name = self._io["inputs"][0]
        lo, _, hi = (tuple(s) for s in engine.get_tensor_profile_shape(name, 0))
        if not lo[0] <= batch <= hi[0]:
            raise BackendError(f"batch {batch} is outside the engine's optimization profile ({lo[0]}..{hi[0]})",
                               f"use --batch-sizes within {lo[0]}..{hi[0]}, or rebuild the engine from ONNX")
        shape = (batch, *tuple(engine.get_tensor_shape(name))[1:])
        ctx.set_input_shape(name, shape)
        host_input = dev.host_buffer(shape, np.dtype(trt.nptype(engine.get_tensor_dtype(name))))
        d_in = dev.alloc(host_input.nbytes)
        ctx.set_tensor_address(name, int(d_in))
        outputs = []
        for out in self._io["outputs"]:
            oshape = tuple(ctx.get_tensor_shape(out))
            host = dev.host_buffer(oshape, np.dtype(trt.nptype(engine.get_tensor_dtype(out))))
            d_out = dev.alloc(host.nbytes)
            ctx.set_tensor_address(out, int(d_out))
            outputs.append((host, d_out))
        self._buffers = [d_in, *(d for _, d in outputs)]
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
        return Bindings(batch=batch, host_input=host_input, host_output=host_output,
                        copy_in=dev.copy_to_device(int(d_in), host_input),
                        copy_out=dev.copy_to_host(host_output, lambda: int(d_first)),
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
