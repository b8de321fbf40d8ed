"""Normal scores without scipy: tracegen's numpy ranks and AS 241 quantiles against
``scipy.special.ndtri(scipy.stats.rankdata(y))``, import included.

Each import is timed in a fresh interpreter (``python -c "import ..."`` minus a bare
``python -c pass``, medians of ``--repeats``), because the import is what the report paid for:
``scipy.stats`` takes seconds on 2 cores, more than the change-point search of a
500,000-point trace. The computation is timed in this process on the same arrays (lognormal
latencies with spikes, and values rounded to 0.1 so that ties are many), medians of repeats,
interleaved, with the largest difference between the two results.

    python benchmarks/bench_normal_scores.py [--repeats 5] [--sizes 10000,100000,500000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracegen.analysis.changepoints import normal_scores  # noqa: E402


def import_seconds(module: str, repeats: int) -> float:
    def once(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        return time.perf_counter() - t0

    bare = statistics.median(once("pass") for _ in range(repeats))
    return statistics.median(once(f"import {module}") for _ in range(repeats)) - bare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", default="10000,100000,500000")
    args = ap.parse_args()
    print("| import | s (median) |")
    print("| --- | --- |")
    for module in ("numpy", "scipy.special", "scipy.stats", "tracegen.analysis.changepoints.scores"):  # the last with numpy
        print(f"| {module} | {import_seconds(module, args.repeats):.3f} |")
    from scipy.special import ndtri
    from scipy.stats import rankdata

    rng = np.random.default_rng(1)
    print("\n| n | data | scipy ms | numpy ms | ratio | max abs difference |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in map(int, args.sizes.split(",")):
        y = 2.3 * np.exp(rng.normal(0, 0.05, n))
        y[rng.random(n) < 0.001] *= 15
        for label, data in (("continuous", y), ("ties (0.1 steps)", np.round(y, 1))):
            ours, theirs = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                a = ndtri((rankdata(data) - 0.5) / data.size)
                t1 = time.perf_counter()
                b = normal_scores(data)
                t2 = time.perf_counter()
                theirs.append(t1 - t0)
                ours.append(t2 - t1)
            s, o = statistics.median(theirs) * 1e3, statistics.median(ours) * 1e3
            print(f"| {n:,} | {label} | {s:.1f} | {o:.1f} | {o / s:.2f} | {float(np.abs(a - b).max()):.1e} |")


if __name__ == "__main__":
    main()
