"""Accuracy and speed of tracegen's change points and tiers, against ruptures and numpy.sort.

Synthetic traces with known truth (tests/analysis/synthetic.py: piecewise levels, linear
ramps, lognormal noise, spikes of 5-50x; 100 to 1,000,000 points) are segmented by

  * tracegen: ``detect_changepoints`` (automatic penalty);
  * ruptures Pelt and Binseg, model "l2", penalty 2 sigma^2 log(n) with sigma the MAD of
    first differences / sqrt(2) (BIC-like), min_size 5, jump 5 (ruptures' default: jump 1
    makes Pelt 20x slower still); Binseg also on log values, to separate the model from the
    transform;
  * a no-change baseline (one segment).

Accuracy: F1 with a margin of 5 iterations (TP, FP, FN pooled over the traces of a size)
and mean segmentation covering. Ruptures runs where it finishes in reasonable time; each of
its rows also gives tracegen's scores on exactly the same traces.

Speed: change points plus tiers against numpy.sort of the same array, medians of repeats,
interleaved in one process; the growth exponent is the least-squares slope of log(time)
against log(n) over 10^4..10^6 (n log n gives 1.09 there).

    python benchmarks/bench_changepoints.py [--quick] [--out benchmarks/RESULTS_changepoints.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.analysis.synthetic import covering, f1_score, match_count, random_trace  # noqa: E402
from tracegen.analysis import detect_changepoints, detect_tiers  # noqa: E402

try:
    import ruptures as rpt
except ImportError:  # the benchmark still measures tracegen
    rpt = None

# (n, traces, traces for ruptures Pelt, traces for ruptures Binseg)
FULL = [(100, 200, 200, 200), (1_000, 200, 200, 200), (10_000, 50, 4, 50), (100_000, 20, 0, 5), (1_000_000, 8, 0, 0)]
QUICK = [(100, 60, 60, 60), (1_000, 60, 20, 60), (10_000, 10, 0, 10)]
SPEED_SIZES = [10_000, 100_000, 1_000_000]


def ruptures_bic(values: np.ndarray, algo: str, log: bool = False) -> list[int]:
    """ruptures with model l2 and penalty 2 sigma^2 log(n) (sigma from the MAD of differences)."""
    x = np.log(values) if log else values
    d = np.diff(x)
    sigma = 1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0)
    cls = rpt.Pelt if algo == "pelt" else rpt.Binseg
    bkps = cls(model="l2", min_size=5, jump=5).fit(x).predict(pen=2.0 * sigma**2 * math.log(x.size))
    return [int(b) for b in bkps[:-1]]


METHODS = {
    "tracegen": lambda v: detect_changepoints(v),
    "ruptures Pelt": lambda v: ruptures_bic(v, "pelt"),
    "ruptures Binseg": lambda v: ruptures_bic(v, "binseg"),
    "ruptures Binseg (log values)": lambda v: ruptures_bic(v, "binseg", log=True),
    "no change": lambda v: [],
}


class Score:
    """Pooled F1 counts, covering and time over a set of traces."""

    def __init__(self):
        self.tp = self.n_true = self.n_pred = 0
        self.cover: list[float] = []
        self.seconds = 0.0

    def add(self, truth, found, n: int, seconds: float) -> None:
        self.tp += match_count(truth, found)
        self.n_true += len(truth)
        self.n_pred += len(found)
        self.cover.append(covering(truth, found, n))
        self.seconds += seconds

    @property
    def f1(self) -> float:
        return f1_score(self.tp, self.n_true, self.n_pred)

    @property
    def covering(self) -> float:
        return float(np.mean(self.cover))

    @property
    def ms_per_trace(self) -> float:
        return 1e3 * self.seconds / len(self.cover)


def accuracy(plan) -> list[str]:
    rows = ["| n | method | traces | F1 (margin 5) | covering | ms / trace | tracegen F1, same traces | tracegen covering, same traces |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n, count, pelt_count, binseg_count in plan:
        traces = [random_trace(n, seed) for seed in range(count)]
        limits = {"tracegen": count, "no change": count, "ruptures Pelt": pelt_count,
                  "ruptures Binseg": binseg_count, "ruptures Binseg (log values)": binseg_count}
        found = {}
        for name, method in METHODS.items():
            if name.startswith("ruptures") and rpt is None:
                continue
            results = []
            for trace in traces[: limits[name]]:
                start = time.perf_counter()
                results.append((method(trace.values), time.perf_counter() - start))
            found[name] = results
        for name, results in found.items():
            if not results:
                continue
            score, ours = Score(), Score()
            for trace, (points, seconds), (own, own_s) in zip(traces, results, found["tracegen"]):
                score.add(trace.changepoints, points, n, seconds)
                ours.add(trace.changepoints, own, n, own_s)
            same = "" if name == "tracegen" else f"{ours.f1:.3f} | {ours.covering:.3f}"
            rows.append(f"| {n:,} | {name} | {len(results)} | {score.f1:.3f} | {score.covering:.3f} | "
                        f"{score.ms_per_trace:.1f} | {same or '- | -'} |")
            print(rows[-1], flush=True)
    return rows


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def speed(repeats: int, with_ruptures: bool, pelt_up_to: int) -> list[str]:
    rows = ["| n | change points ms | tiers ms | both ms | numpy.sort ms | ratio | ruptures Binseg ms | ruptures Pelt ms |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ours, sorts = [], []
    for n in SPEED_SIZES:
        values = random_trace(n, 1, kind="mixed").values
        detect_changepoints(values), detect_tiers(values), np.sort(values)  # warm up
        cp, tiers, both, srt = [], [], [], []
        for _ in range(repeats):  # interleaved, so drifts of the machine hit both alike
            start = time.perf_counter()
            detect_changepoints(values)
            mid = time.perf_counter()
            detect_tiers(values)
            end = time.perf_counter()
            cp.append(mid - start)
            tiers.append(end - mid)
            both.append(end - start)
            srt.append(median_seconds(lambda: np.sort(values), 1))
        t_both, t_sort = float(np.median(both)), float(np.median(srt))
        ours.append(t_both)
        sorts.append(t_sort)
        binseg = pelt = "-"
        if with_ruptures and rpt is not None and n <= 100_000:
            binseg = f"{1e3 * median_seconds(lambda: ruptures_bic(values, 'binseg'), 1):.0f}"
        if with_ruptures and rpt is not None and n <= pelt_up_to:
            pelt = f"{1e3 * median_seconds(lambda: ruptures_bic(values, 'pelt'), 1):.0f}"
        rows.append(f"| {n:,} | {1e3 * np.median(cp):.1f} | {1e3 * np.median(tiers):.1f} | {1e3 * t_both:.1f} | "
                    f"{1e3 * t_sort:.1f} | {t_both / t_sort:.2f} | {binseg} | {pelt} |")
        print(rows[-1], flush=True)
    logs = np.log(SPEED_SIZES)
    ref = np.polyfit(logs, np.log(np.array(SPEED_SIZES) * logs), 1)[0]
    rows.append("")
    rows.append(f"Growth exponent, 10^4 to 10^6 (slope of log time on log n): tracegen "
                f"{np.polyfit(logs, np.log(ours), 1)[0]:.2f}, numpy.sort {np.polyfit(logs, np.log(sorts), 1)[0]:.2f}, "
                f"n log n {ref:.2f}.")
    print(rows[-1], flush=True)
    return rows


def machine() -> str:
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    import os

    versions = f"Python {platform.python_version()}, numpy {np.__version__}"
    if rpt is not None:
        versions += f", ruptures {rpt.__version__}"
    return f"{model}, {os.cpu_count()} cores; {versions}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter traces (about a minute)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS_changepoints.md")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_changepoints.py" + (" --quick" if args.quick else "")
    print(f"# {command}\n# {machine()}", flush=True)
    acc = accuracy(QUICK if args.quick else FULL)
    spd = speed(3 if args.quick else 9, with_ruptures=True, pelt_up_to=0 if args.quick else 10_000)
    text = "\n".join([
        "## Change points and tiers: accuracy and speed",
        "",
        f"    {command}",
        "",
        f"Machine: {machine()}; {dt.date.today().isoformat()}.",
        "Synthetic traces (`tests/analysis/synthetic.py`, seeds 0..traces-1): flat, steps, ramp and mixed",
        "kinds; lognormal noise sigma 0.02-0.12; 0-2 % spikes of 5-50x; ramps steep enough to locate",
        "(>= sigma / 4 per iteration). ruptures: model l2, penalty 2 sigma^2 log n, sigma = MAD of",
        "differences / sqrt 2, min_size 5, jump 5; Pelt only where it finishes in minutes.",
        "",
        "### Accuracy (F1 pooled over traces; covering averaged)",
        "",
        *acc,
        "",
        "### Speed (change points + tiers vs numpy.sort of the same array; medians, one process)",
        "",
        *spd,
        "",
    ])
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
