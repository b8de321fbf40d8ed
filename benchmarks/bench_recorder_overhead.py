"""What tracegen.Recorder costs per step, against the same loop without it.

Both loops run the same steps (a fixed amount of numpy work each; with ``--stream torch`` on a
CUDA GPU, a small matmul on a torch stream per step and a synchronize step at the end), in
one process, interleaved (bare, recorded, bare, ...). The bare loop reads the clock once per
iteration; the recorded loop wraps every step in ``rec.step(...)`` (host clock, NVTX range,
core id, CUDA events with a stream) and writes Parquet parts every 500 iterations. Medians over
repeats; overhead per step = (recorded - bare) per iteration / steps per iteration.

    python benchmarks/bench_recorder_overhead.py [--iterations 3000] [--repeats 7] [--steps 4] [--stream none|torch]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tracegen  # noqa: E402

STEPS = ("preprocess", "infer", "postprocess", "idle", "h2d", "d2h")


def make_work(kind: str):
    """One step's work and the stream it runs on (None on the CPU)."""
    if kind == "torch":
        import torch

        stream = torch.cuda.Stream()
        a = torch.randn(256, 256, device="cuda")

        def work():
            with torch.cuda.stream(stream):
                a @ a

        def sync():
            stream.synchronize()

        return work, sync, stream
    x = np.random.default_rng(0).random(2000)

    def work():
        np.sort(x)

    return work, (lambda: None), None


def bare(n: int, steps: int, work, sync) -> float:
    stamps = np.empty(n + 1, dtype=np.int64)
    now = time.perf_counter_ns
    for i in range(n):
        stamps[i] = now()
        for _ in range(steps):
            work()
        sync()
    stamps[-1] = now()
    return float(np.median(np.diff(stamps)))


def recorded(n: int, steps: int, work, sync, stream, out: Path, rep: int) -> float:
    names = STEPS[:steps]
    stamps = np.empty(n + 1, dtype=np.int64)
    now = time.perf_counter_ns
    rec = tracegen.Recorder(out=out, run_id=f"rep{rep}", flush_every=500)
    with rec, rec.variant():
        for i in range(n):
            stamps[i] = now()
            with rec.iteration():
                for name in names:
                    with rec.step(name, stream=stream):
                        work()
                with rec.step("sync"):
                    sync()
        stamps[-1] = now()
    return float(np.median(np.diff(stamps)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=4, help="timed work steps per iteration (plus one sync step)")
    ap.add_argument("--stream", choices=["none", "torch"], default="none")
    args = ap.parse_args()
    work, sync, stream = make_work(args.stream)
    for _ in range(200):  # warm caches, JIT, CUDA context
        work()
    sync()
    b, r = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            b.append(bare(args.iterations, args.steps, work, sync))
            r.append(recorded(args.iterations, args.steps, work, sync, stream, Path(tmp), rep))
    mb, mr = statistics.median(b), statistics.median(r)
    per_step = (mr - mb) / (args.steps + 1)
    print(f"{args.iterations} iterations x {args.repeats} repeats, {args.steps} work steps + 1 sync step per iteration, "
          f"stream {args.stream}")
    print(f"{'loop':<12}{'median us/iter':>16}")
    print(f"{'bare':<12}{mb / 1e3:>16.2f}")
    print(f"{'Recorder':<12}{mr / 1e3:>16.2f}")
    print(f"overhead: {(mr - mb) / 1e3:+.2f} us per iteration, {per_step / 1e3:+.2f} us per step ({(mr / mb - 1) * 100:+.1f} %)")
    print("per repeat (bare / Recorder, us):", ", ".join(f"{x / 1e3:.1f}/{y / 1e3:.1f}" for x, y in zip(b, r)))


if __name__ == "__main__":
    main()
