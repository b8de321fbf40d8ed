"""GPU telemetry and static facts through NVML (nvidia-ml-py, imported as pynvml).

One sample reads SM and memory clocks, power, temperature, performance state, the clock event
reasons and utilisation: a handful of driver calls costing on the order of a millisecond in
all (benchmarks/RESULTS.md), done on the sampler thread, never in the timed loop.
"""

from __future__ import annotations

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


class GpuSampler(Sampler):
    source = "gpu0"

    def __init__(self, device_index: int = 0, interval_s: float = 0.05):
        super().__init__(interval_s)
        self.source = f"gpu{device_index}"
        self.nvml = _init()
        self.handle = self.nvml.nvmlDeviceGetHandleByIndex(device_index)
        n = self.nvml
        self._reasons = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or n.nvmlDeviceGetCurrentClocksThrottleReasons

    def sample(self) -> dict[str, Any]:
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
