"""Charts: built from the frames, valid Vega-Lite, the data in the spec equal to the frames, and
long series thinned without losing tiers or change points."""

from __future__ import annotations

import functools
import json

import numpy as np
import polars as pl
import pytest

from tracegen.analysis.stats import iterations, step_medians, variant_stats
from tracegen.report import charts, vegalite
from tracegen.report.downsample import KEEP_AROUND, downsample
from tracegen.trace.reader import read_run

from .conftest import BATCH_MS, SLOW_MS, STEP_AT, WARMUP


@functools.lru_cache(maxsize=1)
def vega_lite_validator():
    """The Vega-Lite JSON schema of the specs' version (altair ships it; the report no longer
    imports altair to build charts)."""
    jsonschema = pytest.importorskip("jsonschema")
    schema_module = pytest.importorskip("altair.vegalite.v6.schema")
    assert schema_module.SCHEMA_VERSION.lstrip("v").split(".")[0] == vegalite.VERSION.split(".")[0]
    return jsonschema.Draft7Validator(schema_module.load_schema())


def spec_of(chart) -> dict:
    spec = json.loads(json.dumps(chart, allow_nan=False))  # plain JSON (no NaN, no numpy types)
    vega_lite_validator().validate(spec)  # and valid Vega-Lite
    assert spec["$schema"] == vegalite.SCHEMA
    return spec


def data_of(spec: dict) -> list[dict]:
    """Every inline data row of a (possibly nested) spec."""
    rows = []
    if isinstance(spec, dict):
        if isinstance(spec.get("data"), dict) and "values" in spec["data"]:
            rows += spec["data"]["values"]
        for key in ("layer", "hconcat", "vconcat", "spec"):
            part = spec.get(key)
            for sub in part if isinstance(part, list) else [part] if part else []:
                rows += data_of(sub)
        for d in (spec.get("datasets") or {}).values():
            rows += d
    return rows


def encodings(spec: dict) -> list[dict]:
    out = []
    if isinstance(spec, dict):
        if "encoding" in spec:
            out.append(spec["encoding"])
        for key in ("layer", "hconcat", "vconcat", "spec"):
            part = spec.get(key)
            for sub in part if isinstance(part, list) else [part] if part else []:
                out += encodings(sub)
    return out


@pytest.fixture(scope="module")
def idle(idle_run):
    run = read_run(idle_run)
    return run, iterations(run.steps)


# -- latency trace ------------------------------------------------------------------------------

def test_latency_trace_draws_every_iteration_of_every_variant(idle):
    run, iters = idle
    spec = spec_of(charts.latency_trace(iters, run.variants, [0, 1, 2]))
    assert spec["facet"]["row"]["field"] == "variant"
    points = [r for r in data_of(spec) if r["kind"] == "pt"]
    for vid in (0, 1, 2):
        label = charts.variant_label(run.variants.row(vid, named=True))
        mine = sorted((r for r in points if r["variant"] == label), key=lambda r: r["iteration"])
        truth = iters.filter(pl.col("variant_id") == vid).sort("iteration")
        assert [r["iteration"] for r in mine] == truth["iteration"].to_list()
        assert np.allclose([r["latency_ms"] for r in mine], truth["latency_ns"].to_numpy() / 1e6, atol=1e-4)
    assert spec["facet"]["row"]["sort"] == ["no gap, eager", "20 ms sleep, eager", "20 ms spin, eager"]


