"""Kernel data in the analysis: slow vs fast iterations, the verdicts, the finding and its pointer."""

from __future__ import annotations

import polars as pl
import pytest

from tests.analysis.runs import baseline, make_run, paced, step_at
from tests.importers.fake_nsys import Plan, from_run
from tracegen.analysis.facts import collect_facts
from tracegen.analysis.findings import analyze
from tracegen.analysis.kernels import comparisons
from tracegen.analysis.nsys_nav import where_to_look
from tracegen.importers.nsys import import_into_run
from tracegen.trace.reader import read_run

N, WARM, AT = 160, 5, 85  # tiers change at iteration index AT (warm-up included)


def _imported(tmp_path, specs, plan=Plan()):
    run = make_run(tmp_path, specs)
    import_into_run(run.path, from_run(run, tmp_path / "r.sqlite", plan))
    return read_run(run.path)


def _only(run):
    f = collect_facts(run)
    cs = comparisons(f, f.nsys)
    return f, cs


@pytest.mark.parametrize("spec, plan, verdict", [
    # every kernel of the slow tier 1.5x longer: the events and kernels grow together
    (dict(infer_gpu_ms=step_at(AT, 0.5, base=1.0)), Plan(), "clocks"),
    # one kernel of four 4x longer from AT on (events follow the kernels)
    (dict(infer_gpu_ms=step_at(AT, 0.75, base=1.0)), Plan(kernel_ns=250_000, slow_kernel=("kernel_2", AT, 4.0)),
     "few-kernels"),
    # kernels unchanged, the infer step's event window 0.5 ms longer: the GPU waits inside it
    (dict(infer_gpu_ms=step_at(AT, 0.5, base=1.0)), Plan(kernel_ns=250_000), "host"),
    # only host preprocessing got slower
    (dict(pre_ms=step_at(AT, 0.6, base=0.3)), Plan(kernel_ns=250_000), "outside-gpu"),
])
def test_tier_verdicts(tmp_path, spec, plan, verdict):
    run = _imported(tmp_path, [baseline(iterations=N, warmup=WARM, noise=0.01, **spec)], plan)
    f, cs = _only(run)
    assert len(f.tiers[0].levels) >= 2
    assert [c.kind for c in cs] == ["tiers"] and cs[0].verdict == verdict
    c = cs[0]
    assert min(c.slow_iterations) >= AT - 2 and max(c.fast_iterations) < AT + 2
    if verdict == "few-kernels":
        top = c.kernels.row(0, named=True)
        assert top["name"] == "kernel_2" and top["ratio"] == pytest.approx(4.0, rel=0.01)
        assert c.kernels.filter(pl.col("name") != "kernel_2")["ratio"].is_between(0.99, 1.01).all()
    if verdict == "clocks":
        assert c.kernels["ratio"].is_between(1.4, 1.6).all()


def test_paced_variant_is_compared_with_its_baseline(tmp_path):
    specs = [baseline(iterations=40, warmup=3, noise=0.01),
             paced("sleep", 5, iterations=40, warmup=3, noise=0.01, infer_gpu_ms=1.4)]
    run = _imported(tmp_path, specs, Plan(kernel_ns=250_000))
    f, cs = _only(run)
    assert [(c.kind, c.slow_variant, c.fast_variant, c.verdict) for c in cs] == [("gap", 1, 0, "host")]
    finding = next(x for x in analyze(run).findings if x.id == "kernel-time")
    assert finding.variants == (1, 0) and finding.evidence["verdict"] == "host"
    assert "same kernel time" in finding.title
    assert finding.evidence["bubble_slow_ms"] - finding.evidence["bubble_fast_ms"] == pytest.approx(0.4, abs=0.03)
    # the pointer names the ranges, the iterations and where they are on the nsys timeline
    assert '"idle b1 5ms-sleep graph sync-auto full"' in finding.nsys_hint and "on the timeline" in finding.nsys_hint


def test_no_kernel_data_no_finding(tmp_path):
    run = make_run(tmp_path, [baseline(iterations=N, warmup=WARM, infer_gpu_ms=step_at(AT, 0.5, base=1.0))])
    assert collect_facts(run).nsys is None
    assert "kernel-time" not in {x.id for x in analyze(run).findings}


def test_pointer_without_and_with_an_import(tmp_path):
    bare = where_to_look({}, "idle b1 20ms-sleep graph", ((100, 120),), ("infer", "sync"), run_dir="runs/r1")
    assert 'range "idle b1 20ms-sleep graph", iterations 100-120' in bare.text and '"infer", "sync"' in bare.text
    assert bare.commands[0].startswith("tracegen run --nsys") and not bare.windows
    run = _imported(tmp_path, [baseline(iterations=10, warmup=1)], Plan(offset=3_000_000_000))
    f = collect_facts(run)
    p = where_to_look(run.manifest, "x", ((2, 4),), run_dir=run.path, variant_id=0, nsys_steps=f.nsys.steps)
    (label, a, b), = p.windows
    steps = run.steps.filter(pl.col("iteration").is_between(2, 4))
    assert label == "iterations 2-4"
    assert a == pytest.approx((steps["host_start_ns"].min() + 3e9) / 1e9, abs=1e-5)
    assert b == pytest.approx(((steps["host_start_ns"] + steps["host_ns"]).max() + 3e9) / 1e9, abs=1e-5)
    assert any(c.startswith("sqlite3 -header -column") for c in p.commands)
