"""GPU telemetry and static facts through NVML (nvidia-ml-py, imported as pynvml).

One sample reads SM and memory clocks, power, temperature, performance state, the clock event
reasons and utilisation: eight NVML calls, made on the sampler thread, never in the timed loop.
On the H100 one sample costs 9.1 us (median) through the path below, 16.0 us through pynvml's
functions (benchmarks/RESULTS_gpu.md); at the default 50 ms interval that is 0.02 % of one core.

The GIL. pynvml calls NVML through ``ctypes.CDLL``, which releases the GIL around every call and
takes it back afterwards: nine GIL hand-offs per sample, each of which can make a timed loop that
is running Python (an eager PyTorch forward pass) wait for the sampler thread. The sampler calls
the same entry points of the library pynvml loaded through ``ctypes.PyDLL`` instead, which keeps
the GIL for the whole ~9 us sample: one hand-off per sample. (On the lent H100 the effect on an
eager loop was below that machine's run-to-run noise; the fewer hand-offs and the cheaper sample
are what was measured.) Where this is not possible (old bindings, a missing symbol) it falls
back to pynvml's functions.
"""

from __future__ import annotations

import ctypes
from typing import Any

from tracegen.optional import require
from tracegen.telemetry.sampler import Sampler

# NVML clock event ("throttle") reason bits, as nvml.h defines them.
CLOCK_EVENT_REASONS = {
    0x1: "GpuIdle",
    0x2: "ApplicationsClocksSetting",
    0x4: "SwPowerCap",
    0x8: "HwSlowdown",
    0x10: "SyncBoost",
    0x20: "SwThermalSlowdown",
    0x40: "HwThermalSlowdown",
    0x80: "HwPowerBrakeSlowdown",
    0x100: "DisplayClockSetting",
    0x200: "BoardLimit",
    0x400: "Reliability",
}


def decode_reasons(mask: int | None) -> list[str]:
    if not mask:
        return []
    return [name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit]


def _init():
    nvml = require("pynvml")
    nvml.nvmlInit()
    return nvml


def _try(fn, *args, default=None):
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - a query the GPU does not support is simply absent
        return default


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def gpu_static_info(index: int = 0) -> dict[str, Any]:
    """Facts for the manifest: name, UUID, driver, clocks, power limits, persistence mode."""
    nvml = _init()
    try:
        h = nvml.nvmlDeviceGetHandleByIndex(index)
        mem = _try(nvml.nvmlDeviceGetMemoryInfo, h)
        cc = _try(nvml.nvmlDeviceGetCudaComputeCapability, h)
        cuda = _try(nvml.nvmlSystemGetCudaDriverVersion)
        limit = _try(nvml.nvmlDeviceGetPowerManagementLimit, h)
        default_limit = _try(nvml.nvmlDeviceGetPowerManagementDefaultLimit, h)
        return {
            "name": _text(_try(nvml.nvmlDeviceGetName, h)),
            "uuid": _text(_try(nvml.nvmlDeviceGetUUID, h)),
            "driver": _text(_try(nvml.nvmlSystemGetDriverVersion)),
            "cuda": f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None,
            "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
            "memory_total_mb": mem.total // (1 << 20) if mem else None,
            "power_limit_w": limit / 1000 if limit else None,
            "default_power_limit_w": default_limit / 1000 if default_limit else None,
            "persistence_mode": _try(nvml.nvmlDeviceGetPersistenceMode, h),
            "max_sm_clock_mhz": _try(nvml.nvmlDeviceGetMaxClockInfo, h, nvml.NVML_CLOCK_SM),
            "max_mem_clock_mhz": _try(nvml.nvmlDeviceGetMaxClockInfo, h, nvml.NVML_CLOCK_MEM),
            "app_sm_clock_mhz": _try(nvml.nvmlDeviceGetApplicationsClock, h, nvml.NVML_CLOCK_SM),
            "app_mem_clock_mhz": _try(nvml.nvmlDeviceGetApplicationsClock, h, nvml.NVML_CLOCK_MEM),
            "locked_clocks_hint": "clocks are not changed by tracegen; see `nvidia-smi -q -d CLOCK`",
        }
    finally:
        _try(nvml.nvmlShutdown)


