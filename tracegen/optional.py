"""The one place optional, heavy or GPU-only packages are imported.

Imports happen on first use so that `tracegen report` never pays for torch or TensorRT, and a
missing package becomes a one-line error with the command that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tracegen.errors import MissingDependency

# import name -> (what to install, why it is needed)
_HINTS: dict[str, tuple[str, str]] = {
    "tensorrt": ("pip install 'tracegen[tensorrt]'", "the tensorrt backend"),
    "pycuda": ("pip install pycuda", "the CUDA device layer (tensorrt and torch backends)"),
    "pycuda.driver": ("pip install pycuda", "the CUDA device layer (tensorrt and torch backends)"),
    "torch": ("pip install 'tracegen[torch]'", "the torch backend"),
    "onnx2torch": ("pip install 'tracegen[torch]'", "running ONNX models with the torch backend"),
    "onnxruntime": ("pip install onnxruntime", "the onnxruntime (CPU) backend"),
    "onnx": ("pip install onnx", "reading ONNX models"),
    "pynvml": ("pip install nvidia-ml-py", "GPU telemetry"),
    "nvtx": ("pip install nvtx", "NVTX ranges"),
    "vl_convert": ("pip install vl-convert-python", "inlining the Vega JavaScript into report pages"),
    "altair": ("pip install altair", "report charts"),
    "cupy": ("pip install cupy-cuda12x (or cupy-cuda13x, to match the CUDA driver)",
             "device pre/postprocessing (--preprocess device)"),
    "cv2": ("pip install opencv-python-headless", "fast host preprocessing"),
    "numba": ("pip install numba", "the compiled change-point engine (engine='numba')"),
}


def require(name: str) -> ModuleType:
    """Import ``name`` or raise MissingDependency with an install hint."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        install, purpose = _HINTS.get(name, (f"pip install {name}", "this feature"))
        raise MissingDependency(
            f"{name} is not installed ({purpose} needs it: {exc})", f"install it with `{install}`"
        ) from None


def available(name: str) -> bool:
    """True when ``name`` imports; never raises."""
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken install counts as unavailable
        return False
    return True
