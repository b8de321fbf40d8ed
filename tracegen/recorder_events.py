"""CUDA-event timers for ``tracegen.Recorder`` on the user's own stream.

A stream may be a torch ``torch.cuda.Stream``, a CuPy ``cupy.cuda.Stream``, a pycuda
``pycuda.driver.Stream``, or a raw ``cudaStream_t`` handle (an int; recorded with the CUDA
driver API through ctypes, in the calling thread's current context). Every library is imported
only when a stream of its kind is first seen. A timer records two events around a step; its
elapsed time is read later, once the GPU has passed the end event, so reading never waits.
"""

from __future__ import annotations

import ctypes
from typing import Any

from tracegen.errors import ConfigError


class _EventPair:
    """Two timing events on one stream; the libraries differ only in how they are made,
    polled and differenced."""

    def __init__(self, a, b, stream):
        self.a, self.b, self._stream = a, b, stream

    def start(self) -> None:
        self.a.record(self._stream)

    def stop(self) -> None:
        self.b.record(self._stream)

    def done(self) -> bool:
        return self.b.query()

    def wait(self) -> None:
        self.b.synchronize()


class _TorchPair(_EventPair):
    def __init__(self, torch, stream):
        super().__init__(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True), stream)

    def elapsed_ns(self) -> int:
        return round(self.a.elapsed_time(self.b) * 1e6)


class _CupyPair(_EventPair):
    def __init__(self, cupy, stream):
        super().__init__(cupy.cuda.Event(), cupy.cuda.Event(), stream)
        self._cupy = cupy

    def done(self) -> bool:
        return self.b.done

    def elapsed_ns(self) -> int:
        return round(self._cupy.cuda.get_elapsed_time(self.a, self.b) * 1e6)


class _PycudaPair(_EventPair):
    def __init__(self, cuda, stream):
        super().__init__(cuda.Event(), cuda.Event(), stream)

    def elapsed_ns(self) -> int:
        return round(self.b.time_since(self.a) * 1e6)


class _Driver:
    """The few CUDA driver calls a raw stream handle needs."""

    _lib = None

    @classmethod
    def lib(cls):
        if cls._lib is None:
            for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
                try:
                    cls._lib = ctypes.CDLL(name)
                    break
                except OSError:
                    continue
            else:
                raise ConfigError("a raw CUDA stream handle was given, but the CUDA driver (libcuda) is not loadable",
                                  "pass a torch, CuPy or pycuda stream, or install the NVIDIA driver")
        return cls._lib

    @classmethod
    def check(cls, rc: int, what: str) -> None:
        if rc != 0:
            raise ConfigError(f"CUDA driver call {what} failed with error {rc}",
                              "make sure a CUDA context is current in this thread (the one the stream belongs to)")


class _RawPair:
    def __init__(self, handle: int):
        lib = _Driver.lib()
        self._lib, self._stream = lib, ctypes.c_void_p(handle)
        self.a, self.b = ctypes.c_void_p(), ctypes.c_void_p()
        _Driver.check(lib.cuEventCreate(ctypes.byref(self.a), 0), "cuEventCreate")
        _Driver.check(lib.cuEventCreate(ctypes.byref(self.b), 0), "cuEventCreate")

    def start(self) -> None:
        self._lib.cuEventRecord(self.a, self._stream)

    def stop(self) -> None:
        self._lib.cuEventRecord(self.b, self._stream)

    def done(self) -> bool:
        return self._lib.cuEventQuery(self.b) == 0

    def wait(self) -> None:
        _Driver.check(self._lib.cuEventSynchronize(self.b), "cuEventSynchronize")

    def elapsed_ns(self) -> int:
        ms = ctypes.c_float()
        # CUDA 12.8+ headers map the call to the _v2 symbol; older drivers only have the first.
        fn = getattr(self._lib, "cuEventElapsedTime_v2", None) or self._lib.cuEventElapsedTime
        _Driver.check(fn(ctypes.byref(ms), self.a, self.b), "cuEventElapsedTime")
        return round(ms.value * 1e6)


def stream_kind(stream: Any) -> str:
    """``torch``, ``cupy``, ``pycuda`` or ``raw`` (an int handle), without importing anything."""
    if isinstance(stream, bool):
        raise ConfigError("stream=True/False is not a CUDA stream", "pass the stream object the step's work runs on")
    if isinstance(stream, int):
        return "raw"
    module = type(stream).__module__.split(".")[0]
    if module in ("torch", "cupy", "pycuda"):
        return module
    raise ConfigError(f"cannot time GPU work on a {type(stream).__module__}.{type(stream).__name__}",
                      "pass a torch.cuda.Stream, cupy.cuda.Stream, pycuda.driver.Stream or a raw cudaStream_t int")


def make_pair(stream: Any):
    """A fresh event pair on ``stream`` (imports the stream's library on first use)."""
    kind = stream_kind(stream)
    if kind == "torch":
        import torch

        return _TorchPair(torch, stream)
    if kind == "cupy":
        import cupy

        return _CupyPair(cupy, stream)
    if kind == "pycuda":
        import pycuda.driver as cuda

        return _PycudaPair(cuda, stream)
    return _RawPair(stream)
