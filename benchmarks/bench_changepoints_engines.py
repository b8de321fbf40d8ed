"""The two change-point engines: numba-compiled against numpy, and what loading numba costs.

Prints two tables:

* set-up per process, each in a fresh child process: compiling the pipeline into an empty
  numba cache (the first run after an install), loading it from that cache (every later
  process), and numpy's first call for comparison;
* medians of ``--repeats`` calls on synthetic traces of 10^3-10^6 points (a step at the middle,
  lognormal noise, 1 % spikes), with the check that both engines return the same change points.

    python benchmarks/bench_changepoints_engines.py [--repeats 3] [--sizes 1000,10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_changepoints import median_seconds  # noqa: E402

FIRST_CALL = """
import time, numpy as np
t0 = time.perf_counter()
from tracegen.analysis import detect_changepoints
t1 = time.perf_counter()
detect_changepoints(np.random.default_rng(0).normal(size=300), engine="{engine}")
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def first_call(engine: str, cache: str) -> tuple[float, float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", FIRST_CALL.format(engine=engine)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def trace(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    y = np.r_[rng.lognormal(1.0, 0.05, n // 2), rng.lognormal(1.2, 0.05, n - n // 2)]
    y[rng.choice(n, n // 100, replace=False)] *= 10
    return y


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", default="1000,10000,100000,1000000")
    args = p.parse_args(argv)

    print("| set-up in a fresh process | import s | first call s |")
    print("| --- | --- | --- |")
    with tempfile.TemporaryDirectory() as cache:
        for label, engine in (("numba, empty cache (compiles)", "numba"), ("numba, from the cache", "numba"),
                              ("numpy", "numpy")):
            imp, call = first_call(engine, cache)
            print(f"| {label} | {imp:.3f} | {call:.3f} |", flush=True)

    from tracegen.analysis import detect_changepoints

    detect_changepoints(trace(1000), engine="numba")
    print()
    print("| points | numba ms | numpy ms | numpy / numba | same change points |")
    print("| --- | --- | --- | --- | --- |")
    for n in (int(x) for x in args.sizes.split(",")):
        y = trace(n)
        fast = median_seconds(lambda: detect_changepoints(y, engine="numba"), args.repeats)
        slow = median_seconds(lambda: detect_changepoints(y, engine="numpy"), args.repeats)
        same = detect_changepoints(y, engine="numba") == detect_changepoints(y, engine="numpy")
        print(f"| {n:,} | {fast * 1e3:.1f} | {slow * 1e3:.1f} | {slow / fast:.2f} | {same} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
