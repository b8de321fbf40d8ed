"""Fidelity and overhead of tracegen's GPU measurements, against a bare CUDA-event loop.

In ONE process, in rounds (each round runs every loop once, back to back, in rotating order):
  * bare: the same onnx2torch model on a torch stream; per iteration CUDA events around the
    forward pass, then a stream synchronize; no tracegen code at all;
  * tracegen: the runner (pycuda device, torch backend, pipeline "infer", no gap) with its
    events, NVTX ranges, NVML + CPU telemetry and recording.
Fidelity: median GPU infer time, tracegen vs bare (target: within 2 %). Overhead: median wall
time per iteration, start to next start (target: at most 1 % or 10 us, whichever is larger).
Both are taken per round (tracegen minus the bare run of the same round) and the median over
rounds is reported: an eager, launch-bound loop on a shared VM drifts by several percent
between minutes, far more than the effects measured here.

    python benchmarks/bench_gpu_fidelity.py [--model builtin:small] [--iterations 500] [--pairs 6] [--cases graph:1,eager:16,eager:1] [--ablation]

``--ablation`` adds, for eager at batch 1, tracegen runs with parts of the instrumentation swapped
out (NVML through pynvml's GIL-releasing calls, no GPU telemetry, no GPU telemetry and no NVTX),
in the same rounds, to show where per-iteration overhead comes from.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bare_loop(model_bytes: bytes, shape, precision: str, launch: str, iterations: int, warmup: int):
    import onnx
    import onnx2torch
    import torch

    module = onnx2torch.convert(onnx.load_from_string(model_bytes)).eval().cuda()
    if precision == "fp16":
        module = module.half()
    x = torch.zeros(shape, device="cuda", dtype=torch.float16 if precision == "fp16" else torch.float32)
    stream = torch.cuda.Stream()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iterations + warmup)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iterations + warmup)]
    walls = np.empty(iterations + warmup + 1, dtype=np.int64)
    with torch.inference_mode(), torch.cuda.stream(stream):
        run = lambda: module(x)  # noqa: E731
        if launch == "graph":
            for _ in range(3):
                module(x)
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                module(x)
            run = graph.replay
        for i in range(iterations + warmup):
            walls[i] = time.perf_counter_ns()
            starts[i].record(stream)
            run()
            ends[i].record(stream)
            stream.synchronize()
        walls[-1] = time.perf_counter_ns()
    gpu = [s.elapsed_time(e) * 1e6 for s, e in zip(starts[warmup:], ends[warmup:])]
    del module
    torch.cuda.empty_cache()
    return float(np.median(gpu)), float(np.median(np.diff(walls)[warmup:]))


def tracegen_loop(model: str, precision: str, launch: str, iterations: int, warmup: int, out: Path, rep, batch: int = 1):
    from tracegen.run.config import build_config
    from tracegen.run.runner import run_benchmark
    from tracegen.trace.reader import read_run

    config = build_config(flags=dict(model=model, backend="torch", precision=precision, scenarios="idle",
                                     idle_ms="0", pipeline="infer", launch=launch, iterations=iterations, idle_batch=batch,
                                     warmup=warmup, out=str(out), run_id=f"{launch}-{rep}"))
    steps = read_run(run_benchmark(config, progress=False).run_dir).steps.filter(~pl.col("warmup"))
    infer = steps.filter(pl.col("step") == "infer")["gpu_ns"].median()
    starts = steps.filter(pl.col("step") == "idle").sort("iteration")["host_start_ns"].to_numpy()
    return float(infer), float(np.median(np.diff(starts)))


@contextmanager
def _arm(name: str):
    """Swap parts of tracegen's instrumentation out for one ablation arm."""
    import tracegen.run.runner as runner_mod
    import tracegen.telemetry.nvml as nvml_mod
    from tracegen.telemetry.nvtx import Ranges

    saved = nvml_mod.GpuSampler, runner_mod.Ranges
    base = nvml_mod.GpuSampler

    class PynvmlSampler(base):
        def __init__(self, *a, **k):
            super().__init__(*a, fast=False, **k)

    class NoSampler(base):
        def __init__(self, *a, **k):
            raise RuntimeError("GPU telemetry switched off for this arm")

    if name == "pynvml":
        nvml_mod.GpuSampler = PynvmlSampler
    elif name in ("no-gpu-telemetry", "no-gpu-telemetry-no-nvtx"):
        nvml_mod.GpuSampler = NoSampler
    if name == "no-gpu-telemetry-no-nvtx":
        runner_mod.Ranges = lambda: Ranges(enabled=False)
    try:
        yield
    finally:
        nvml_mod.GpuSampler, runner_mod.Ranges = saved


