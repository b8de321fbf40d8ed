"""NVML telemetry: decoding and sampling against a stand-in pynvml; the real one on a GPU."""

from __future__ import annotations

import sys
import time
import types

import pytest

from tracegen.telemetry import nvml as nvml_mod
from tracegen.telemetry.nvml import CLOCK_EVENT_REASONS, GpuSampler, decode_reasons, gpu_static_info
from tracegen.trace.schema import TELEMETRY_SCHEMA


class NVMLError(Exception):
    pass


def make_fake_pynvml(*, new_api=True, broken=()):
    n = types.ModuleType("pynvml")
    n.state = {"init": 0, "shutdown": 0}
    n.NVMLError = NVMLError
    n.NVML_CLOCK_SM, n.NVML_CLOCK_MEM, n.NVML_TEMPERATURE_GPU = 1, 2, 0

    def call(name, value):
        def fn(*args):
            if name in broken:
                raise NVMLError(f"{name}: Not Supported")
            return value(*args) if callable(value) else value
        return fn

    n.nvmlInit = lambda: n.state.__setitem__("init", n.state["init"] + 1)
    n.nvmlShutdown = lambda: n.state.__setitem__("shutdown", n.state["shutdown"] + 1)
    n.nvmlDeviceGetHandleByIndex = call("handle", lambda i: f"h{i}")
    n.nvmlDeviceGetClockInfo = call("clock", lambda h, kind: 1980 if kind == 1 else 2619)
    n.nvmlDeviceGetPowerUsage = call("power", 71234)  # mW
    n.nvmlDeviceGetTemperature = call("temperature", 34)
    n.nvmlDeviceGetPerformanceState = call("pstate", 0)
    n.nvmlDeviceGetUtilizationRates = call("util", types.SimpleNamespace(gpu=42, memory=7))
    reasons = call("reasons", 0x1 | 0x4)
    if new_api:
        n.nvmlDeviceGetCurrentClocksEventReasons = reasons
    n.nvmlDeviceGetCurrentClocksThrottleReasons = reasons
    n.nvmlDeviceGetName = call("name", b"NVIDIA H100 80GB HBM3")
    n.nvmlDeviceGetUUID = call("uuid", "GPU-1234")
    n.nvmlSystemGetDriverVersion = call("driver", "580.65.06")
    n.nvmlSystemGetCudaDriverVersion = call("cuda", 13000)
    n.nvmlDeviceGetCudaComputeCapability = call("cc", (9, 0))
    n.nvmlDeviceGetMemoryInfo = call("memory", types.SimpleNamespace(total=80 << 30))
    n.nvmlDeviceGetPowerManagementLimit = call("limit", 700000)
    n.nvmlDeviceGetPowerManagementDefaultLimit = call("default_limit", 700000)
    n.nvmlDeviceGetPersistenceMode = call("persistence", 1)
    n.nvmlDeviceGetMaxClockInfo = call("max_clock", lambda h, kind: 1980 if kind == 1 else 2619)
    n.nvmlDeviceGetApplicationsClock = call("app_clock", lambda h, kind: 1755 if kind == 1 else 2619)
    return n


@pytest.fixture
def fake_nvml(monkeypatch):
    def install(**kw):
        n = make_fake_pynvml(**kw)
        monkeypatch.setitem(sys.modules, "pynvml", n)
        return n

    return install


def test_reason_bits_decode_to_names():
    assert decode_reasons(0) == [] and decode_reasons(None) == []
    assert decode_reasons(0x1 | 0x4 | 0x40) == ["GpuIdle", "SwPowerCap", "HwThermalSlowdown"]
    assert all(bit & (bit - 1) == 0 for bit in CLOCK_EVENT_REASONS)  # one bit each
    assert decode_reasons(0x1000) == []  # unknown bits are not invented


