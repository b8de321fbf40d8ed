"""The GPU path end to end (torch backend on the pycuda device). Marked gpu: skipped without one."""

import polars as pl
import pytest

from tracegen.analysis.stats import iterations
from tracegen.run import build_config
from tracegen.run import run_benchmark
from tracegen.trace.reader import read_run

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu")
    config = build_config(flags=dict(
        model="builtin:tiny", backend="torch", precision="fp16", scenarios="batch,idle", batch_sizes="1,8",
        idle_ms="0,10", pacing="sleep,spin,keepalive", launch="eager,graph", sync_mode="spin,blocking",
        iterations=40, batch_iterations=20, warmup=5, out=str(out), run_id="gpu"))
    result = run_benchmark(config, progress=False)
    assert result.status == "complete"
    return read_run(result.run_dir)


def test_every_step_of_the_full_pipeline_is_recorded(gpu_run):
    steps = set(gpu_run.steps["step"].cast(pl.String).unique().to_list())
    assert steps == {"idle", "preprocess", "h2d", "infer", "d2h", "sync", "postprocess"}
    # device pre/postprocessing by default on a GPU (tests/gpu/test_device_prepost.py has the host path)
    on_gpu = gpu_run.steps.filter(pl.col("step").cast(pl.String).is_in(["h2d", "preprocess", "infer", "postprocess",
                                                                       "d2h"]))
    assert on_gpu["gpu_ns"].null_count() == 0 and (on_gpu["gpu_ns"] > 0).all()
    host_only = gpu_run.steps.filter(pl.col("step").cast(pl.String).is_in(["idle", "sync"]))
    assert host_only["gpu_ns"].null_count() == host_only.height


def test_graph_launch_enqueues_faster_than_eager(gpu_run):
    it = iterations(gpu_run.steps).filter(~pl.col("warmup")).join(gpu_run.variants, on="variant_id")
    base = it.filter((pl.col("scenario") == "batch") & (pl.col("batch") == 1) & (pl.col("sync_mode") == "spin"))
    enqueue = base.group_by("launch").agg(pl.col("infer_host_ns").median())
    e = dict(zip(enqueue["launch"], enqueue["infer_host_ns"]))
    assert e["graph"] < e["eager"]


def test_keepalive_gap_is_measured_and_telemetry_has_gpu_samples(gpu_run):
    it = iterations(gpu_run.steps).join(gpu_run.variants, on="variant_id")
    gaps = it.filter(pl.col("pacing") == "keepalive")["idle_ns"] / 1e6
    assert gaps.median() >= 10.0 and gaps.median() < 13.0
    gpu = gpu_run.telemetry.filter(pl.col("source") == "gpu0")
    assert gpu.height > 0 and gpu["sm_clock_mhz"].drop_nulls().len() > 0
    assert gpu_run.manifest["gpu"]["name"]
    assert gpu_run.manifest["telemetry"]["gpu"] is True


def test_sync_modes_are_applied(gpu_run):
    assert set(gpu_run.variants["sync_mode"].unique()) == {"spin", "blocking"}
    assert gpu_run.variants["status"].unique().to_list() == ["complete"]


def test_batch_too_large_is_a_clear_error(tmp_path):
    from tracegen.errors import BackendError

    config = build_config(flags=dict(model="builtin:large", backend="torch", precision="fp32", scenarios="batch",
                                     batch_sizes="4096", batch_iterations=1, warmup=0, out=str(tmp_path)))
    with pytest.raises(BackendError, match="does not fit in GPU memory"):
        run_benchmark(config, progress=False)