def paired(args, src, batch: int, tmp: Path, launch: str, arms: list[str]) -> dict[str, list[tuple]]:
    """``args.pairs`` rounds; each round runs the bare loop and every arm back to back (the
    order rotates per round), so slow drift of the machine hits both sides of a pair alike."""
    runs: dict[str, list[tuple]] = {a: [] for a in ["bare", *arms]}
    shape = (batch, *src.image_shape)
    for rnd in range(args.pairs):
        order = ["bare", *arms]
        k = rnd % len(order)
        for name in order[k:] + order[:k]:
            if name == "bare":
                runs["bare"].append(bare_loop(src.onnx_bytes, shape, args.precision, launch, args.iterations, args.warmup))
            else:
                with _arm(name):
                    runs[name].append(tracegen_loop(args.model, args.precision, launch, args.iterations, args.warmup,
                                                    tmp, f"{launch}-b{batch}-{name}-{rnd}", batch))
    return runs


def summarise(case: str, runs: dict[str, list[tuple]], verdict: bool) -> None:
    bare = runs["bare"]
    bw = statistics.median(w for _, w in bare)
    for arm, vals in runs.items():
        g = statistics.median(v[0] for v in vals)
        w = statistics.median(v[1] for v in vals)
        gdiff = statistics.median(v[0] / b[0] - 1 for v, b in zip(vals, bare)) * 100  # paired
        wdiff = statistics.median(v[1] - b[1] for v, b in zip(vals, bare))
        print(f"{case:<10}{arm:<26}{g / 1e6:>9.4f}{gdiff:>+9.2f}%{w / 1e3:>10.1f}{wdiff / 1e3:>+12.1f}{wdiff / bw * 100:>+9.2f}%")
        if verdict and arm == "tracegen":
            limit = max(0.01 * bw, 10_000)
            print(f"{'':<36}fidelity {'PASS' if abs(gdiff) <= 2 else 'FAIL'} (|diff| <= 2 %); overhead "
                  f"{'PASS' if wdiff <= limit else 'FAIL'} (<= {limit / 1e3:.1f} us = max(1 % of bare, 10 us))")
    for arm, vals in runs.items():
        print(f"{'':<10}  per round {arm}: GPU us " + " ".join(f"{v[0] / 1e3:.1f}" for v in vals)
              + " | wall us " + " ".join(f"{v[1] / 1e3:.1f}" for v in vals))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:small")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--cases", default="graph:1,eager:16,eager:1",
                    help="launch:batch pairs; eager at batch 1 is launch-bound (GPU time = the host's launch pace)")
    ap.add_argument("--ablation", action="store_true", help="also attribute eager overhead to its parts")
    args = ap.parse_args()
    from tracegen.models.source import load_model

    src = load_model(args.model)
    print(f"model {args.model} {args.precision}, {args.iterations} timed iterations per run, {args.pairs} rounds")
    print("GPU: median CUDA-event infer time; diff and overhead: medians over rounds of tracegen minus the bare run of the same round")
    print(f"{'case':<10}{'arm':<26}{'GPU ms':>9}{'GPU diff':>10}{'us/it':>10}{'overhead us':>12}{'%':>10}")
    arms = ["tracegen"] + (["pynvml", "no-gpu-telemetry", "no-gpu-telemetry-no-nvtx"] if args.ablation else [])
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            launch, _, batch = case.partition(":")
            batch = int(batch or 1)
            use = arms if (launch, batch) == ("eager", 1) else ["tracegen"]
            summarise(f"{launch} b{batch}", paired(args, src, batch, Path(tmp), launch, use), True)


if __name__ == "__main__":
    main()
