"""Arrival patterns and schedules as recorded by real CPU runs: the idle step holds the real gap,
and the gaps follow the pattern that was asked for."""

import json
import textwrap

import numpy as np
import polars as pl
import pytest
from scipy import stats

from tracegen.analysis.stats import iterations
from tracegen.errors import ConfigError
from tracegen.run.config import build_config
from tracegen.run.runner import run_benchmark
from tracegen.trace.reader import read_run

from tests.run.timing import needs_timing

BASE = dict(model="builtin:tiny", backend="onnxruntime", threads=1, scenarios="idle", warmup=2, telemetry_ms=20)


@pytest.fixture(scope="module")
def paced_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("arrivals")
    config = build_config(flags=dict(BASE, pipeline="infer", arrival="poisson", idle_ms="0,10", fps="50",
                                     schedule="0:20,4:20:spin,0:20", pacing="sleep", iterations=120,
                                     out=str(out), run_id="paced"))
    result = run_benchmark(config, progress=False)
    assert result.status == "complete"
    run = read_run(result.run_dir)
    it = iterations(run.steps).join(run.variants.select("variant_id", "name", "idle_ms",
                                                        "pacing"), on="variant_id")
    return run, it


def _variant(run, words):
    rows = run.variants.filter(pl.col("name").str.contains(words, literal=True))
    assert rows.height == 1, run.variants["name"].to_list()
    return rows["variant_id"][0]


def test_the_plan_has_one_variant_per_pattern(paced_run):
    run, _ = paced_run
    names = run.variants["name"].to_list()
    assert len(names) == 4
    assert any("no-gap" in n for n in names) and any("poisson10ms-sleep" in n for n in names)
    assert any("fps50-sleep" in n for n in names) and any("schedule[0:20,4:20:spin,0:20]" in n for n in names)


def test_poisson_gaps_pass_a_goodness_of_fit_test(paced_run, small_run):
    needs_timing()
    run, it = paced_run
    gaps = it.filter(pl.col("variant_id") == _variant(run, "poisson10ms"))["idle_ns"].to_numpy() / 1e6
    assert len(gaps) == 122
    assert stats.kstest(gaps, "expon", args=(0, 10.0)).pvalue > 0.001
    # The recorded gaps are the real ones: a fixed 5 ms spin (the session's small run) fails it.
    fixed = iterations(read_run(small_run).steps).join(read_run(small_run).variants, on="variant_id")
    fixed = fixed.filter((pl.col("pacing") == "spin"))["idle_ns"].to_numpy() / 1e6
    assert stats.kstest(fixed, "expon", args=(0, 5.0)).pvalue < 1e-4


def test_fps_deadlines_hold_the_frame_interval(paced_run):
    needs_timing()
    run, it = paced_run
    rows = it.filter(pl.col("variant_id") == _variant(run, "fps50")).sort("iteration")
    starts = rows["start_ns"].to_numpy() / 1e6  # end of the gap: when the frame's work starts
    intervals = np.diff(starts)
    assert abs(np.median(intervals) - 20.0) < 1.0
    assert abs(np.mean(intervals) - 20.0) < 1.5
    # the gap is what remains of the interval: work + gap ~ 20 ms whenever the work is shorter
    busy = (rows["latency_ns"].to_numpy()[:-1] + rows["idle_ns"].to_numpy()[1:]) / 1e6
    assert np.median(np.abs(busy - 20.0)) < 1.0


def test_schedule_changes_where_the_manifest_says(paced_run):
    run, it = paced_run
    vid = _variant(run, "schedule[")
    entry = next(a for a in run.manifest["arrivals"] if a["variant_id"] == vid)
    assert entry["schedule"]["change_points"] == [22, 42]
    assert [s["pacing"] for s in entry["schedule"]["segments"]] == ["none", "spin", "none"]
    v = run.variants.filter(pl.col("variant_id") == vid)
    assert v["iterations"][0] == 60 and v["idle_ms"][0] == 4.0
    gaps = it.filter(pl.col("variant_id") == vid).sort("iteration")["idle_ns"].to_numpy() / 1e6
    assert len(gaps) == 62
    assert np.median(gaps[:22]) < 0.5 and np.median(gaps[42:]) < 0.5  # medians: shared machines preempt
    assert np.median(gaps[22:42]) > 1.0  # Poisson gaps of mean 4 ms in the middle segment
    needs_timing()
    assert 2.0 < gaps[22:42].mean() < 7.0