class _GilHoldingReader:
    """The eight NVML reads of a sample through ``ctypes.PyDLL`` (the GIL stays held)."""

    def __init__(self, nvml, handle):
        lib = nvml.nvmlLib
        py = ctypes.PyDLL(getattr(lib, "_name", "libnvidia-ml.so.1"), handle=lib._handle)
        self.handle = handle
        self.sm, self.mem, self.temp_sensor = nvml.NVML_CLOCK_SM, nvml.NVML_CLOCK_MEM, nvml.NVML_TEMPERATURE_GPU
        self.clock = py.nvmlDeviceGetClockInfo
        self.power = py.nvmlDeviceGetPowerUsage
        self.temperature = py.nvmlDeviceGetTemperature
        self.pstate = py.nvmlDeviceGetPerformanceState
        self.util = py.nvmlDeviceGetUtilizationRates
        try:
            self.reasons = py.nvmlDeviceGetCurrentClocksEventReasons
        except AttributeError:  # drivers before r535
            self.reasons = py.nvmlDeviceGetCurrentClocksThrottleReasons
        self._u = [ctypes.c_uint() for _ in range(4)]
        self._i = ctypes.c_int()
        self._ull = ctypes.c_ulonglong()
        self._util = nvml.c_nvmlUtilization_t()
        self._refs = [ctypes.byref(x) for x in (*self._u, self._i, self._ull, self._util)]

    def sample(self) -> dict[str, Any]:
        h = self.handle
        u0, u1, u2, u3, i, ull, util = self._refs
        sm = self._u[0].value if self.clock(h, self.sm, u0) == 0 else None
        mem = self._u[1].value if self.clock(h, self.mem, u1) == 0 else None
        power = self._u[2].value / 1000 if self.power(h, u2) == 0 else None
        temp = self._u[3].value if self.temperature(h, self.temp_sensor, u3) == 0 else None
        pstate = self._i.value if self.pstate(h, i) == 0 else None
        reasons = self._ull.value if self.reasons(h, ull) == 0 else None
        ok = self.util(h, util) == 0
        return {
            "sm_clock_mhz": sm, "mem_clock_mhz": mem, "power_w": power, "temperature_c": temp, "pstate": pstate,
            "clock_event_reasons": reasons,
            "gpu_util_pct": self._util.gpu if ok else None, "mem_util_pct": self._util.memory if ok else None,
        }


class GpuSampler(Sampler):
    """NVML samples of one GPU every ``interval_s`` on a background thread (source ``gpuN``).

    ``fast=True`` (default) reads through ``_GilHoldingReader`` where the bindings allow it;
    ``reader`` says which path is in use ("pydll" or "pynvml")."""

    source = "gpu0"

    def __init__(self, device_index: int = 0, interval_s: float = 0.05, fast: bool = True):
        super().__init__(interval_s)
        self.source = f"gpu{device_index}"
        self.nvml = _init()
        self.handle = self.nvml.nvmlDeviceGetHandleByIndex(device_index)
        n = self.nvml
        self._reasons = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or n.nvmlDeviceGetCurrentClocksThrottleReasons
        self._fast = None
        if fast:
            try:
                self._fast = _GilHoldingReader(n, self.handle)
                self._fast.sample()
            except Exception:  # noqa: BLE001 - bindings without nvmlLib, missing symbols: use pynvml
                self._fast = None
        self.reader = "pydll" if self._fast is not None else "pynvml"

    def sample(self) -> dict[str, Any]:
        if self._fast is not None:
            return self._fast.sample()
        return self.sample_pynvml()

    def sample_pynvml(self) -> dict[str, Any]:
        """The same sample through pynvml's own functions (GIL released around each call)."""
        n, h = self.nvml, self.handle
        util = _try(n.nvmlDeviceGetUtilizationRates, h)
        power = _try(n.nvmlDeviceGetPowerUsage, h)
        return {
            "sm_clock_mhz": _try(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_SM),
            "mem_clock_mhz": _try(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_MEM),
            "power_w": power / 1000 if power is not None else None,
            "temperature_c": _try(n.nvmlDeviceGetTemperature, h, n.NVML_TEMPERATURE_GPU),
            "pstate": _try(n.nvmlDeviceGetPerformanceState, h),
            "clock_event_reasons": _try(self._reasons, h),
            "gpu_util_pct": util.gpu if util else None,
            "mem_util_pct": util.memory if util else None,
        }

    def close(self) -> None:
        _try(self.nvml.nvmlShutdown)