def test_sample_has_every_gpu_column_in_the_schemas_units(fake_nvml):
    fake_nvml()
    sampler = GpuSampler(0)
    assert sampler.reader == "pynvml"  # the stand-in has no nvmlLib to call through PyDLL
    row = sampler.sample()
    assert row == {"sm_clock_mhz": 1980, "mem_clock_mhz": 2619, "power_w": 71.234, "temperature_c": 34, "pstate": 0,
                   "clock_event_reasons": 0x5, "gpu_util_pct": 42, "mem_util_pct": 7}
    assert set(row) <= set(TELEMETRY_SCHEMA)


def test_old_bindings_fall_back_to_throttle_reasons(fake_nvml):
    fake_nvml(new_api=False)
    assert GpuSampler(0).sample()["clock_event_reasons"] == 0x5


def test_unsupported_queries_are_absent_not_fatal(fake_nvml):
    fake_nvml(broken={"power", "util", "reasons"})
    row = GpuSampler(0).sample()
    assert row["power_w"] is None and row["gpu_util_pct"] is None and row["clock_event_reasons"] is None
    assert row["sm_clock_mhz"] == 1980


def test_sampler_thread_records_on_the_run_clock(fake_nvml):
    n = fake_nvml()
    s = GpuSampler(1, interval_s=0.005)
    assert s.source == "gpu1"
    t0 = time.perf_counter_ns()
    s.start(t0)
    s.set_variant(3)
    time.sleep(0.05)
    rows = s.stop()
    s.close()
    assert len(rows) >= 3
    assert all(r["source"] == "gpu1" and 0 <= r["t_ns"] < 1e9 for r in rows)
    assert rows[-1]["variant_id"] == 3
    assert n.state["shutdown"] == 1


def test_static_info_for_the_manifest(fake_nvml):
    n = fake_nvml()
    info = gpu_static_info(0)
    assert info["name"] == "NVIDIA H100 80GB HBM3" and info["uuid"] == "GPU-1234"
    assert info["cuda"] == "13.0" and info["compute_capability"] == "9.0"
    assert info["memory_total_mb"] == 80 * 1024
    assert info["power_limit_w"] == 700.0 and info["default_power_limit_w"] == 700.0
    assert info["persistence_mode"] == 1
    assert (info["max_sm_clock_mhz"], info["app_sm_clock_mhz"]) == (1980, 1755)
    assert n.state["init"] == n.state["shutdown"] == 1


def test_static_info_survives_missing_queries(fake_nvml):
    fake_nvml(broken={"limit", "default_limit", "app_clock", "cc"})
    info = gpu_static_info(0)
    assert info["power_limit_w"] is None and info["app_sm_clock_mhz"] is None and info["compute_capability"] is None


def test_missing_nvml_has_an_install_hint(monkeypatch):
    from tracegen.errors import MissingDependency

    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(MissingDependency, match="nvidia-ml-py"):
        GpuSampler(0)


def _have_nvml_gpu() -> bool:
    from tracegen.backends.registry import cuda_gpu_count

    return cuda_gpu_count() > 0


@pytest.mark.gpu
@pytest.mark.skipif(not _have_nvml_gpu(), reason="needs an NVIDIA GPU with its driver")
def test_real_nvml_sample_and_static_info():
    s = GpuSampler(0)
    try:
        assert s.reader == "pydll"
        row, slow = s.sample(), s.sample_pynvml()
        assert set(row) == set(slow)
        for key in ("mem_clock_mhz", "pstate", "temperature_c"):
            assert abs(row[key] - slow[key]) <= 2, (key, row, slow)
        t = time.perf_counter()
        for _ in range(20):
            s.sample()
        per_sample = (time.perf_counter() - t) / 20
    finally:
        s.close()
    assert row["sm_clock_mhz"] > 0 and row["mem_clock_mhz"] > 0 and row["power_w"] > 0
    assert row["clock_event_reasons"] is not None and row["pstate"] is not None
    assert per_sample < 0.02  # far below the 50 ms default interval
    info = gpu_static_info(0)
    assert info["name"] and info["uuid"].startswith("GPU-") and info["compute_capability"]
    assert nvml_mod.decode_reasons(row["clock_event_reasons"]) is not None
