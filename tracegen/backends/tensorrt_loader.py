"""TensorRT engines for the runner part (``tensorrt.py``): built from ONNX with an optimization
profile over the run's batch sizes, in the requested precision, or read from a serialized engine
file, and cached on disk under a key of everything that makes engines differ (ONNX bytes,
TensorRT version, GPU and compute capability, precision, profile). Building and caching live
here; running lives beside it, as in Polygraphy's ``backend/trt/loader.py`` vs ``runner.py``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tracegen.backends.base import ModelSource
from tracegen.errors import BackendError, ModelError

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


class EngineLoader:
    """Serialized engine bytes for ``model``; ``build_info`` says where they came from."""

    def __init__(self, trt, logger, model: ModelSource, precision: str, batches: list[int], gpu: tuple[str, str]):
        self.trt = trt
        self._logger = logger
        self.model = model
        self.precision = precision
        self.batches = batches
        self.gpu = gpu  # (name, compute capability)
        self.build_info: dict[str, Any] = {}

    def __call__(self) -> bytes:
        if self.model.kind == "engine":
            self.build_info = {"source": "serialized engine", "path": self.model.path}
            return Path(self.model.path).read_bytes()
        return self._cached_or_built()

    def _cached_or_built(self) -> bytes:
        trt = self.trt
        profile = profile_for(self.batches)
        gpu, cc = self.gpu
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
        # A model with external data is parsed from its path, where TensorRT finds the .onnx.data.
        parsed = (parser.parse(self.model.onnx_bytes) if self.model.onnx_bytes is not None
                  else parser.parse_from_file(self.model.path))
        if not parsed:
            errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
            raise ModelError(f"TensorRT cannot parse {self.model.spec}: {errors or 'unknown error'}",
                             "check the model with `polygraphy inspect model`, or use --backend torch")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if self.precision == "fp16":
            self._fp16(config)
        opt_profile = builder.create_optimization_profile()
        plan = self.model.plan
        if plan is not None:  # every input, its batch axis over the profile (models.shapes)
            for i, spec in enumerate(plan.specs):
                opt_profile.set_shape(spec.name, *(plan.shape(i, b) for b in profile))
        else:
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
