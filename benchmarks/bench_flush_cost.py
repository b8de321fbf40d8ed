"""What the time-bounded flush costs: the same CPU run with steps written every 0.25 s, every 2 s
(the default) and only at the end of the variant (the old default for short variants), repeats
interleaved in one process. Prints per setting: parts written, median ms per write, the share
of the loop's wall time spent writing, and the median and p99 iteration period (start to next
start) of the measured iterations, so a write's effect on the iterations around it shows.

    python benchmarks/bench_flush_cost.py [--iterations 3000] [--repeats 3] [--model builtin:tiny]

The bound it buys: SIGKILL loses at most --flush-seconds of measurements (plus the iteration in
flight and a write in progress), instead of the whole variant in progress.
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

import tracegen.run.record as record_mod  # noqa: E402
from tracegen.run import build_config, run_benchmark  # noqa: E402
from tracegen.trace.reader import read_run  # noqa: E402

SETTINGS = [("every 0.25 s", 0.25), ("every 2 s (default)", 2.0), ("end of variant", 3600.0)]


def one(model: str, iterations: int, flush_seconds: float, out: Path, rep: int) -> dict:
    writes: list[float] = []
    original = record_mod.RunRecord.flush

    def timed(self, *a, **k):
        t = time.perf_counter()
        try:
            return original(self, *a, **k)
        finally:
            writes.append(time.perf_counter() - t)

    record_mod.RunRecord.flush = timed
    try:
        config = build_config(flags=dict(model=model, backend="onnxruntime", scenarios="idle", idle_ms="0",
                                         iterations=iterations, warmup=20, threads=1, out=str(out),
                                         run_id=f"f{flush_seconds}-{rep}", flush_every=10**9,
                                         flush_seconds=flush_seconds))
        result = run_benchmark(config, progress=False)
    finally:
        record_mod.RunRecord.flush = original
    steps = read_run(result.run_dir).steps
    starts = steps.filter(pl.col("step") == "idle").sort("iteration")["host_start_ns"].to_numpy()
    periods = np.diff(starts)[20:]
    wall = float(starts[-1] - starts[0]) / 1e9
    return {"writes": len(writes), "write_ms": 1e3 * statistics.median(writes), "share": sum(writes[:-1]) / wall,
            "p50": float(np.median(periods)) / 1e6, "p99": float(np.percentile(periods, 99)) / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:tiny")
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results = {name: [] for name, _ in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for name, seconds in SETTINGS:
                results[name].append(one(args.model, args.iterations, seconds, Path(tmp), rep))
    print(f"model {args.model}, {args.iterations} measured iterations x {args.repeats} repeats, 1 thread, no gap")
    print(f"{'flush':<22}{'writes':>8}{'ms/write':>10}{'loop time writing':>19}{'p50 ms':>9}{'p99 ms':>9}")
    for name, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"{name:<22}{med['writes']:>8.0f}{med['write_ms']:>10.2f}{100 * med['share']:>18.2f}%"
              f"{med['p50']:>9.3f}{med['p99']:>9.3f}")


if __name__ == "__main__":
    main()
