"""Attribution on synthetic traces where the extra time was injected into a known step."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.analysis.runs import baseline, const, make_run, paced
from tracegen.analysis import attribution as A
from tracegen.analysis.stats import iterations, variant_stats


def _attr(run, tiers=None):
    iters = iterations(run.steps)
    stats = variant_stats(run.variants, iters)
    return A.attribute(run.variants, iters, stats, run.telemetry, tiers), iters, stats


@pytest.mark.parametrize("inject, expected", [
    ({"pre_ms": 0.3 + 1.0}, "preprocess"),
    ({"postprocess": None, "post_ms": 0.05 + 0.8}, "postprocess"),
    ({"infer_gpu_ms": 1.0 + 1.2}, "infer_gpu"),  # the GPU computes longer: the host waits longer in sync
    ({"infer_host_ms": 0.03 + 0.27, "infer_gpu_ms": 0.9 * 1.05}, "infer_host"),  # H100 graph after a gap
    ({"sync_extra_ms": 0.6}, "sync_wait"),  # the host wakes up late from the wait, GPU unchanged
    ({"h2d_gpu_ms": 0.1 + 1.5}, "h2d"),
    ({"d2h_gpu_ms": 0.03 + 1.0}, "d2h"),
])
def test_dominant_step_is_where_the_time_was_injected(tmp_path, inject, expected):
    inject = {k: v for k, v in inject.items() if v is not None}
    base_kw = {"infer_host_ms": 0.03, "infer_gpu_ms": 0.9} if expected == "infer_host" else {}
    run = make_run(tmp_path, [baseline(**base_kw), paced("sleep", 20, iterations=120, **{**base_kw, **inject})])
    attr, _, _ = _attr(run)
    a = attr[1]
    assert a["baseline_id"] == 0 and a["baseline_kind"] == "continuous"
    d = a["vs_baseline"]
    assert d["dominant_step"] == expected, d["components_ms"]
    assert d["dominant_share"] > 0.7
    # the components add up to the latency difference (means over the same iterations)
    assert sum(d["components_ms"].values()) == pytest.approx(d["extra_ms"], abs=1e-6)


def test_launch_bound_growth_is_booked_to_the_enqueue_not_the_gpu(tmp_path):
    # eager, launch-bound: the GPU waits for the host, so its events grow with the enqueue
    kw = {"launch": "eager", "infer_host_ms": 6.0, "infer_gpu_ms": 6.1}
    run = make_run(tmp_path, [baseline(**kw), paced("sleep", 20, iterations=120, **{**kw, "infer_host_ms": 6.6,
                                                                                      "infer_gpu_ms": 6.7})])
    d = _attr(run)[0][1]["vs_baseline"]
    assert d["dominant_step"] == "infer_host"
    assert d["components_ms"]["infer_gpu"] == pytest.approx(0.0, abs=0.05)


def test_host_backend_has_no_gpu_components(tmp_path):
    kw = {"gpu": False, "infer_host_ms": 2.0}
    run = make_run(tmp_path, [baseline(**kw), paced("sleep", 5, iterations=80, **{**kw, "infer_host_ms": 2.8})])
    d = _attr(run)[0][1]["vs_baseline"]
    assert set(d["components_ms"]) == {"preprocess", "infer_host", "postprocess"}
    assert d["dominant_step"] == "infer_host"


def test_baseline_falls_back_to_the_lowest_latency_variant(tmp_path):
    run = make_run(tmp_path, [paced("sleep", 20, iterations=40, pre_ms=2.0), paced("spin", 20, iterations=40)])
    attr, _, _ = _attr(run)
    assert attr[0]["baseline_kind"] == "lowest-latency" and attr[0]["baseline_id"] == 1
    assert not attr[0]["contrasts"]  # contrasts need a continuous baseline


def test_batch_scenario_variant_serves_as_baseline(tmp_path):
    run = make_run(tmp_path, [baseline(scenario="batch", iterations=40), paced("sleep", 20, iterations=40)])
    assert _attr(run)[0][1]["baseline_id"] == 0


def test_contrasts_spin_keepalive_graph(tmp_path):
    # sleep adds 1.0 ms to the host; spin removes 90 % of it; keepalive none; graph (its own baseline) halves it
    specs = [
        baseline(launch="eager"),
        paced("sleep", 20, iterations=120, launch="eager", pre_ms=1.3),
        paced("spin", 20, iterations=120, launch="eager", pre_ms=0.4),
        paced("keepalive", 20, iterations=120, launch="eager", pre_ms=1.3),
        baseline(launch="graph"),
        paced("sleep", 20, iterations=120, launch="graph", pre_ms=0.8),
    ]
    run = make_run(tmp_path, specs)
    c = _attr(run)[0][1]["contrasts"]
    assert c["spin_vs_sleep"]["removed_fraction"] == pytest.approx(0.9, abs=0.05)
    assert c["keepalive_vs_sleep"]["removed_fraction"] == pytest.approx(0.0, abs=0.05)
    assert c["graph_vs_eager"]["removed_fraction"] == pytest.approx(0.5, abs=0.05)
    assert c["spin_vs_sleep"]["ratio_of_medians"] > 1.3
    assert c["graph_vs_eager"]["alt_variant"] == 5


def test_telemetry_join_clock_correlation_and_reasons(tmp_path):
    # slow iterations (index >= 105) run at 800 MHz instead of 1590; GpuIdle set only during gaps
    slow = lambda i: np.where(i >= 105, 2.0, 1.0)
    spec = paced("sleep", 20, iterations=200, infer_gpu_ms=slow,
                 clock=lambda i, busy: np.where(i >= 105, 800.0, 1590.0),
                 reasons=lambda i, busy: np.where(busy, 0, 1), tel_ms=3.0)
    run = make_run(tmp_path, [baseline(clock=const(1590.0), reasons=const(0)), spec])
    iters = iterations(run.steps)
    samples = A.samples_to_iterations(iters, run.telemetry)
    assert samples.height > 0 and samples["busy"].any() and (~samples["busy"]).any()
    # every sample is inside the iteration it was joined to
    assert (samples["t_ns"] >= samples["begin_ns"]).all() and (samples["t_ns"] <= samples["end_ns"]).all()

    class T:  # two tiers: the labels the tier module would give
        levels = (1.0, 2.0)
        labels = (iterations(run.steps).filter((pl.col("variant_id") == 1) & ~pl.col("warmup"))["iteration"]
                  .to_numpy() >= 105).astype(int)

    attr, _, _ = _attr(run, {1: T()})
    a = attr[1]
    assert a["clock"]["corr_latency_sm_clock"] < -0.7
    assert a["clock"]["reasons"]["gpu_idle"] == 1.0  # every iteration has samples in its gap
    assert "gpu_idle" not in a["clock"]["reasons_busy"]  # never while it worked
    tc = a["tiers"]["clock"]
    assert tc["busy_only"] and tc["fast"]["sm_clock_mhz"] == 1590 and tc["slow"]["sm_clock_mhz"] == 800
    assert tc["sm_clock_drop"] == pytest.approx(1 - 800 / 1590)
    assert a["tiers"]["decomposition"]["dominant_step"] == "infer_gpu"


def test_flat_clock_has_no_correlation(tmp_path):
    spec = paced("sleep", 20, iterations=100, clock=const(1980.0), reasons=const(1))
    run = make_run(tmp_path, [baseline(clock=const(1980.0), reasons=const(1)), spec])
    a = _attr(run)[0][1]
    assert a["clock"]["corr_latency_sm_clock"] is None
    assert a["clock"]["reasons"] == {"gpu_idle": 1.0}
    assert a["clock_vs_baseline"]["sm_clock_drop"] == pytest.approx(0.0)


def test_gap_samples_never_compare_against_a_gapless_baseline(tmp_path):
    # samples only during the gap (idle clock 600 MHz): comparing them with the baseline's busy clock would
    # invent a clock drop, so the comparison is refused
    spec = paced("sleep", 20, iterations=60, clock=lambda i, busy: np.where(busy, np.nan, 600.0))
    run = make_run(tmp_path, [baseline(clock=const(1590.0)), spec])
    iters = iterations(run.steps)
    per = A.iteration_telemetry(A.samples_to_iterations(iters, run.telemetry))
    m, b = A.measured(iters, 1), A.measured(iters, 0)
    assert A.compare_clocks(m, b, per, allow_gap_samples=False) is None


def test_reason_bits_match_nvml():
    pynvml = pytest.importorskip("pynvml")
    names = {"gpu_idle": "GpuIdle", "applications_clocks": "ApplicationsClocksSetting", "sw_power_cap": "SwPowerCap",
             "hw_slowdown": "HwSlowdown", "sync_boost": "SyncBoost", "sw_thermal_slowdown": "SwThermalSlowdown",
             "hw_thermal_slowdown": "HwThermalSlowdown", "hw_power_brake_slowdown": "HwPowerBrakeSlowdown",
             "display_clock": "DisplayClockSetting", "board_limit": "BoardLimit", "reliability": "Reliability"}
    for key, nv in names.items():
        const_ = getattr(pynvml, f"nvmlClocksEventReason{nv}", None)
        if const_ is None:
            const_ = getattr(pynvml, f"nvmlClocksThrottleReason{nv}")
        assert A.REASON_BITS[key] == const_, key
