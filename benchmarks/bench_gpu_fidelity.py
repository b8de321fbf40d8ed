"""Fidelity and overhead of tracegen's GPU measurements, against a bare CUDA-event loop.

In ONE process, interleaved over repeats:
  * bare: the same onnx2torch model on a torch stream; per iteration CUDA events around the
    forward pass, then a stream synchronize; no tracegen code at all;
  * tracegen: the runner (pycuda device, torch backend, pipeline "infer", no gap) with its
    events, NVTX ranges, NVML + CPU telemetry and recording.
Fidelity: median GPU infer time of the two (target: within 2 %). Overhead: median wall time per
iteration, start to next start (target: at most 1 % or 10 us, whichever is larger).

    python benchmarks/bench_gpu_fidelity.py [--model builtin:small] [--iterations 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
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


def tracegen_loop(model: str, precision: str, launch: str, iterations: int, warmup: int, out: Path, rep: int):
    from tracegen.config import build_config
    from tracegen.runner import run_benchmark
    from tracegen.trace.reader import read_run

    config = build_config(flags=dict(model=model, backend="torch", precision=precision, scenarios="idle",
                                     idle_ms="0", pipeline="infer", launch=launch, iterations=iterations,
                                     warmup=warmup, out=str(out), run_id=f"{launch}-{rep}"))
    steps = read_run(run_benchmark(config, progress=False).run_dir).steps.filter(~pl.col("warmup"))
    infer = steps.filter(pl.col("step") == "infer")["gpu_ns"].median()
    starts = steps.filter(pl.col("step") == "idle").sort("iteration")["host_start_ns"].to_numpy()
    return float(infer), float(np.median(np.diff(starts)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:small")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from tracegen.models.source import load_model

    src = load_model(args.model)
    shape = (1, *src.image_shape)
    print(f"model {args.model} {args.precision}, batch 1, {args.iterations} iterations x {args.repeats} repeats")
    print(f"{'launch':<8}{'bare GPU ms':>13}{'tracegen GPU ms':>17}{'GPU diff':>10}"
          f"{'bare us/it':>12}{'tracegen us/it':>16}{'overhead us':>13}{'overhead %':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for launch in ("eager", "graph"):
            b_gpu, b_wall, t_gpu, t_wall = [], [], [], []
            for rep in range(args.repeats):
                g, w = bare_loop(src.onnx_bytes, shape, args.precision, launch, args.iterations, args.warmup)
                b_gpu.append(g), b_wall.append(w)
                g, w = tracegen_loop(args.model, args.precision, launch, args.iterations, args.warmup, Path(tmp), rep)
                t_gpu.append(g), t_wall.append(w)
            bg, tg = statistics.median(b_gpu), statistics.median(t_gpu)
            bw, tw = statistics.median(b_wall), statistics.median(t_wall)
            print(f"{launch:<8}{bg / 1e6:>13.4f}{tg / 1e6:>17.4f}{(tg / bg - 1) * 100:>9.2f}%"
                  f"{bw / 1e3:>12.1f}{tw / 1e3:>16.1f}{(tw - bw) / 1e3:>13.1f}{(tw / bw - 1) * 100:>11.2f}%")


if __name__ == "__main__":
    main()
