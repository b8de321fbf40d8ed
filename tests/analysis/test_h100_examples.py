"""Findings on the real traces recorded on the H100 (examples/, torch backend, see examples/README.md).

What the H100 showed: SM clock pinned at 1980 MHz throughout, eager batch-1 inference launch-bound
(host enqueue as long as the GPU time), CUDA graphs GPU-bound, and host-side slow-downs after
sleeping gaps. The analysis must say so, and must not invent a clock drop or a power cap.
"""

from pathlib import Path

import polars as pl
import pytest

from tracegen.analysis.findings import analyze
from tracegen.trace.reader import read_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUNS = ["h100-small-batch", "h100-small-idle", "h100-large-idle", "h100-small-nsys", "h100-tiny-sync"]


@pytest.fixture(scope="module", params=RUNS)
def example(request):
    run = read_run(EXAMPLES / request.param)
    return run, analyze(run)


def _ids(analysis):
    return {f.id for f in analysis.findings}


def test_flat_clocks_never_blamed(example):
    run, analysis = example
    sm = run.telemetry.filter(pl.col("source") == "gpu0")["sm_clock_mhz"]
    assert sm.min() == sm.max()  # the recorded truth of these traces
    assert "explained-gpu-clock" not in _ids(analysis)
    assert "power-thermal-cap" not in _ids(analysis)


def test_findings_are_serialisable_and_name_real_variants(example):
    run, analysis = example
    known = set(run.variants["variant_id"].to_list())
    for f in analysis.findings:
        assert set(f.variants) <= known
        assert f.to_dict()["id"] == f.id


def test_eager_batch_one_is_enqueue_bound_and_graph_is_not():
    run = read_run(EXAMPLES / "h100-small-idle")
    analysis = analyze(run)
    bound = [f for f in analysis.findings if f.id == "enqueue-bound"]
    assert bound
    launches = dict(zip(run.variants["variant_id"], run.variants["launch"]))
    assert {launches[v] for f in bound for v in f.variants} == {"eager"}


def test_batch_scaling_on_the_h100():
    analysis = analyze(read_run(EXAMPLES / "h100-small-batch"))
    s = analysis.scaling
    assert s["saturation_class"] in {"scaling", "launch-bound"}
    assert s["throughput_gain"] > 1.5  # the GPU is not saturated by one 768x448 image
    assert 1 < s["knee_batch"] <= 64
    assert "batch-saturated-at-batch-1" not in _ids(analysis)


def test_sleep_gap_slowdown_is_attributed_to_the_host():
    analysis = analyze(read_run(EXAMPLES / "h100-tiny-sync"))
    assert "explained-host-wakeup" in _ids(analysis)
