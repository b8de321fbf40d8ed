"""Every rule: a synthetic run that must trigger it and one that must not.

The runs follow what real hardware showed: the seed's Tesla T4 (4.7 -> 10.1 ms tiers after
50-150 iterations with 20 ms sleeps), the H100 (CUDA graph 0.9 ms GPU, eager launch-bound at
batch 1, SM clock flat at 1980 MHz with GpuIdle set while idle), the Xavier's flat batch scaling.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.analysis.runs import (
    EAGER_H100,
    XAVIER_PER_IMAGE,
    baseline,
    batch_series,
    const,
    make_run,
    paced,
    ramp,
    step_at,
)
from tracegen.analysis import rules as R
from tracegen.analysis.facts import max_sm_clock
from tracegen.analysis.findings import Finding, collect_facts

W = 5  # warm-up iterations of the idle specs (Spec default)
GPU_IDLE, SW_POWER_CAP, HW_THERMAL = 0x1, 0x4, 0x40


def _facts(tmp_path, specs, budget_ms=None, **kw):
    return collect_facts(make_run(tmp_path, specs, **kw), budget_ms=budget_ms)


def _idle_reasons(i, busy):
    """The H100 at rest: GpuIdle while nothing runs, nothing while it works."""
    return np.where(busy, 0, GPU_IDLE)


def _fires(rule, facts) -> Finding:
    f = rule(facts)
    assert f is not None, f"{rule.__name__} did not fire"
    assert isinstance(f, Finding)
    f.to_dict()
    return f


# -- runs shaped like the hardware -----------------------------------------------------------------
T4_GPU = ramp(55 + W, 155 + W, 4.4, 9.7)  # the seed: normal ~50 iterations, linear slow-down, stable at ~2x


def t4_clock(i, busy):
    """The governor: the SM clock falls as the GPU time grows (busy samples), idles low in the gap."""
    return np.where(busy, 1590.0 * 4.4 / T4_GPU(i), 300.0)


@pytest.fixture(scope="module")
def t4(tmp_path_factory):
    """Seed-like T4 run: tiers after a 20 ms sleep, the clock drops with them; busy-waiting does not help."""
    tel = {"clock": t4_clock, "reasons": _idle_reasons, "tel_ms": 3.0}
    specs = [baseline(infer_gpu_ms=4.4, iterations=150, clock=const(1590.0), reasons=const(0), tel_ms=3.0),
             paced("sleep", 20, infer_gpu_ms=T4_GPU, iterations=300, **tel),
             paced("spin", 20, infer_gpu_ms=T4_GPU, iterations=300, seed=1, **tel)]
    return _facts(tmp_path_factory.mktemp("t4"), specs)


@pytest.fixture(scope="module")
def h100_eager(tmp_path_factory):
    """H100, eager, launch-bound: 6.1 ms back to back, 6.7 ms after 20 ms sleeps, 6.8 with busy-wait;
    SM clock flat at 1980 MHz with GpuIdle set at rest."""
    tel = {"clock": const(1980.0), "reasons": _idle_reasons, "tel_ms": 3.0}
    kw = {"launch": "eager", "pipeline": "infer"}
    specs = [baseline(infer_host_ms=6.0, infer_gpu_ms=6.1, iterations=150, **kw, **tel),
             paced("sleep", 20, infer_host_ms=6.6, infer_gpu_ms=6.7, iterations=200, **kw, **tel),
             paced("spin", 20, infer_host_ms=6.7, infer_gpu_ms=6.8, iterations=200, **kw, **tel)]
    return _facts(tmp_path_factory.mktemp("h100e"), specs)


@pytest.fixture(scope="module")
def h100_graph(tmp_path_factory):
    """H100, CUDA graph: enqueue 0.03 ms back to back, 0.3 ms after a gap; GPU 0.914 -> 0.966 ms."""
    tel = {"clock": const(1980.0), "reasons": _idle_reasons, "tel_ms": 3.0}
    specs = [baseline(infer_host_ms=0.03, infer_gpu_ms=0.914, iterations=150, **tel),
             paced("sleep", 20, infer_host_ms=0.30, infer_gpu_ms=0.966, iterations=200, **tel),
             paced("spin", 20, infer_host_ms=0.30, infer_gpu_ms=0.964, iterations=200, **tel)]
    return _facts(tmp_path_factory.mktemp("h100g"), specs)


# -- idle-delay tiers ----------------------------------------------------------------------------------
def test_tiers_fire_on_the_seed_shape(t4):
    f = _fires(R.rule_idle_tiers, t4)
    assert f.severity == "critical"
    assert f.variants[0] == 1 and f.variants[1] == 0  # the sleep variant, then its baseline
    assert f.evidence["ratio_to_baseline"] > 1.8
    assert 55 + W <= f.evidence["onset_iteration"] <= 160 + W
    assert f.iterations and f.iterations[0][0] >= 55 + W
    assert f.chart == "latency_trace"
    assert "busy-waiting" in f.summary and "does not remove" in f.summary  # the spin variant ruled it out
    assert not any(m.title.startswith("Busy-wait") for m in f.mitigations)  # measured not to help: not advised


def test_no_tiers_when_the_levels_are_close(tmp_path):
    # 4.7 -> 5.1 ms (1.085x): below the 1.15x threshold
    specs = [baseline(infer_gpu_ms=4.4, iterations=120), paced("sleep", 20, infer_gpu_ms=step_at(100 + W, 0.4, 4.4),
                                                                iterations=200)]
    assert R.rule_idle_tiers(_facts(tmp_path, specs)) is None


def test_no_tiers_on_flat_noise(h100_graph, h100_eager):
    assert R.rule_idle_tiers(h100_graph) is None
    assert R.rule_idle_tiers(h100_eager) is None


# -- explained by GPU clock ----------------------------------------------------------------------------
def test_clock_drop_explains_the_seed_tiers(t4):
    f = _fires(R.rule_explained_gpu_clock, t4)
    assert f.evidence["sm_clock_fast_mhz"] > 1400 and f.evidence["sm_clock_slow_mhz"] < 900
    assert f.evidence["explained_share"] > 0.8
    assert f.evidence["corr_latency_sm_clock"] < -0.5
    assert "GpuIdle" not in f.evidence["reasons_slow"]  # busy samples: GpuIdle in the gap is not evidence
    assert f.mitigations[0].action.startswith("sudo nvidia-smi -lgc 1590,1590")
    assert "-rgc" in f.mitigations[0].action


def test_flat_clocks_never_claim_a_clock_drop(tmp_path, h100_eager, h100_graph):
    assert R.rule_explained_gpu_clock(h100_eager) is None
    assert R.rule_explained_gpu_clock(h100_graph) is None
    # tiers in GPU compute, clock flat at max, GpuIdle set in every gap: still no clock finding
    tel = {"clock": const(1980.0), "reasons": _idle_reasons, "tel_ms": 3.0}
    specs = [baseline(infer_gpu_ms=1.0, iterations=120, **tel),
             paced("sleep", 20, infer_gpu_ms=step_at(80 + W, 1.0, 1.0), iterations=200, **tel)]
    facts = _facts(tmp_path, specs)
    assert R.rule_idle_tiers(facts) is not None
    assert R.rule_explained_gpu_clock(facts) is None


# -- explained by host wake-up -------------------------------------------------------------------------
def _host_run(tmp_path, spin_helps: bool, with_spin: bool = True):
    slow_pre = step_at(60 + W, 1.5, 0.3)
    specs = [baseline(iterations=120), paced("sleep", 20, pre_ms=slow_pre, iterations=200)]
    if with_spin:
        specs.append(paced("spin", 20, pre_ms=0.3 if spin_helps else slow_pre, iterations=200, seed=3))
    return _facts(tmp_path, specs)


def test_host_wakeup_measured_by_spin(tmp_path):
    f = _fires(R.rule_explained_host_wakeup, _host_run(tmp_path, spin_helps=True))
    assert f.evidence["measured_by_spin_variant"] is True
    assert f.evidence["removed_fraction"] > 0.9
    busy = f.mitigations[0]
    assert busy.title.startswith("Busy-wait") and busy.measured and "removes" in busy.evidence
    assert "perf_counter_ns" in busy.action


def test_host_wakeup_inferred_without_spin_variant(tmp_path):
    f = _fires(R.rule_explained_host_wakeup, _host_run(tmp_path, spin_helps=False, with_spin=False))
    assert f.evidence["measured_by_spin_variant"] is False
    assert not f.mitigations[0].measured


def test_no_host_wakeup_when_spin_does_not_help(tmp_path, h100_eager, t4):
    assert R.rule_explained_host_wakeup(_host_run(tmp_path, spin_helps=False)) is None
    assert R.rule_explained_host_wakeup(h100_eager) is None  # busy-wait 6.8 ms vs sleep 6.7 ms
    assert R.rule_explained_host_wakeup(t4) is None


# -- explained by GPU idling ---------------------------------------------------------------------------
def _idle_gpu_run(tmp_path, keepalive: str | None):
    tel = {"clock": const(1980.0), "reasons": _idle_reasons, "tel_ms": 3.0}
    specs = [baseline(infer_gpu_ms=1.0, iterations=120, **tel), paced("sleep", 20, infer_gpu_ms=1.6, iterations=150, **tel)]
    if keepalive:
        specs.append(paced("keepalive", 20, infer_gpu_ms=1.0 if keepalive == "helps" else 1.6, iterations=150, seed=5, **tel))
    return _facts(tmp_path, specs)


def test_gpu_idling_measured_by_keepalive(tmp_path):
    f = _fires(R.rule_explained_gpu_idling, _idle_gpu_run(tmp_path, "helps"))
    assert f.evidence["measured_by_keepalive_variant"] is True
    assert f.mitigations[0].title.startswith("Keep the GPU busy") and f.mitigations[0].measured


def test_gpu_idling_inferred_from_gpu_compute_at_a_steady_clock(tmp_path):
    f = _fires(R.rule_explained_gpu_idling, _idle_gpu_run(tmp_path, None))
    assert f.evidence["measured_by_keepalive_variant"] is False
    assert f.evidence["sm_clock_mhz"] == 1980


def test_no_gpu_idling_when_keepalive_does_not_help_or_clock_dropped(tmp_path, t4, h100_eager):
    assert R.rule_explained_gpu_idling(_idle_gpu_run(tmp_path, "useless")) is None
    assert R.rule_explained_gpu_idling(t4) is None  # the clock dropped: not an unchanged-clock GPU slowdown
    assert R.rule_explained_gpu_idling(h100_eager) is None  # the extra time is the host enqueue


def test_no_gpu_idling_without_clock_telemetry(tmp_path):
    specs = [baseline(infer_gpu_ms=1.0, iterations=100), paced("sleep", 20, infer_gpu_ms=1.6, iterations=100)]
    assert R.rule_explained_gpu_idling(_facts(tmp_path, specs)) is None


# -- slow after a gap ----------------------------------------------------------------------------------
def test_slow_after_gap_on_the_h100_eager_shape(h100_eager):
    f = _fires(R.rule_slow_after_gap, h100_eager)
    assert f.severity == "info"  # ~1.1x
    assert f.evidence["dominant_step"] == "infer_host"
    assert f.variants[:2] == (1, 0)
    assert "does not remove" in f.summary and "submission path" in f.summary


def test_slow_after_gap_warning_and_attribution(tmp_path):
    f = _fires(R.rule_slow_after_gap, _idle_gpu_run(tmp_path, None))
    assert f.severity == "warning"
    assert f.evidence["dominant_step"] == "infer_gpu"
    assert f.evidence["ratio"] > 1.25


def test_no_slow_after_gap_when_only_a_few_percent(h100_graph, tmp_path):
    assert R.rule_slow_after_gap(h100_graph) is None  # the enqueue overlaps the GPU: +5 % latency
    specs = [baseline(iterations=100), paced("sleep", 20, iterations=100)]
    assert R.rule_slow_after_gap(_facts(tmp_path, specs)) is None


def test_tiers_alone_are_not_a_gap_penalty(t4):
    # the first ~55 iterations after each gap run at the baseline: not "every iteration is slow"
    assert R.rule_slow_after_gap(t4) is None


# -- steady-state rules -----------------------------------------------------------------------------------
def test_enqueue_bound_fires_on_launch_bound_eager(h100_eager):
    f = _fires(R.rule_enqueue_bound, h100_eager)
    assert f.variants == (0,)  # only the continuous variant; gaps do not count
    assert f.evidence["ratio"] == pytest.approx(6.0 / 6.1, rel=0.05)
    assert f.mitigations[0].title.startswith("Launch the network as a CUDA graph")
    assert "execute_async_v3" in f.mitigations[0].action and "cudaGraphLaunch" in f.mitigations[0].action


def test_enqueue_bound_is_measured_when_a_graph_variant_exists(tmp_path):
    specs = [baseline(launch="eager", infer_host_ms=6.0, infer_gpu_ms=6.1, iterations=50),
             baseline(launch="graph", infer_host_ms=0.03, infer_gpu_ms=0.914, iterations=50)]
    f = _fires(R.rule_enqueue_bound, _facts(tmp_path, specs))
    assert f.mitigations[0].measured and "graph p50" in f.mitigations[0].evidence


def test_no_enqueue_bound_with_graphs(h100_graph):
    assert R.rule_enqueue_bound(h100_graph) is None


def test_transfer_bound(tmp_path):
    specs = [baseline(h2d_gpu_ms=0.8, d2h_gpu_ms=0.1, infer_gpu_ms=1.0, iterations=60)]
    f = _fires(R.rule_transfer_bound, _facts(tmp_path, specs))
    assert f.evidence["ratio"] == pytest.approx(0.9, rel=0.05)


def test_no_transfer_bound(h100_graph):
    assert R.rule_transfer_bound(h100_graph) is None


def test_unstable_gpu_time(tmp_path):
    rng = np.random.default_rng(7)
    jitter = rng.lognormal(0, 0.3, 400)
    specs = [baseline(infer_gpu_ms=lambda i: 1.0 * jitter[i], iterations=200)]
    f = _fires(R.rule_unstable_gpu_time, _facts(tmp_path, specs))
    assert f.evidence["cov"] > 0.2


def test_stable_gpu_time_with_a_few_spikes_is_not_unstable(tmp_path):
    spikes = lambda i: np.where(np.isin(i, (40, 90, 150)), 5.0, 1.0)
    specs = [baseline(infer_gpu_ms=spikes, iterations=200)]
    assert R.rule_unstable_gpu_time(_facts(tmp_path, specs)) is None


# -- warm-up -----------------------------------------------------------------------------------------------
def test_warmup_too_short(tmp_path):
    slow_start = lambda i: np.where(i < W + 25, 1.6, 1.0)
    specs = [baseline(infer_gpu_ms=slow_start, iterations=200)]
    f = _fires(R.rule_warmup_too_short, _facts(tmp_path, specs))
    assert 20 <= f.evidence["slow_iterations"] <= 30
    assert f.iterations[0][0] == W
    assert f.evidence["suggested_warmup"] >= W + 25
    assert f.mitigations[0].action.startswith(f"tracegen run --warmup {f.evidence['suggested_warmup']}")


def test_warmup_single_slow_first_iteration(tmp_path):
    first = lambda i: np.where(i == W, 4.0, 1.0)
    f = _fires(R.rule_warmup_too_short, _facts(tmp_path, [baseline(infer_gpu_ms=first, iterations=100)]))
    assert f.evidence["slow_iterations"] == 1


def test_no_warmup_finding_on_a_steady_run_or_late_slowdown(h100_graph, t4):
    assert R.rule_warmup_too_short(h100_graph) is None
    assert R.rule_warmup_too_short(t4) is None  # tiers go fast -> slow: not a warm-up


# -- power / thermal ---------------------------------------------------------------------------------------
def _cap_run(tmp_path, bits: int, warmup_only: bool = False):
    def reasons(i, busy):
        on = (i < W) if warmup_only else (i % 2 == 0)
        return np.where(busy & on, bits, 0)
    specs = [baseline(iterations=150, clock=const(1700.0), reasons=reasons, power=const(300.0),
                      temperature=const(83.0), tel_ms=0.5)]
    return _facts(tmp_path, specs, manifest={"gpu": {"name": "T", "power_limit_w": 300.0}})


def test_power_cap_is_a_warning(tmp_path):
    f = _fires(R.rule_power_thermal_cap, _cap_run(tmp_path, SW_POWER_CAP))
    assert f.severity == "warning" and f.evidence["sw_power_cap_share"] > 0.2
    assert f.evidence["power_limit_w"] == 300.0
    assert any("nvidia-smi -pl" in m.action for m in f.mitigations)


def test_thermal_slowdown_is_critical(tmp_path):
    f = _fires(R.rule_power_thermal_cap, _cap_run(tmp_path, HW_THERMAL))
    assert f.severity == "critical"
    assert any("TEMPERATURE" in m.action for m in f.mitigations)


def test_gpu_idle_reason_or_warmup_caps_are_not_caps(tmp_path, h100_eager):
    assert R.rule_power_thermal_cap(h100_eager) is None  # GpuIdle at rest
    assert R.rule_power_thermal_cap(_cap_run(tmp_path, SW_POWER_CAP, warmup_only=True)) is None


# -- batch scaling -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def xavier(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("xavier"), batch_series({b: v * b for b, v in XAVIER_PER_IMAGE.items()}))


def test_batch_saturated(xavier):
    f = _fires(R.rule_batch_saturated, collect_facts(xavier))
    assert f.chart == "batch_scaling"
    assert f.evidence["throughput_gain"] == pytest.approx(1.25, abs=0.03)
    assert f.evidence["knee_batch"] in (4, 8)  # b4 sits at 90.6 % of the best throughput, within the noise


def test_batch_not_saturated_when_launch_bound(tmp_path):
    specs = batch_series(EAGER_H100, enqueue_ms={b: 0.95 * v for b, v in EAGER_H100.items()}, iterations=10)
    facts = _facts(tmp_path, specs)
    assert R.rule_batch_saturated(facts) is None
    assert facts.scaling["saturation_class"] == "launch-bound"


def test_batch_budget(xavier):
    fits = _fires(R.rule_batch_budget, collect_facts(xavier, budget_ms=50))
    assert fits.severity == "info" and fits.evidence["recommended_batch"] == 4
    none = _fires(R.rule_batch_budget, collect_facts(xavier, budget_ms=5))
    assert none.severity == "warning"
    assert R.rule_batch_budget(collect_facts(xavier)) is None


def test_lock_clocks_uses_the_manifest_max_clock_when_recorded(t4):
    from dataclasses import replace

    facts = replace(t4, manifest={"gpu": {"name": "Tesla T4", "max_clocks_mhz": {"sm": 1590, "mem": 5001}}})
    assert max_sm_clock(facts) == (1590.0, "manifest")
    assert max_sm_clock(t4) == (pytest.approx(1590.0), "observed")
    f = R.rule_explained_gpu_clock(facts)
    assert "the GPU's max SM clock" in f.mitigations[0].action


def test_sync_wait_after_sleep_points_at_the_sync_mode(tmp_path):
    # blocking sync: the host wakes up late from the wait after a sleep; the spin-sync variants do not
    specs = [baseline(sync_mode="blocking", iterations=100),
             paced("sleep", 20, sync_mode="blocking", sync_extra_ms=0.8, iterations=120),
             baseline(sync_mode="spin", iterations=100),
             paced("sleep", 20, sync_mode="spin", iterations=120)]
    f = _fires(R.rule_explained_host_wakeup, _facts(tmp_path, specs))
    assert f.variants[0] == 1 and f.evidence["measured_by_spin_variant"] is False
    assert "sync wait" in f.summary
    sync = next(m for m in f.mitigations if "SCHED_SPIN" in m.action)
    assert sync.measured and "sync-spin" in sync.evidence


def test_slow_start_then_fast_is_a_warmup_not_idle_tiers(tmp_path):
    specs = [baseline(infer_gpu_ms=1.0, iterations=100),
             paced("sleep", 20, infer_gpu_ms=lambda i: np.where(i < W + 40, 2.0, 1.0), iterations=200)]
    facts = _facts(tmp_path, specs)
    assert R.rule_idle_tiers(facts) is None
    assert R.rule_warmup_too_short(facts) is not None


def test_tiers_in_the_middle_name_their_iterations(tmp_path):
    # fast, a slow stretch in the middle, fast again (the start tier is the fast one)
    slow_mid = lambda i: np.where((i >= W + 60) & (i < W + 140), 2.0, 1.0)
    facts = _facts(tmp_path, [baseline(infer_gpu_ms=1.0, iterations=100),
                              paced("sleep", 20, infer_gpu_ms=slow_mid, iterations=200)])
    f = _fires(R.rule_idle_tiers, facts)
    assert "None" not in f.summary
    assert f.iterations[0][0] == pytest.approx(W + 60, abs=2) and f.iterations[0][1] == pytest.approx(W + 139, abs=2)
