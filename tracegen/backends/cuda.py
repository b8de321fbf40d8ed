"""The CUDA device layer on pycuda: the only module that imports pycuda.

Context. ``CudaDevice`` retains the device's *primary* context (the one the CUDA runtime, PyTorch
and TensorRT use) and pushes it, so every library works on the same context and on the same
stream. The host sync mode (how a host thread waits for the GPU: spin, yield or blocking sync)
is a flag of that context. It is set with ``cuCtxSetFlags`` (driver API, CUDA 12.1+) while the
context is current, or, on older drivers, with ``cuDevicePrimaryCtxSetFlags_v2`` before the
context is retained; either way it is read back with ``cuCtxGetFlags`` and a mismatch is an
error, never a silent default. On the H100 (driver 580) ``cuCtxSetFlags`` takes effect also when
PyTorch already holds the primary context: the host's CPU time spent inside a long
``synchronize()`` equals the wall time with ``spin`` (and with ``yield`` and ``auto``, which
spin-yield when nothing else wants the core) and is 0.2 % of it with ``blocking``
(benchmarks/RESULTS_gpu.md).

Waiting. ``synchronize()`` is ``cuStreamSynchronize`` on the device's stream (pycuda releases the
GIL around it), and it is the only way tracegen waits for the GPU, so the context's sync mode is
what the ``sync`` step measures. Timers are pairs of CUDA events recorded on the same stream.

Teardown. ``deactivate()`` pops and releases the context exactly once, also after a partial
``activate()``. ``activate()`` registers an ``atexit`` hook (removed again by ``deactivate()``) so
that a process that exits without deactivating (an exception, Ctrl-C, a test that forgot) pops
the context before pycuda's own module cleanup, which would otherwise abort with "The context
stack was not empty upon module cleanup". Nothing is registered at import time.

Keep-alive. ``keepalive(seconds)`` keeps the GPU from idling during a pacing gap without
compiling a kernel: a ``cuMemsetD8Async`` on a side stream whenever the previous one finished,
while the host sleeps in short slices (so at most one operation is queued at any time and the
host enqueues a few thousand operations per second, not millions). At the end the host waits
for the side stream, so no keep-alive work overlaps the next inference.
"""

from __future__ import annotations

import atexit
import ctypes
import time
import weakref
from typing import Any, Callable

import numpy as np

from tracegen.backends.base import Device, StepTimer
from tracegen.errors import BackendError
from tracegen.optional import require

# CUctx_flags scheduling bits (cuda.h): CU_CTX_SCHED_AUTO/SPIN/YIELD/BLOCKING_SYNC. They equal
# pycuda.driver.ctx_flags.SCHED_* (checked in activate).
SYNC_FLAGS = {"auto": 0x0, "spin": 0x1, "yield": 0x2, "blocking": 0x4}
SYNC_MODES = tuple(SYNC_FLAGS)
_SCHED_MASK = 0x7
# Keep-alive: one memset of this many bytes on the side stream whenever the previous one is
# done, checked every slice. Measured on the H100 (benchmarks/RESULTS_gpu.md): a 64 MiB memset
# runs 28.8 us, about 1740 are issued per second, so the GPU never idles longer than ~0.6 ms but
# is busy only ~5 % of the gap (NVML utilisation 4 %, 127 W vs 125 W asleep) and the host spends
# ~3 % of a core. 256 MiB gave 15 % busy and 153 W; 1-8 MiB barely register.
KEEPALIVE_BYTES = 64 << 20
KEEPALIVE_SLICE_S = 0.0005
# Streams are created CU_STREAM_NON_BLOCKING (as PyTorch's and TensorRT's samples' are): no
# implicit ordering with the legacy default stream, which another library may use.
STREAM_FLAGS = 0x1


def _libcuda():
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        raise BackendError(f"the NVIDIA driver library libcuda.so.1 cannot be loaded ({exc})",
                           "install the NVIDIA driver, or use --backend onnxruntime") from None
    return lib


def decode_sync_flags(flags: int | None) -> str | None:
    """The sync mode name of a context's flags (``cuCtxGetFlags``)."""
    if flags is None:
        return None
    sched = flags & _SCHED_MASK
    return next((name for name, bit in SYNC_FLAGS.items() if bit == sched), f"0x{sched:x}")


