"""Backend names -> classes, and the ``auto`` choice. Classes are imported only when chosen."""

from __future__ import annotations

import importlib

from tracegen.backends.base import Backend, Device, HostDevice, ModelSource
from tracegen.errors import ConfigError

BACKENDS = {
    "onnxruntime": "tracegen.backends.onnxruntime:OnnxRuntimeBackend",
    "torch": "tracegen.backends.torch:TorchBackend",
    "tensorrt": "tracegen.backends.tensorrt:TensorRTBackend",
}
BACKEND_CHOICES = ("auto", *BACKENDS)


def cuda_gpu_count() -> int:
    """Number of NVIDIA GPUs the driver reports (0 without driver or NVML); imports no CUDA."""
    try:
        import pynvml
    except ImportError:
        return 0
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver: no GPU
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:  # noqa: BLE001
        return 0
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def _imports(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - broken installs count as absent
        return False
    return True


def resolve_backend(name: str, model_kind: str = "onnx") -> str:
    """``auto``: tensorrt with TensorRT and a GPU, else torch on a GPU, else onnxruntime."""
    if name != "auto":
        if name not in BACKENDS:
            raise ConfigError(f"unknown backend {name!r}", f"choose one of: {', '.join(BACKEND_CHOICES)}")
        return name
    if model_kind == "engine":
        return "tensorrt"
    if cuda_gpu_count() > 0:
        if _imports("tensorrt") and _imports("pycuda.driver"):
            return "tensorrt"
        if _imports("torch") and _imports("pycuda.driver") and _imports("onnx2torch"):
            return "torch"
    return "onnxruntime"


def backend_class(name: str) -> type[Backend]:
    module, _, cls = BACKENDS[resolve_backend(name)].partition(":")
    return getattr(importlib.import_module(module), cls)


def make_backend(name: str, model: ModelSource, *, precision: str, threads: int | None) -> Backend:
    return backend_class(name)(model, precision=precision, threads=threads)


def make_device(kind: str, *, sync_mode: str = "auto", device_index: int = 0) -> Device:
    """The device layer a backend needs; the CUDA one is created with the host sync mode."""
    if kind == "host":
        return HostDevice()
    from tracegen.backends.cuda import CudaDevice

    return CudaDevice(sync_mode=sync_mode, device_index=device_index)