def test_bursts_and_user_steps(tmp_path):
    user = tmp_path / "mine.py"
    user.write_text(textwrap.dedent("""
        import time
        def pre(frames, out):
            assert frames[0].dtype.name == "uint8" and frames[0].shape[2] == 3
            out[...] = 0.5
            time.sleep(0.002)
        def post(output):
            time.sleep(0.001)
    """))
    config = build_config(flags=dict(BASE, arrival="burst:3", idle_ms="5", pacing="spin", iterations=12,
                                     preprocess=f"{user}:pre", postprocess=f"{user}:post", out=str(tmp_path / "runs"),
                                     run_id="burst"))
    run = read_run(run_benchmark(config, progress=False).run_dir)
    it = iterations(run.steps).sort("iteration")
    gaps = it["idle_ns"].to_numpy() / 1e6
    waited = gaps >= 5.0
    assert waited.tolist() == [i % 3 == 0 for i in range(14)]
    assert np.median(gaps[~waited]) < 1.0
    assert it["preprocess_host_ns"].min() >= 2_000_000 and it["postprocess_host_ns"].min() >= 1_000_000
    pipeline = run.manifest["pipeline"]
    assert pipeline["preprocess"] == f"user: {user}:pre" and pipeline["postprocess"] == f"user: {user}:post"
    assert json.loads((run.path / "manifest.json").read_text())["config"]["arrival"] == "burst:3"


@pytest.mark.parametrize("flags, words", [
    (dict(preprocess="device"), "--preprocess device needs a GPU backend"),
    (dict(schedule="0:5,5:5:keepalive"), "keepalive, which needs a GPU"),
    (dict(fps="30", scenarios="batch"), "add --scenario idle"),
    (dict(preprocess="no_such_module_abc:fn"), "cannot import no_such_module_abc"),
])
def test_bad_pipeline_options_write_nothing(tmp_path, flags, words):
    config = build_config(flags={**BASE, "iterations": 3, **flags, "out": str(tmp_path / "runs")})
    with pytest.raises(ConfigError, match=words):
        run_benchmark(config, progress=False)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("flags, words", [
    ({"schedule": "0:10,20"}, "--schedule segment '20' is not GAP_MS:ITERATIONS"),
    ({"arrival": "weibull"}, "unknown arrival pattern 'weibull'"),
    ({"fps": "0"}, "--fps must be between"),
    ({"preprocess": "gpu"}, "--preprocess 'gpu' is neither host, device nor MODULE:FUNCTION"),
])
def test_bad_values_fail_at_parse_time(flags, words):
    with pytest.raises(ConfigError) as err:
        build_config(flags=flags)
    assert words in str(err.value)


def test_python_api_takes_the_functions_themselves(tmp_path):
    from tracegen.run.config import RunConfig

    seen = {"pre": 0, "post": 0}

    def prep(frames, out):
        seen["pre"] += len(frames)
        out[...] = 0.0

    def post(output):
        seen["post"] += output.shape[0]

    config = RunConfig(model="builtin:tiny", backend="onnxruntime", threads=1, scenarios=("idle",), idle_ms=(0.0,),
                       iterations=4, warmup=1, preprocess=prep, postprocess=post, out=str(tmp_path), run_id="api")
    run = read_run(run_benchmark(config, progress=False).run_dir)
    assert seen == {"pre": 5, "post": 5}
    assert run.manifest["config"]["preprocess"].endswith("test_python_api_takes_the_functions_themselves.<locals>.prep")
    assert run.manifest["pipeline"]["postprocess"].startswith("user: ")
