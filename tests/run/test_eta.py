"""The run's ETA: planned gaps plus measured work, refined as variants run."""

import pytest

from tracegen.run.eta import PRIOR_ITERATION_S, PlannedVariant, RunEta, format_duration
from tracegen.run.plan import plan_variants
from tracegen.run.config import build_config, resolve
from tracegen.run.variant_pacing import run_eta

KEY = ("graph", "full", "auto")


def _eta(*plans):
    return RunEta(plans, clock=lambda: 0.0)


def test_before_any_measurement_the_plan_is_gaps_plus_a_prior():
    eta = _eta(PlannedVariant(0, 100, 2.0, None, KEY, 1), PlannedVariant(1, 100, 0.0, None, KEY, 4))
    assert eta.total_s() == pytest.approx(2.0 + 100 * PRIOR_ITERATION_S + 100 * PRIOR_ITERATION_S * 4)


def test_measured_cost_is_reused_and_scaled_to_larger_batches():
    eta = _eta(PlannedVariant(0, 100, 0.0, None, KEY, 2), PlannedVariant(1, 100, 1.0, None, KEY, 8),
               PlannedVariant(2, 50, 0.0, None, ("eager", "full", "auto"), 2))
    eta.observe(0, 40, 0.010)
    assert eta.cost(eta.plan[1]) == pytest.approx(0.040)  # batch 8 from batch 2, linearly (upper bound)
    assert eta.cost(eta.plan[2]) == pytest.approx(0.010)  # another launch: nearest measurement
    # 60 iterations left of variant 0, then 1 s of gaps + 100 x 40 ms, then 50 x 10 ms
    assert eta.remaining_s() == pytest.approx(0.6 + 5.0 + 0.5)
    eta.finish(0)
    eta.observe(1, 0, 0.020)  # measured: better than the extrapolation
    assert eta.remaining_s() == pytest.approx(1.0 + 2.0 + 0.5)


def test_frame_rate_variants_take_the_interval_or_the_work():
    eta = _eta(PlannedVariant(0, 100, 0.0, 1 / 30, KEY, 1))
    eta.observe(0, 0, 0.005)
    assert eta.total_s() == pytest.approx(100 / 30)
    eta.observe(0, 0, 0.050)  # slower than the frame rate: the work sets the pace
    assert eta.total_s() == pytest.approx(5.0)


def test_plan_of_the_default_gpu_run_fits_five_minutes():
    """The default GPU grid: its planned gaps alone, plus a generous 3 ms per iteration, stay
    well under the 5 minutes it is meant to take (the H200 timing is in examples/pipeline/)."""
    config = resolve(build_config(), "cuda")
    variants = plan_variants(config)
    eta = run_eta(variants)
    gaps = sum(p.idle_s for p in eta.plan.values())
    iterations = sum(p.iterations for p in eta.plan.values())
    assert len(variants) == 28
    assert min(v.iterations for v in variants if v.scenario == "idle") >= 300
    assert gaps + iterations * 0.003 < 240


def test_durations_read_like_a_clock():
    assert format_duration(59.6) == "1:00" and format_duration(3725) == "1:02:05"


def test_progress_prints_the_plan_first_and_time_left_per_variant(tmp_path):
    import io

    from rich.console import Console

    from tracegen.run.runner import run_benchmark

    buf = io.StringIO()
    config = build_config(flags=dict(model="builtin:tiny", backend="onnxruntime", threads=1, scenarios="idle",
                                     idle_ms="0,2", pacing="sleep", iterations=5, warmup=1, out=str(tmp_path),
                                     run_id="eta"))
    run_benchmark(config, console=Console(file=buf, width=200), progress=True)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("plan: 2 variants, about 0:")
    done = [line for line in lines if line.startswith("done")]
    assert len(done) == 2 and all("elapsed, ~" in line and "left)" in line for line in done)
