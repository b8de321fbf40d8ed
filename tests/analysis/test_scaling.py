"""Batch scaling on curves with known answers: knee, saturation class, budget, clocks per batch."""

from __future__ import annotations

import polars as pl
import pytest

from tests.analysis.runs import (
    EAGER_H100,
    XAVIER_PER_IMAGE,
    batch_series,
    const,
    make_run,
)
from tracegen.analysis import scaling as SC
from tracegen.analysis.stats import iterations, variant_stats


def _stats(latency: dict[int, float], *, enqueue: dict[int, float] | None = None, gpu: dict[int, float] | None = None,
           launch: str = "eager", p99_factor: float = 1.05) -> pl.DataFrame:
    """A variant_stats-like frame with exact medians (no noise)."""
    rows = []
    for vid, (b, lat) in enumerate(sorted(latency.items())):
        rows.append({"variant_id": vid, "name": f"batch b{b}", "scenario": "batch", "batch": b, "idle_ms": 0.0,
                     "pacing": "none", "launch": launch, "sync_mode": "auto", "pipeline": "infer", "n": 30,
                     "p50_ms": lat, "p99_ms": lat * p99_factor, "mean_ms": lat,
                     "infer_host_p50_ms": (enqueue or {}).get(b), "infer_gpu_p50_ms": (gpu or {}).get(b)})
    return pl.DataFrame(rows)


XAVIER = {b: v * b for b, v in XAVIER_PER_IMAGE.items()}


def test_saturated_at_batch_1_like_the_xavier_seed():
    s = SC.batch_scaling(_stats(XAVIER))
    assert s["saturation_class"] == SC.SATURATED
    assert s["throughput_gain"] == pytest.approx(11.23 / 8.98, rel=1e-6)
    # throughput/best: b1 0.80, b2 0.85, b4 0.907 -> knee at 4
    assert s["knee_batch"] == 4
    assert s["best_batch"] == 32
    assert s["curve"][0]["efficiency"] == pytest.approx(1.0)
    assert s["curve"][-1]["efficiency"] == pytest.approx(11.23 / 8.98 / 32)


def test_launch_bound_eager_like_the_h100():
    enq = {b: 0.95 * lat for b, lat in EAGER_H100.items()}
    s = SC.batch_scaling(_stats(EAGER_H100, enqueue=enq, gpu=dict(EAGER_H100)))
    assert s["saturation_class"] == SC.LAUNCH_BOUND
    # throughput: b32 7.27, b64 9.14, b128 9.28, b256 9.48 img/ms; 90 % of 9.48 = 8.53 -> knee 64
    assert s["knee_batch"] == 64
    assert s["best_batch"] == 256
    assert s["throughput_gain"] == pytest.approx((256 / 27.0) / (1 / 4.2))


def test_flat_latency_but_gpu_bound_is_scaling_not_launch_bound():
    enq = {b: 0.05 for b in EAGER_H100}  # the GPU is busy: the host enqueue is tiny
    s = SC.batch_scaling(_stats(EAGER_H100, enqueue=enq, gpu=dict(EAGER_H100)))
    assert s["saturation_class"] == SC.SCALING


def test_gpu_bound_scaling():
    lat = {b: 1.0 + 0.5 * b for b in (1, 2, 4, 8, 16, 32)}
    s = SC.batch_scaling(_stats(lat, enqueue={b: 0.05 for b in lat}, gpu=lat))
    assert s["saturation_class"] == SC.SCALING
    top = 32 / 17.0
    assert s["knee_batch"] == next(b for b in sorted(lat) if b / lat[b] >= 0.9 * top)


def test_host_backend_flat_latency_is_launch_bound():
    lat = {1: 2.0, 2: 2.1, 4: 2.3, 8: 3.0, 16: 5.0}
    assert SC.batch_scaling(_stats(lat))["saturation_class"] == SC.LAUNCH_BOUND


def test_undetermined_with_a_narrow_span():
    s = SC.batch_scaling(_stats({1: 5.0, 2: 9.0}))
    assert s["saturation_class"] == SC.UNDETERMINED


def test_budget_picks_the_largest_batch_whose_p99_fits():
    st = _stats(EAGER_H100, p99_factor=1.1)
    s = SC.batch_scaling(st, budget_ms=10.0)  # p99: b64 7.7, b128 15.2
    assert s["largest_batch_within_budget"] == 64
    assert s["budget_stat"] == "p99"
    assert s["budget_throughput_ips"] == pytest.approx(64 * 1000 / 7.0)
    none = SC.batch_scaling(st, budget_ms=4.0)
    assert none["largest_batch_within_budget"] is None and "no batch size" in none["budget_note"]
    assert "budget_ms" not in SC.batch_scaling(st)


def test_groups_are_kept_apart_and_the_primary_has_most_batches():
    a = _stats(EAGER_H100)
    b = _stats({1: 1.0, 2: 1.6, 4: 2.9}, launch="graph").with_columns(pl.col("variant_id") + 100)
    s = SC.batch_scaling(pl.concat([a, b]))
    assert s["group"]["launch"] == "eager"
    assert {g["group"]["launch"] for g in s["groups"]} == {"eager", "graph"}
    assert len(s["groups"]) == 2


def test_no_batch_variants_gives_none():
    st = _stats({1: 1.0}).with_columns(pl.lit("idle").alias("scenario"))
    assert SC.batch_scaling(st) is None


def test_from_a_written_run_with_clocks_and_power(tmp_path):
    specs = batch_series(XAVIER, iterations=15)
    for i, s in enumerate(specs):
        s.clock = const(1980.0)
        s.power = const(100.0 + 20 * i)
        s.tel_ms = 5.0
    run = make_run(tmp_path, specs)
    stats = variant_stats(run.variants, iterations(run.steps))
    s = SC.batch_scaling(stats, run.telemetry, budget_ms=50)
    assert s["saturation_class"] == SC.SATURATED
    assert [p["batch"] for p in s["curve"]] == [1, 2, 4, 8, 16, 32]
    assert [p["sm_clock_mhz"] for p in s["curve"]] == [1980.0] * 6
    assert [p["power_w"] for p in s["curve"]] == [100.0 + 20 * i for i in range(6)]
    assert s["power_w_range"] == "100-200"
    assert s["largest_batch_within_budget"] == 4  # 4 x 9.9 = 39.6 ms; 8 x 9.4 = 75 ms