def test_latency_trace_marks_warmup_tiers_change_points_and_highlight(idle):
    run, iters = idle
    tiers = {1: {"levels": [5.0, 9.0], "onset_iteration": WARMUP + STEP_AT}}
    spec = spec_of(charts.latency_trace(iters, run.variants, [1], tiers=tiers, changepoints={1: [STEP_AT]},
                                        highlight={1: [(WARMUP + STEP_AT, WARMUP + STEP_AT + 9)]}))
    rows = data_of(spec)
    assert [r["end"] for r in rows if r["kind"] == "warm"] == [WARMUP]
    assert sorted(r["level_ms"] for r in rows if r["kind"] == "tier") == [5.0, 9.0]
    assert [r["iteration"] for r in rows if r["kind"] == "cp"] == [WARMUP + STEP_AT]  # measured index -> iteration
    assert [(r["start"], r["end"]) for r in rows if r["kind"] == "mark"] == [(WARMUP + STEP_AT, WARMUP + STEP_AT + 10)]
    colors = [e["color"] for e in encodings(spec) if "color" in e and isinstance(e["color"], dict) and "field" in e["color"]]
    assert colors and all(c["field"] == "pacing" for c in colors)
    assert colors[0]["scale"]["domain"] == ["none", "sleep", "spin", "keepalive"]


def test_a_cold_start_spike_does_not_squash_the_axis(idle):
    run, iters = idle
    spiky = iters.with_columns(pl.when((pl.col("variant_id") == 0) & (pl.col("iteration") == 0))
                               .then(500_000_000).otherwise(pl.col("latency_ns")).alias("latency_ns"))
    spec = spec_of(charts.latency_trace(spiky, run.variants, [0, 1]))
    clipped = [r for r in data_of(spec) if r["kind"] == "pt" and r["over"]]
    assert [(r["iteration"], r["max_ms"]) for r in clipped] == [(0, 500.0)]  # true value kept for the tooltip
    top = clipped[0]["y"]
    assert SLOW_MS < top < 2 * SLOW_MS


def test_latency_trace_of_unknown_variants_is_none(idle):
    run, iters = idle
    assert charts.latency_trace(iters, run.variants, [99]) is None


def _long_iters(n: int) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """One variant of n iterations: 5 ms, then from iteration `step` tiers 5 and 9 ms
    interleaved (2 of 3 slow), plus one 40 ms spike."""
    rng = np.random.default_rng(7)
    step = 123_457
    i = np.arange(n)
    slow = (i >= step) & (i % 3 != 0)
    ms = np.where(slow, 9.0, 5.0) * rng.lognormal(0, 0.01, n)
    ms[777_777] = 40.0
    iters = pl.DataFrame({"variant_id": np.zeros(n, np.int32), "iteration": i.astype(np.int32), "warmup": i < WARMUP,
                          "start_ns": i.astype(np.int64) * 20_000_000, "idle_ns": np.zeros(n, np.int64),
                          "latency_ns": np.round(ms * 1e6).astype(np.int64)})
    variants = pl.DataFrame([{"variant_id": 0, "name": "long", "scenario": "idle", "batch": 1, "idle_ms": 20.0,
                              "pacing": "sleep", "launch": "graph", "sync_mode": "auto", "pipeline": "full",
                              "warmup": WARMUP, "iterations": n - WARMUP, "completed": n, "status": "complete"}])
    return iters, variants, step


def test_a_million_iterations_draw_as_a_few_thousand_points_with_tiers_and_steps():
    iters, variants, step = _long_iters(1_000_000)
    tiers = {0: {"levels": [5.0, 9.0], "onset_iteration": step}}
    cps = {0: [step - WARMUP]}
    spec = spec_of(charts.latency_trace(iters, variants, [0], tiers=tiers, changepoints=cps))
    pts = [r for r in data_of(spec) if r["kind"] == "pt"]
    assert len(pts) <= charts.MAX_POINTS + 2 * KEEP_AROUND + 10
    # the step is drawn at its exact iteration, from raw points on both sides of it
    raw = sorted(r["iteration"] for r in pts if r["n"] == 1)
    assert set(range(step - KEEP_AROUND, step + KEEP_AROUND + 1)) <= set(raw)
    # both interleaved tiers stay visible after the step, as two bands of points
    after = np.array([r["latency_ms"] for r in pts if r["iteration"] > step + 1000])
    assert np.isclose(after, 5.0, rtol=0.05).sum() > 300 and np.isclose(after, 9.0, rtol=0.05).sum() > 300
    assert not ((after > 6) & (after < 8)).any()  # no fake level in between
    # the spike survives as its group's maximum, marked on the top edge with its true value
    [spike] = [r for r in pts if r["over"]]
    assert spike["max_ms"] == pytest.approx(40.0) and spike["hi"] < 40.0 and abs(spike["iteration"] - 777_777) < 1500


