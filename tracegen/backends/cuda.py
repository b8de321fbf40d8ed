"""The CUDA device layer on pycuda: the only module that imports pycuda.

It retains the device's *primary* context (the one the CUDA runtime, PyTorch and TensorRT use),
so every library works on the same context and stream. The host sync mode (how a waiting host
thread behaves: spin, yield or blocking sync) is a flag of that context, set with
``cuCtxSetFlags`` (CUDA 12.1+) while it is current, and read back for the manifest.
"""

from __future__ import annotations

import ctypes
import time
from typing import Any

import numpy as np

from tracegen.backends.base import Device, StepTimer
from tracegen.errors import BackendError
from tracegen.optional import require

SYNC_FLAGS = {"auto": 0x0, "spin": 0x1, "yield": 0x2, "blocking": 0x4}
_SCHED_MASK = 0x7
# Keep-alive: the side stream gets a memset of this size every slice of the gap, which keeps the
# GPU's memory system and SMs from going idle without compiling a kernel (see README).
KEEPALIVE_BYTES = 64 << 20
KEEPALIVE_SLICE_S = 0.0005


def _libcuda():
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise BackendError(f"the NVIDIA driver library libcuda.so.1 cannot be loaded ({exc})",
                           "install the NVIDIA driver, or use --backend onnxruntime") from None


class CudaTimer(StepTimer):
    """Two CUDA events on the device's stream."""

    def __init__(self, cuda, stream):
        self._start, self._stop = cuda.Event(), cuda.Event()
        self._stream = stream

    def start(self) -> None:
        self._start.record(self._stream)

    def stop(self) -> None:
        self._stop.record(self._stream)

    def elapsed_ns(self) -> int | None:
        return int(round(self._stop.time_since(self._start) * 1e6))


