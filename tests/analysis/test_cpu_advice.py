"""Advice that fits the run: no finding of a CPU run, nor its findings on the page, mentions
CUDA, SMs, TensorRT or nvidia-smi; GPU runs get their backend's advice (torch vs TensorRT).

The CPU runs: the real onnxruntime run in examples/cpu-tiny-onnxruntime (see examples/README.md),
a real one with a gap schedule (tests/analysis/data/cpu-scheduled) and a synthetic onnxruntime run shaped to fire every rule a CPU run can fire (saturated
batching, a missed latency budget, tiers and a host wake-up after sleeping, a short warm-up)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.analysis.runs import baseline, batch_series, make_run, paced, step_at
from tracegen.analysis.findings import analyze
from tracegen.trace.reader import read_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GPU_WORDS = re.compile(r"CUDA|\bSMs?\b|TensorRT|trtexec|nvidia-smi|pycuda|execute_async", re.IGNORECASE)
CPU_MANIFEST = {"backend": {"name": "onnxruntime", "precision": "fp32", "providers": ["CPUExecutionProvider"]},
                "gpu": None, "host": {"cpu_model": "Test CPU"}}


def _cpu_specs():
    slow_pre = step_at(60 + 5, 2.0, 0.4)
    warm = lambda i: 0.4 + 3.0 * (i < 12)  # noqa: E731  (the first iterations after the warm-up stay slow)
    lat = {1: 5.0, 2: 9.6, 4: 19.0, 8: 37.5}  # on a CPU the infer step's host time is the compute
    return (batch_series(lat, enqueue_ms=lat, iterations=20, gpu=False)
            + [baseline(gpu=False, iterations=150, pre_ms=warm),
               paced("sleep", 20, gpu=False, iterations=200, pre_ms=slow_pre),
               paced("spin", 20, gpu=False, iterations=200, seed=4)])


SCHEDULED = Path(__file__).resolve().parent / "data" / "cpu-scheduled" / "cpu-tiny-schedule"


@pytest.fixture(scope="module", params=["example", "scheduled", "synthetic"])
def cpu_run(request, tmp_path_factory):
    if request.param == "example":
        return read_run(EXAMPLES / "cpu-tiny-onnxruntime")
    if request.param == "scheduled":
        return read_run(SCHEDULED)
    return make_run(tmp_path_factory.mktemp("cpu"), _cpu_specs(), run_id="cpu-synthetic", manifest=CPU_MANIFEST)


def test_cpu_findings_mention_no_gpu(cpu_run):
    a = analyze(cpu_run, budget_ms=3.0)
    assert a.findings, "the run should have findings to check"
    text = json.dumps([f.to_dict() for f in a.findings])
    assert not GPU_WORDS.search(text), GPU_WORDS.search(text).group(0)


def test_the_synthetic_cpu_run_fires_the_cpu_rules(tmp_path):
    run = make_run(tmp_path, _cpu_specs(), run_id="cpu-synthetic", manifest=CPU_MANIFEST)
    ids = {f.id for f in analyze(run, budget_ms=3.0).findings}
    assert {"batch-saturated-at-batch-1", "batch-budget", "idle-verdict", "explained-host-wakeup"} <= ids
    advice = "\n".join(m.action for f in analyze(run, budget_ms=3.0).findings for m in f.mitigations)
    assert "onnxruntime" in advice and "intra_op_num_threads" in advice and "cpupower" in advice


def test_cpu_findings_on_the_page_mention_no_gpu(cpu_run, tmp_path):
    pytest.importorskip("vl_convert")
    from tracegen.report.site import build_site

    build_site([cpu_run.path], tmp_path / "site", budget_ms=3.0)
    html = (tmp_path / "site" / "runs" / cpu_run.id / "index.html").read_text(encoding="utf-8")
    block = html.split('<h2 id="findings">', 1)[1].split('<h2 id="environment">', 1)[0]
    assert 'class="finding' in block
    found = GPU_WORDS.search(re.sub(r"<script.*?</script>", "", block, flags=re.S))
    assert not found, found.group(0)


@pytest.mark.parametrize("backend, wanted, unwanted", [
    ("tensorrt", "execute_async_v3", "torch.cuda.CUDAGraph"),
    ("torch", "torch.cuda.CUDAGraph", "execute_async_v3"),
])
def test_gpu_advice_fits_the_backend(tmp_path, backend, wanted, unwanted):
    specs = batch_series({1: 4.2, 2: 4.2, 4: 4.25, 8: 4.3}, enqueue_ms={1: 4.1, 2: 4.1, 4: 4.1, 8: 4.1})
    run = make_run(tmp_path, specs, manifest={"backend": {"name": backend}})
    f = next(f for f in analyze(run).findings if f.id == "enqueue-bound")
    graph = next(m for m in f.mitigations if m.title.startswith("Launch the network as a CUDA graph"))
    assert wanted in graph.action and unwanted not in graph.action


def test_a_scheduled_cpu_run_says_what_its_gaps_cost_and_what_busy_waiting_removes():
    found = {f.id: f for f in analyze(read_run(SCHEDULED)).findings}
    cost = found["scheduled-gap-cost"]
    assert cost.evidence["pacing"] == "sleep" and cost.evidence["ratio"] >= 1.05
    assert [c["contrast"] for c in cost.evidence["contrasts"]] == ["spin vs sleep"]  # nothing of a GPU