# -- downsampling -------------------------------------------------------------------------------------

def test_short_series_are_untouched():
    y = np.arange(10.0)
    d = downsample(np.arange(10), y, max_points=100)
    assert (d["y"] == y).all() and (d["n"] == 1).all()


def test_downsampling_keeps_interleaved_tiers_only_when_told_the_levels():
    rng = np.random.default_rng(0)
    n = 200_000
    y = np.where(rng.random(n) < 0.5, 4.7, 10.1) + rng.normal(0, 0.05, n)
    plain = downsample(np.arange(n), y, max_points=1000)
    tiered = downsample(np.arange(n), y, max_points=1000, levels=[4.7, 10.1])
    # a plain bucket median lands on one tier or between them; per-tier medians show both
    assert len({round(v) for v in tiered["y"]}) == 2 and {round(v) for v in tiered["y"]} == {5, 10}
    assert len(tiered["x"]) <= 1000 + 2
    assert plain["n"].sum() == tiered["n"].sum() == n
    assert (tiered["lo"] <= tiered["y"]).all() and (tiered["y"] <= tiered["hi"]).all()
    assert np.all(np.diff(tiered["x"]) >= 0)


def test_downsampling_keeps_change_points_raw_and_extremes_in_range():
    n = 1_000_000
    y = np.where(np.arange(n) < 400_123, 5.0, 9.0)
    y[654_321] = 100.0
    d = downsample(np.arange(n), y, max_points=1000, keep=[400_123])
    assert len(d["x"]) <= 1000 + 2 * KEEP_AROUND + 1
    for k in range(400_123 - KEEP_AROUND, 400_123 + KEEP_AROUND + 1):
        assert k in d["x"]
    assert d["hi"].max() == 100.0
    assert np.median(d["y"][d["x"] < 400_000]) == 5.0 and np.median(d["y"][d["x"] > 401_000]) == 9.0


# -- batch scaling -------------------------------------------------------------------------------------

def test_batch_scaling_per_image_and_throughput_equal_the_statistics(batch_run):
    run = read_run(batch_run)
    stats = variant_stats(run.variants, iterations(run.steps))
    spec = spec_of(charts.batch_scaling(stats, budget_ms=5.0, knee_batch=8))
    rows = {r["batch"]: r for r in data_of(spec) if "series" in r}
    assert sorted(rows) == sorted(BATCH_MS)
    for s in stats.iter_rows(named=True):
        r = rows[s["batch"]]
        assert r["per_image_ms"] == pytest.approx(s["p50_ms"] / s["batch"], abs=1e-4)
        assert r["throughput_ips"] == pytest.approx(s["throughput_ips"], rel=1e-6)
        assert r["p99_ms"] == pytest.approx(s["p99_ms"], abs=1e-4)
    xs = [e["x"] for e in encodings(spec) if e.get("x", {}).get("field") == "batch" and "scale" in e["x"]]
    assert xs and all(x["scale"] == {"type": "log", "base": 2, "nice": False} for x in xs)
    assert {"budget": 5.0, "text": "budget 5 ms"} in data_of(spec)
    assert any(r.get("text") == "knee: batch 8" for r in data_of(spec))
    assert len(spec["hconcat"]) == 3


def test_batch_scaling_without_batch_variants_is_none(idle):
    run, iters = idle
    assert charts.batch_scaling(variant_stats(run.variants, iters)) is None


# -- steps and telemetry ----------------------------------------------------------------------------------