class CudaDevice(Device):
    kind = "cuda"
    supports_keepalive = True

    def __init__(self, sync_mode: str = "auto", device_index: int = 0):
        if sync_mode not in SYNC_FLAGS:
            raise BackendError(f"unknown sync mode {sync_mode!r}", f"choose from: {', '.join(SYNC_FLAGS)}")
        self.sync_mode = sync_mode
        self.device_index = device_index
        self.cuda = None
        self.context = None
        self.stream = None
        self.side_stream = None
        self._keepalive_buf = None
        self.applied_flags: int | None = None

    # -- lifetime ----------------------------------------------------------------------------
    def activate(self) -> None:
        cuda = self.cuda = require("pycuda.driver")
        try:
            cuda.init()
            count = cuda.Device.count()
        except cuda.Error as exc:
            raise BackendError(f"CUDA is not usable here ({exc})", "check the driver with nvidia-smi, or use --backend onnxruntime") from None
        if self.device_index >= count:
            raise BackendError(f"there is no CUDA device {self.device_index} ({count} found)", f"use --device 0..{count - 1}")
        dev = cuda.Device(self.device_index)
        self.context = dev.retain_primary_context()
        self.context.push()
        self._set_sync_flags()
        self.stream = cuda.Stream()
        self.side_stream = cuda.Stream()

    def _set_sync_flags(self) -> None:
        lib = _libcuda()
        flags = ctypes.c_uint(0)
        lib.cuCtxGetFlags(ctypes.byref(flags))
        wanted = (flags.value & ~_SCHED_MASK) | SYNC_FLAGS[self.sync_mode]
        set_flags = getattr(lib, "cuCtxSetFlags", None)
        if set_flags is not None and wanted != flags.value:
            rc = set_flags(ctypes.c_uint(wanted))
            if rc != 0:
                raise BackendError(f"the driver refused sync mode {self.sync_mode} (cuCtxSetFlags error {rc})",
                                   "use --sync-mode auto, or a driver with CUDA 12.1 or newer")
        lib.cuCtxGetFlags(ctypes.byref(flags))
        self.applied_flags = flags.value & _SCHED_MASK
        if self.applied_flags != SYNC_FLAGS[self.sync_mode]:
            raise BackendError(f"sync mode {self.sync_mode} could not be set on the CUDA context",
                               "use --sync-mode auto, or a driver with CUDA 12.1 or newer")

    def deactivate(self) -> None:
        """Free streams and pop the context exactly once; safe after a partial activate."""
        if self.context is None:
            return
        try:
            if self.stream is not None:
                self.stream.synchronize()
            if self.side_stream is not None:
                self.side_stream.synchronize()
        except Exception:  # noqa: BLE001 - teardown continues whatever the GPU says
            pass
        self._keepalive_buf = None
        self.stream = self.side_stream = None
        try:
            self.context.pop()
        finally:
            try:
                self.context.detach()
            except Exception:  # noqa: BLE001
                pass
            self.context = None

    # -- Device interface ------------------------------------------------------------------------
    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def timer(self) -> StepTimer:
        return CudaTimer(self.cuda, self.stream)

    def synchronize(self) -> None:
        # Waits the way the context's sched flag says (spin / yield / blocking sync).
        self.stream.synchronize()

    def host_buffer(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        buf = self.cuda.pagelocked_empty(shape, dtype)
        buf.fill(0)
        return buf

    def copy_to_device(self, device_ptr: int, host: np.ndarray):
        """A callable enqueuing the copy of ``host`` (page-locked) to ``device_ptr`` on the stream."""
        cuda, stream = self.cuda, self.stream
        return lambda: cuda.memcpy_htod_async(device_ptr, host, stream)

    def copy_to_host(self, host: np.ndarray, device_ptr) -> Any:
        """A callable enqueuing the copy from ``device_ptr()`` (a callable: the source may move)
        to ``host`` on the stream."""
        cuda, stream = self.cuda, self.stream
        return lambda: cuda.memcpy_dtoh_async(host, device_ptr(), stream)

    def alloc(self, nbytes: int) -> Any:
        """Device memory; ``int(buffer)`` is its address. A clear error when it does not fit."""
        try:
            return self.cuda.mem_alloc(max(1, int(nbytes)))
        except (self.cuda.MemoryError, MemoryError):
            free, total = self.cuda.mem_get_info()
            raise BackendError(f"{nbytes / 2**20:.0f} MiB do not fit in GPU memory ({free / 2**20:.0f} of "
                               f"{total / 2**20:.0f} MiB free)", "use smaller --batch-sizes, or --precision fp16") from None

    def capture_graph(self, work) -> Any:
        """Capture the work ``work()`` enqueues on the stream into a CUDA graph (driver API through
        ctypes: pycuda has no stream capture) and return a callable that replays it."""
        return _CapturedGraph(_libcuda(), self.stream, work)

    def keepalive(self, seconds: float) -> None:
        """Keep the GPU busy during the gap: memsets on the side stream, one per slice, while the
        host sleeps in short slices. No kernel is compiled."""
        if self._keepalive_buf is None:
            self._keepalive_buf = self.cuda.mem_alloc(KEEPALIVE_BYTES)
        deadline = time.perf_counter() + seconds
        ptr, side = int(self._keepalive_buf), self.side_stream
        memset = self.cuda.memset_d8_async
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            if side.is_done():  # never queue more than one: the gap must not spill into the next step
                memset(ptr, 0, KEEPALIVE_BYTES, side)
            time.sleep(min(KEEPALIVE_SLICE_S, left))
        side.synchronize()

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"kind": "cuda", "sync_mode": self.sync_mode, "context_sched_flags": self.applied_flags}
        try:
            from tracegen.telemetry.nvml import gpu_static_info

            info.update(gpu_static_info(self.device_index))
        except Exception as exc:  # noqa: BLE001 - NVML missing: keep what pycuda knows
            info["nvml_error"] = str(exc)
        if self.cuda is not None:
            dev = self.cuda.Device(self.device_index)
            info.setdefault("name", dev.name())
            info["compute_capability"] = ".".join(map(str, dev.compute_capability()))
            info["cuda_driver_version"] = self.cuda.get_driver_version()
            info.setdefault("memory_total_mb", dev.total_memory() // (1 << 20))
        return info


class _CapturedGraph:
    """A CUDA graph captured from a stream; calling it launches the graph on that stream."""

    _THREAD_LOCAL_CAPTURE = 1  # CU_STREAM_CAPTURE_MODE_THREAD_LOCAL

    def __init__(self, lib, stream, work):
        self._lib, self._stream = lib, ctypes.c_void_p(int(stream.handle))
        graph, self._exec = ctypes.c_void_p(), ctypes.c_void_p()
        self._check(lib.cuStreamBeginCapture_v2(self._stream, self._THREAD_LOCAL_CAPTURE), "begin capture")
        try:
            work()
        finally:
            rc_end = lib.cuStreamEndCapture(self._stream, ctypes.byref(graph))
        self._check(rc_end, "end capture")
        self._graph = graph
        self._check(lib.cuGraphInstantiateWithFlags(ctypes.byref(self._exec), graph, ctypes.c_ulonglong(0)), "instantiate")

    @staticmethod
    def _check(rc: int, what: str) -> None:
        if rc != 0:
            raise BackendError(f"CUDA graph {what} failed (driver error {rc})", "use --launch eager for this engine")

    def __call__(self) -> None:
        self._lib.cuGraphLaunch(self._exec, self._stream)

    def __del__(self):
        try:
            if self._exec:
                self._lib.cuGraphExecDestroy(self._exec)
            if self._graph:
                self._lib.cuGraphDestroy(self._graph)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