class CudaTimer(StepTimer):
    """Two CUDA events on the device's stream. ``elapsed_ns`` after the stream synchronised
    (CUDA events resolve about half a microsecond)."""

    def __init__(self, cuda, stream):
        self._start, self._stop = cuda.Event(), cuda.Event()
        self._stream = stream

    def close(self) -> None:
        """Destroy the events while their context is alive (the device calls it on deactivate)."""
        self._start = self._stop = self._stream = None

    def start(self) -> None:
        self._start.record(self._stream)

    def stop(self) -> None:
        self._stop.record(self._stream)

    def elapsed_ns(self) -> int | None:
        return int(round(self._stop.time_since(self._start) * 1e6))


class CudaDevice(Device):
    """One GPU through pycuda: primary context with the host sync mode, a stream for the timed
    work, a side stream for keep-alive work, pinned host buffers, async copies, events."""

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
        self._pushed = False
        self._atexit = None
        self._keepalive_buf = None
        # What must be destroyed before the context goes: timers and graphs (weak, they die
        # with their users) and device allocations (freed; pycuda's free() is explicit).
        self._timers: weakref.WeakSet = weakref.WeakSet()
        self._graphs: weakref.WeakSet = weakref.WeakSet()
        self._allocs: list = []
        self.keepalive_ops = 0  # memsets issued by keepalive() since activate (for diagnostics)
        self.applied_flags: int | None = None  # sched bits read back from the context
        self.flag_method: str | None = None  # how the sync mode was set

    # -- lifetime ----------------------------------------------------------------------------
    def activate(self) -> None:
        if self.context is not None:
            return
        cuda = self.cuda = require("pycuda.driver")
        try:
            cuda.init()
            count = cuda.Device.count()
        except cuda.Error as exc:
            raise BackendError(f"CUDA is not usable here ({exc})",
                               "check the driver with nvidia-smi, or use --backend onnxruntime") from None
        if not 0 <= self.device_index < count:
            raise BackendError(f"there is no CUDA device {self.device_index} ({count} found)",
                               f"use a device index in 0..{count - 1}")
        dev = cuda.Device(self.device_index)
        lib = _libcuda()
        # Register the exit hook before anything can be left on the context stack.
        self._atexit = self._exit_hook
        atexit.register(self._atexit)
        try:
            if not hasattr(lib, "cuCtxSetFlags"):  # drivers before CUDA 12.1: set before retaining
                self._set_primary_flags(lib)
            self.context = dev.retain_primary_context()
            self.context.push()
            self._pushed = True
            if hasattr(lib, "cuCtxSetFlags"):
                self._set_current_flags(lib)
            self._check_flags(lib)
            self.stream = cuda.Stream(flags=STREAM_FLAGS)
            self.side_stream = cuda.Stream(flags=STREAM_FLAGS)
        except BaseException:
            self.deactivate()
            raise

    def _set_current_flags(self, lib) -> None:
        flags = self._current_flags(lib)
        wanted = (flags & ~_SCHED_MASK) | SYNC_FLAGS[self.sync_mode]
        self.flag_method = "cuCtxSetFlags"
        if wanted != flags:
            rc = lib.cuCtxSetFlags(ctypes.c_uint(wanted))
            if rc != 0:
                raise BackendError(f"the driver refused sync mode {self.sync_mode} (cuCtxSetFlags error {rc})",
                                   "use --sync-mode auto")

    def _set_primary_flags(self, lib) -> None:
        self.flag_method = "cuDevicePrimaryCtxSetFlags"
        fn = getattr(lib, "cuDevicePrimaryCtxSetFlags_v2", None) or getattr(lib, "cuDevicePrimaryCtxSetFlags")
        handle = ctypes.c_int(0)
        rc = lib.cuDeviceGet(ctypes.byref(handle), ctypes.c_int(self.device_index))
        if rc == 0:
            rc = fn(handle, ctypes.c_uint(SYNC_FLAGS[self.sync_mode]))
        if rc != 0:
            raise BackendError(f"the driver refused sync mode {self.sync_mode} (cuDevicePrimaryCtxSetFlags error {rc})",
                               "use --sync-mode auto, or a driver with CUDA 12.1 or newer")

    @staticmethod
    def _current_flags(lib) -> int:
        flags = ctypes.c_uint(0)
        rc = lib.cuCtxGetFlags(ctypes.byref(flags))
        if rc != 0:
            raise BackendError(f"cannot read the CUDA context flags (driver error {rc})", "check the driver with nvidia-smi")
        return flags.value

    def _check_flags(self, lib) -> None:
        self.applied_flags = self._current_flags(lib) & _SCHED_MASK
        if self.applied_flags != SYNC_FLAGS[self.sync_mode]:
            raise BackendError(
                f"sync mode {self.sync_mode} could not be set on the CUDA context "
                f"(it is {decode_sync_flags(self.applied_flags)}, probably fixed by another library first)",
                "use --sync-mode auto, or a driver with CUDA 12.1 or newer")

    def deactivate(self) -> None:
        """Free streams and buffers, pop and release the context exactly once; idempotent and
        safe after a partial ``activate``."""
        if self._atexit is not None:
            atexit.unregister(self._atexit)
            self._atexit = None
        if self.context is None:
            return
        if self._pushed:
            for stream in (self.stream, self.side_stream):
                if stream is not None:
                    try:
                        stream.synchronize()
                    except Exception:  # noqa: BLE001 - teardown continues whatever the GPU says
                        pass
            for graph in list(self._graphs):
                graph.destroy()
            for timer in list(self._timers):
                timer.close()
            for buf in self._allocs:
                try:
                    buf.free()
                except Exception:  # noqa: BLE001 - already freed by its user
                    pass
        self._graphs = weakref.WeakSet()
        self._timers = weakref.WeakSet()
        self._allocs = []
        self._keepalive_buf = None
        self.stream = self.side_stream = None
        context, self.context = self.context, None
        try:
            if self._pushed:
                self._pushed = False
                context.pop()
        except Exception:  # noqa: BLE001 - not current any more (another library popped it)
            pass
        finally:
            try:
                context.detach()
            except Exception:  # noqa: BLE001
                pass

    def _exit_hook(self) -> None:
        self._atexit = None  # atexit already removed it
        try:
            self.deactivate()
        except Exception:  # noqa: BLE001 - never raise at interpreter exit
            pass

    # -- Device interface ------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.context is not None and self.stream is not None

    @property
    def stream_handle(self) -> int:
        """The raw ``CUstream`` of the timed stream (for torch.cuda.ExternalStream and TensorRT)."""
        return int(self.stream.handle)

    @property
    def context_handle(self) -> int:
        """The raw ``CUcontext`` (the device's primary context)."""
        return int(self.context.handle)

    def timer(self) -> StepTimer:
        timer = CudaTimer(self.cuda, self.stream)
        self._timers.add(timer)
        return timer

    def synchronize(self) -> None:
        """``cuStreamSynchronize`` on the timed stream: the host waits the way the context's
        sched flag says (spin / yield / blocking sync)."""
        self.stream.synchronize()

    def host_buffer(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A page-locked host array (so async copies really are asynchronous), zero-filled."""
        buf = self.cuda.pagelocked_empty(shape, dtype)
        buf.fill(0)
        return buf

    def copy_to_device(self, device_ptr: int, host: np.ndarray) -> Callable[[], None]:
        """A callable enqueuing the copy of ``host`` (page-locked) to ``device_ptr`` on the stream."""
        cuda, stream, ptr = self.cuda, self.stream, int(device_ptr)
        return lambda: cuda.memcpy_htod_async(ptr, host, stream)

    def copy_to_host(self, host: np.ndarray, device_ptr: Callable[[], int]) -> Callable[[], None]:
        """A callable enqueuing the copy from ``device_ptr()`` (a callable: the source may move
        between iterations, e.g. a fresh eager output) to ``host`` on the stream."""
        cuda, stream = self.cuda, self.stream
        return lambda: cuda.memcpy_dtoh_async(host, device_ptr(), stream)

    def alloc(self, nbytes: int) -> Any:
        """Device memory; ``int(buffer)`` is its address, ``buffer.free()`` frees it. A clear
        error when it does not fit."""
        try:
            buf = self.cuda.mem_alloc(max(1, int(nbytes)))
        except (self.cuda.MemoryError, MemoryError):
            free, total = self.cuda.mem_get_info()
            raise BackendError(f"{nbytes / 2**20:.0f} MiB do not fit in GPU memory ({free / 2**20:.0f} of "
                               f"{total / 2**20:.0f} MiB free)", "use smaller --batch-sizes, or --precision fp16") from None
        self._allocs.append(buf)
        return buf

    def capture_graph(self, work: Callable[[], Any]) -> Callable[[], None]:
        """Capture what ``work()`` enqueues on the stream into a CUDA graph (driver API through
        ctypes: pycuda has no stream capture) and return a callable that launches it there."""
        graph = _CapturedGraph(_libcuda(), self.stream, work)
        self._graphs.add(graph)
        return graph

    def keepalive(self, seconds: float) -> None:
        """Keep the GPU busy during the gap: a memset on the side stream whenever the previous
        one is done, checked every ``KEEPALIVE_SLICE_S`` while the host sleeps. No kernel is
        compiled; at most one operation is in flight; the side stream is drained at the end."""
        if self._keepalive_buf is None:
            self._keepalive_buf = self.alloc(KEEPALIVE_BYTES)
        deadline = time.perf_counter() + seconds
        ptr, side = int(self._keepalive_buf), self.side_stream
        memset, sleep, clock = self.cuda.memset_d8_async, time.sleep, time.perf_counter
        issued = 0
        while True:
            left = deadline - clock()
            if left <= 0:
                break
            if side.is_done():
                memset(ptr, 0, KEEPALIVE_BYTES, side)
                issued += 1
            sleep(min(KEEPALIVE_SLICE_S, left))
        side.synchronize()
        self.keepalive_ops += issued

    def info(self) -> dict[str, Any]:
        """Static GPU facts (NVML where available, else pycuda) plus the context's sync mode."""
        info: dict[str, Any] = {"kind": "cuda", "index": self.device_index, "sync_mode": self.sync_mode,
                                "context_sync_mode": decode_sync_flags(self.applied_flags),
                                "context_flag_method": self.flag_method}
        try:
            from tracegen.telemetry.nvml import gpu_static_info

            info.update(gpu_static_info(self.device_index))
        except Exception as exc:  # noqa: BLE001 - NVML missing: keep what pycuda knows
            info["nvml_error"] = str(exc)
        cuda = self.cuda
        if cuda is not None:
            try:
                dev = cuda.Device(self.device_index)
                info.setdefault("name", dev.name())
                if not info.get("name"):
                    info["name"] = dev.name()
                info["compute_capability"] = ".".join(map(str, dev.compute_capability()))
                info["pci_bus_id"] = dev.pci_bus_id()
                info["multiprocessors"] = dev.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT)
                v = cuda.get_driver_version()
                info["cuda_driver_api"] = f"{v // 1000}.{v % 1000 // 10}"
                if not info.get("memory_total_mb"):
                    info["memory_total_mb"] = dev.total_memory() // (1 << 20)
                info["pycuda"] = getattr(require("pycuda"), "VERSION_TEXT", None)
            except Exception as exc:  # noqa: BLE001 - facts are best effort
                info["pycuda_error"] = str(exc)
        return info