def test_step_breakdown_has_host_and_gpu_bars_equal_to_the_medians(idle):
    run, iters = idle
    med = step_medians(iters)
    spec = spec_of(charts.step_breakdown(med, run.variants, [1, 0]))
    rows = [r for r in data_of(spec) if "median_ms" in r]
    assert {r["step"] for r in rows} == {"preprocess", "h2d", "infer", "d2h", "sync", "postprocess"}  # no idle gap
    assert {r["clock"] for r in rows} == {"host", "GPU"}
    names = dict(zip(run.variants["variant_id"], run.variants["name"]))
    for m in med.filter(pl.col("variant_id").is_in([0, 1]) & (pl.col("step") != "idle")).iter_rows(named=True):
        clock = "host" if m["clock"] == "host" else "GPU"
        [r] = [r for r in rows if r["variant"] == names[m["variant_id"]] and r["step"] == m["step"] and r["clock"] == clock]
        assert r["median_ms"] == pytest.approx(m["median_ms"], abs=1e-4)
    bar = next(e for e in encodings(spec) if "yOffset" in e)
    assert bar["y"]["sort"] == [names[1], names[0]] and bar["x"]["stack"] == "zero"


def test_telemetry_panels_for_the_columns_recorded(idle):
    run, iters = idle
    spec = spec_of(charts.telemetry_timeline(run.telemetry, run.variants, iters))
    titles = [e["y"]["title"] for e in encodings(spec) if e.get("y", {}).get("field") == "value"]
    assert titles == ["SM clock (MHz)", "GPU power (W)", "GPU temp. (°C)"]  # no CPU frequency recorded
    spans = [r for r in data_of(spec) if "odd" in r]
    assert [s["odd"] for s in spans] == [0, 1, 0]  # three variants, in the order they ran (one shared dataset)
    assert all(a["end"] <= b["start"] for a, b in zip(spans, spans[1:]))
    assert charts.telemetry_timeline(run.telemetry.clear(), run.variants, iters) is None


def test_clock_vs_latency_lines_up_clock_and_latency(idle):
    run, iters = idle
    spec = spec_of(charts.clock_vs_latency(iters, run.telemetry, run.variants, [1]))
    rows = data_of(spec)
    clocks = sorted({r["value"] for r in rows if "value" in r})
    assert clocks == [1200.0, 1590.0]
    assert sum(1 for r in rows if "latency_ms" in r) == iters.filter((pl.col("variant_id") == 1) & ~pl.col("warmup")).height


# -- the spec helpers -------------------------------------------------------------------------------

def test_spec_helpers_share_data_and_name_it_as_altair_does():
    data = vegalite.values([{"x": 1, "y": 2.5}, {"x": 2, "y": None}])
    a = vegalite.unit("point", {"x": vegalite.field("x:Q"), "y": vegalite.field("y:Q", title=None)}, data=data)
    b = vegalite.unit({"type": "rule", "color": "#222222"}, {"x": vegalite.field("x:Q")}, data=data)
    shared = vegalite.layer(a, b, width=300)
    assert shared["data"] is data and all("data" not in c for c in shared["layer"])  # one copy for both layers
    other = vegalite.unit("rule", {"y": vegalite.field("y:Q")}, data=vegalite.values([{"y": 1}]))
    assert all("data" in c for c in vegalite.layer(a, other)["layer"])
    spec = spec_of(vegalite.toplevel(vegalite.hconcat(shared, a)))
    assert spec["data"]["name"] in spec["datasets"] and len(spec["datasets"]) == 1
    assert spec["hconcat"][1]["encoding"]["y"] == {"field": "y", "title": None, "type": "quantitative"}
    api = pytest.importorskip("altair.vegalite.v6.api")
    assert vegalite.dataset_name(data["values"]) == api._dataset_name(data["values"])


def test_the_validator_rejects_a_bad_spec():
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        spec_of(vegalite.toplevel(vegalite.unit("no-such-mark", {"x": vegalite.field("x:Q")},
                                                data=vegalite.values([{"x": 1}]))))
