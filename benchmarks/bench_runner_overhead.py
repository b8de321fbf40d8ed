"""What tracegen's instrumentation costs per iteration on the CPU backend.

Compares, in one process and interleaved (bare, instrumented, bare, ...), the wall time per
iteration of
  * a bare loop: the same preprocess -> onnxruntime run -> top-k over the same model and
    buffers, timed only by one perf_counter_ns per iteration;
  * tracegen's runner: per-step clocks, NVTX ranges, core ids, telemetry thread, recording
    and incremental Parquet writes (idle scenario, no gap).
Medians over repeats; the shared machines are noisy, so read the ratio, not the absolutes.

    python benchmarks/bench_runner_overhead.py [--iterations 2000] [--repeats 5] [--model builtin:tiny]
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

from tracegen.backends.base import HostDevice  # noqa: E402
from tracegen.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from tracegen.run.config import build_config  # noqa: E402
from tracegen.prepost.host import HostPreprocess, softmax_top_k  # noqa: E402
from tracegen.prepost.pipeline import FrameCycle  # noqa: E402
from tracegen.run.inputs import FrameSource  # noqa: E402
from tracegen.models.source import load_model  # noqa: E402
from tracegen.run.runner import run_benchmark  # noqa: E402
from tracegen.trace.reader import read_run  # noqa: E402


def bare_loop(model, iterations: int, warmup: int, threads: int) -> float:
    """Median ns per iteration of the uninstrumented pipeline."""
    backend = OnnxRuntimeBackend(model, threads=threads)
    backend.activate(HostDevice())
    b = backend.prepare(1)
    frames = FrameCycle(FrameSource(tuple(b.host_input.shape[1:])).frames, b.batch)
    preprocess = HostPreprocess(*b.host_input.shape[1:])
    stamps = np.empty(iterations + warmup + 1, dtype=np.int64)
    now = time.perf_counter_ns
    for i in range(iterations + warmup):
        stamps[i] = now()
        preprocess(frames.next(), b.host_input)
        backend.enqueue()
        softmax_top_k(b.host_output)
    stamps[-1] = now()
    backend.deactivate()
    return float(np.median(np.diff(stamps)[warmup:]))


def instrumented(model_spec: str, iterations: int, warmup: int, threads: int, out: Path, rep: int) -> float:
    """Median ns per iteration (start to next start) of tracegen's runner."""
    config = build_config(flags=dict(model=model_spec, backend="onnxruntime", scenarios="idle", idle_ms="0",
                                     iterations=iterations, warmup=warmup, threads=threads, out=str(out),
                                     run_id=f"rep{rep}", flush_every=500))
    result = run_benchmark(config, progress=False)
    steps = read_run(result.run_dir).steps
    starts = (steps.filter(pl.col("step") == "idle").sort("iteration")
              .filter(~pl.col("warmup"))["host_start_ns"].to_numpy())
    return float(np.median(np.diff(starts)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:tiny")
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    model = load_model(args.model)
    bare, inst = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            bare.append(bare_loop(model, args.iterations, args.warmup, args.threads))
            inst.append(instrumented(args.model, args.iterations, args.warmup, args.threads, Path(tmp), rep))
    b, i = statistics.median(bare), statistics.median(inst)
    print(f"model {args.model}, {args.iterations} iterations x {args.repeats} repeats, {args.threads} thread(s)")
    print(f"{'loop':<14}{'median us/iter':>16}")
    print(f"{'bare':<14}{b / 1e3:>16.1f}")
    print(f"{'tracegen':<14}{i / 1e3:>16.1f}")
    print(f"overhead: {(i - b) / 1e3:+.1f} us per iteration ({(i / b - 1) * 100:+.2f} %)")
    print("per repeat (bare / tracegen, us):", ", ".join(f"{x / 1e3:.1f}/{y / 1e3:.1f}" for x, y in zip(bare, inst)))


if __name__ == "__main__":
    main()