class _CapturedGraph:
    """A CUDA graph captured from a stream; calling it launches the graph on that stream."""

    _THREAD_LOCAL_CAPTURE = 1  # CU_STREAM_CAPTURE_MODE_THREAD_LOCAL

    def __init__(self, lib, stream, work):
        self._lib, self._stream = lib, ctypes.c_void_p(int(stream.handle))
        self._graph, self._exec = ctypes.c_void_p(), ctypes.c_void_p()
        self._check(lib.cuStreamBeginCapture_v2(self._stream, self._THREAD_LOCAL_CAPTURE), "begin capture")
        try:
            work()
        finally:
            rc_end = lib.cuStreamEndCapture(self._stream, ctypes.byref(self._graph))
        self._check(rc_end, "end capture")
        self._check(lib.cuGraphInstantiateWithFlags(ctypes.byref(self._exec), self._graph, ctypes.c_ulonglong(0)),
                    "instantiate")

    @staticmethod
    def _check(rc: int, what: str) -> None:
        if rc != 0:
            raise BackendError(f"CUDA graph {what} failed (driver error {rc})", "use --launch eager for this engine")

    def __call__(self) -> None:
        if self._exec is None:
            raise BackendError("this CUDA graph was freed with its device", "prepare the variant again")
        rc = self._lib.cuGraphLaunch(self._exec, self._stream)
        if rc != 0:
            self._check(rc, "launch")

    def destroy(self) -> None:
        """Free the graph; idempotent. Must run while the context is alive: the device calls it
        on deactivate, and a graph dropped earlier frees itself."""
        exec_, graph = self._exec, self._graph
        self._exec = self._graph = None
        try:
            if exec_:
                self._lib.cuGraphExecDestroy(exec_)
            if graph:
                self._lib.cuGraphDestroy(graph)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __del__(self):
        self.destroy()
