"""The runner on the CPU backend: what it records, and that it records it truthfully."""

import polars as pl
import pytest

from tracegen.analysis.stats import iterations
from tracegen.run import build_config
from tracegen.errors import ConfigError, ModelError
from tracegen.run import run_benchmark
from tracegen.trace.reader import read_run

from tests.conftest import SMALL_RUN_FLAGS


def test_every_variant_and_iteration_is_recorded(small_run):
    run = read_run(small_run)
    assert run.status == "complete"
    v = run.variants
    # batch 1,2,4 + idle: 0 ms baseline, 5 ms x (sleep, spin)
    assert v.height == 6
    assert sorted(v.filter(pl.col("scenario") == "batch")["batch"].to_list()) == [1, 2, 4]
    idle = v.filter(pl.col("scenario") == "idle")
    assert sorted(zip(idle["idle_ms"], idle["pacing"])) == [(0.0, "none"), (5.0, "sleep"), (5.0, "spin")]
    assert v["status"].unique().to_list() == ["complete"]
    counts = run.steps.group_by("variant_id").agg(pl.col("iteration").n_unique().alias("n"))
    expected = v.select("variant_id", (pl.col("warmup") + pl.col("iterations")).alias("n"))
    assert counts.sort("variant_id").equals(expected.sort("variant_id").cast(counts.schema))


def test_cpu_steps_are_the_applicable_ones(small_run):
    run = read_run(small_run)
    steps = set(run.steps["step"].cast(pl.String).unique().to_list())
    assert steps == {"idle", "preprocess", "infer", "postprocess"}
    assert run.manifest["pipeline"]["not_applicable"].keys() == {"h2d", "d2h", "sync"}
    assert run.steps["gpu_ns"].null_count() == run.steps.height  # no device time on the CPU


def test_warmup_is_flagged_not_dropped(small_run):
    run = read_run(small_run)
    it = iterations(run.steps)
    per = it.group_by("variant_id").agg(pl.col("warmup").sum().alias("w"))
    assert per["w"].unique().to_list() == [SMALL_RUN_FLAGS["warmup"]]
    first = it.filter(pl.col("iteration") < SMALL_RUN_FLAGS["warmup"])
    assert first["warmup"].all()


def test_idle_gap_is_measured(small_run):
    run = read_run(small_run)
    it = iterations(run.steps).join(run.variants, on="variant_id")
    gaps = it.group_by("pacing").agg((pl.col("idle_ns").median() / 1e6).alias("ms"))
    ms = dict(zip(gaps["pacing"], gaps["ms"]))
    assert ms["none"] < 0.5
    assert 5.0 <= ms["spin"] < 6.0  # a busy-wait ends right at its deadline
    assert 5.0 <= ms["sleep"] < 15.0  # sleep overshoots by the OS's wake-up latency


def test_steps_are_ordered_in_time(small_run):
    run = read_run(small_run)
    s = run.steps.sort("variant_id", "iteration", "step")
    ends = s.with_columns((pl.col("host_start_ns") + pl.col("host_ns")).alias("end"))
    nxt = ends.with_columns(pl.col("host_start_ns").shift(-1).over("variant_id").alias("next_start"))
    assert (nxt.drop_nulls("next_start").select((pl.col("next_start") >= pl.col("end")).all()).item())
    assert (run.steps["host_ns"] >= 0).all()


def test_larger_batches_take_longer_per_iteration(small_run):
    run = read_run(small_run)
    it = iterations(run.steps).filter(~pl.col("warmup")).join(run.variants, on="variant_id")
    by_batch = it.filter(pl.col("scenario") == "batch").group_by("batch").agg(pl.col("infer_host_ns").median()).sort("batch")
    med = by_batch["infer_host_ns"].to_list()
    assert med[0] < med[-1]


def test_manifest_describes_the_run(small_run):
    m = read_run(small_run).manifest
    assert m["model"]["spec"] == "builtin:tiny"
    assert m["model"]["flops_per_image"] > 0 and m["model"]["params"] > 0
    assert len(m["model"]["sha256"]) == 64
    assert m["backend"]["name"] == "onnxruntime" and "onnxruntime" in m["backend"]["versions"]
    assert m["host"]["cores_logical"] >= 1 and m["host"]["python"]
    assert m["config"]["batch_sizes"] == [1, 2, 4]
    assert m["started_utc"] and m["ended_utc"] and m["status"] == "complete"


def test_telemetry_is_on_the_steps_clock(small_run):
    run = read_run(small_run)
    t = run.telemetry
    assert t.height > 0 and set(t["source"].unique()) == {"cpu"}
    last_step = (run.steps["host_start_ns"] + run.steps["host_ns"]).max()
    assert t["t_ns"].min() >= 0 and t["t_ns"].max() <= last_step + 2_000_000_000


@pytest.mark.parametrize(
    "flags, error, words",
    [
        ({"model": "builtin:nope"}, ModelError, "unknown built-in model"),
        ({"pacing": "keepalive"}, ConfigError, "keepalive needs a GPU"),
        ({"launch": "graph"}, ConfigError, "no 'graph' launch mode"),
        ({"sync_mode": "spin"}, ConfigError, "GPU backends"),
        ({"precision": "fp16"}, ConfigError, "does not run fp16"),
    ],
)
def test_bad_input_writes_nothing(tmp_path, flags, error, words):
    config = build_config(flags={**SMALL_RUN_FLAGS, **flags, "out": str(tmp_path / "runs")})
    with pytest.raises(error, match=words):
        run_benchmark(config, progress=False)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_model_file_errors(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x00\x01 this is not a protobuf")
    for spec, words in [(str(tmp_path / "missing.onnx"), "not found"), (str(bad), "not an ONNX model")]:
        config = build_config(flags={**SMALL_RUN_FLAGS, "model": spec, "out": str(tmp_path / "runs")})
        with pytest.raises(ModelError, match=words):
            run_benchmark(config, progress=False)
