"""Change points on real, labelled series: tracegen against ruptures and "no change".

Data sets (see ``tests/analysis/cp_real.py`` for the scores, TCPD's F1 with margin 5 and
covering, against every annotator):

* ``tcpd``: the Turing Change Point Dataset, human-annotated (build_cp_datasets.py --tcpd);
* ``rtt``: RIPE Atlas RTT traces, manually labelled (build_cp_datasets.py --rtt);
* ``cpu``: onnxruntime CPU latency traces with changes scheduled at known iterations
  (committed under tests/analysis/data/cpu, re-recorded by record_cpu_changes.py);
* ``cpu-seed1``: 16 more traces of the same kind, another random schedule (--seed 1);
* ``cpu-seed2``: 16 more (--seed 2), recorded after the detector was settled and scored once;
* ``gpu``: torch on an NVIDIA H200 with the idle gap changed at known iterations, host and
  GPU time per iteration (tests/analysis/data/gpu, recorded by the lead; --gpu names another
  folder of the same format);
* ``gpu-runs``: tracegen runs on the H200 with random ``--schedule`` gaps, every pacing and
  launch mode (tests/analysis/data/gpu-runs, record_scheduled_runs.py; --runs names another
  folder of runs);
* ``gpu-runs-seed3``: two more such runs (builtin:large, torchvision mobilenet_v3_large), recorded
  with --seed 3 after the detector was settled and never used to tune it
  (tests/analysis/data/gpu-runs-seed3);
* ``gpu-runs-seed4``: two more (torchvision resnet18 and efficientnet_b0), --seed 4, recorded
  after everything above was settled and scored once (tests/analysis/data/gpu-runs-seed4).

Methods:

* ``tracegen``: ``detect_changepoints(values, engine="numba")``, the compiled pipeline, which
  ``engine="auto"`` (the default) takes once a process has spent 0.5 s in the numpy one;
* ``tracegen-numpy``: the same with ``engine="numpy"``, the numpy reference (same change
  points): what ``auto`` runs first, and where numba is not installed;
* ``kernel-rbf``: ruptures ``KernelCPD(kernel="rbf", min_size=2)`` on robust z-scores
  ((x - median) / (1.4826 MAD)), penalty log n;
* ``binseg-l2``, ``pelt-l2``: ruptures ``Binseg`` / ``Pelt`` (model "l2", ruptures' defaults
  min_size 2 and jump 5: with jump 1, Pelt takes 73 s on one 10,000-point RTT trace) on the
  same z-scores with a BIC-like penalty: 2 log n times the noise variance, estimated
  robustly from first differences (MAD of the differences / sqrt 2, squared);
* ``no change``: no change point.

Every method gets the same input: missing values filled with the previous value. Times are
medians of ``--repeats`` calls per series, summed over the series of a set.

    python benchmarks/bench_changepoints_real.py [--sets tcpd,rtt,cpu,gpu] [--repeats 3] [--split all|dev|held-out]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.analysis.cp_real import DATA, FIXTURES, covering, f_measure, held_out, load_gpu, load_json_set, load_recorded, load_runs  # noqa: E402
from tracegen.analysis import detect_changepoints  # noqa: E402


def ffill(v: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(v)
    if not bad.any():
        return v
    idx = np.where(bad, 0, np.arange(v.size))
    np.maximum.accumulate(idx, out=idx)
    out = v[idx]
    first = np.flatnonzero(~bad)
    out[: first[0] if first.size else v.size] = v[first[0]] if first.size else 0.0
    return out


def robust_z(v: np.ndarray) -> np.ndarray:
    med = np.median(v)
    mad = 1.4826 * np.median(np.abs(v - med))
    if mad <= 0:
        mad = np.std(v) or 1.0
    return (v - med) / mad


def _bkps(algo, pen: float, n: int) -> list[int]:
    return [int(b) for b in algo.predict(pen=pen) if b < n]


def kernel_rbf(v):
    import ruptures as rpt

    z = robust_z(v).reshape(-1, 1)
    return _bkps(rpt.KernelCPD(kernel="rbf", min_size=2).fit(z), math.log(len(v)), len(v))


def _bic_pen(z: np.ndarray) -> float:
    d = np.diff(z)
    sigma = 1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0)
    return 2.0 * math.log(z.size) * max(sigma * sigma, 1e-12)


def binseg(v):
    import ruptures as rpt

    z = robust_z(v)
    return _bkps(rpt.Binseg(model="l2").fit(z.reshape(-1, 1)), _bic_pen(z), len(v))


def pelt(v):
    import ruptures as rpt

    z = robust_z(v)
    return _bkps(rpt.Pelt(model="l2").fit(z.reshape(-1, 1)), _bic_pen(z), len(v))


METHODS = {
    "tracegen": lambda v: detect_changepoints(v, engine="numba"),
    "tracegen-numpy": lambda v: detect_changepoints(v, engine="numpy"),
    "kernel-rbf": kernel_rbf,
    "binseg-l2": binseg,
    "pelt-l2": pelt,
    "no change": lambda v: [],
}


def load_sets(names, gpu: Path | None, cpu: Path | None = None, runs: Path | None = None):
    sets = {}
    for name in names:
        if name in ("tcpd", "rtt"):
            path = DATA / "real" / f"{name}.json"
            if not path.exists():
                print(f"skip {name}: {path} missing; run benchmarks/build_cp_datasets.py", file=sys.stderr)
                continue
            sets[name] = load_json_set(path)
        elif name == "cpu":
            sets[name] = load_recorded(cpu or FIXTURES / "cpu")
        elif name in ("cpu-seed1", "cpu-seed2"):
            sets[name] = load_recorded(FIXTURES / name)
        elif name == "gpu":
            sets[name] = load_gpu(gpu or FIXTURES / "gpu")
        elif name == "gpu-runs":
            sets[name] = load_runs(runs or FIXTURES / "gpu-runs")
        elif name in ("gpu-runs-seed3", "gpu-runs-seed4"):
            sets[name] = load_runs(FIXTURES / name)
    return sets


def evaluate(series, methods, repeats: int):
    """Per series and method: (F1, covering, seconds: median of ``repeats`` calls)."""
    out = {}
    for s in series:
        v = ffill(s.values)
        for m in methods:
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                cps = METHODS[m](v)
                times.append(time.perf_counter() - t0)
            out[s.name, m] = (f_measure(s.annotations, cps), covering(s.annotations, cps, v.size),
                              float(np.median(times)))
    return out


def summary(results, series, methods) -> dict:
    return {m: {"f1": [results[s.name, m][0] for s in series], "cover": [results[s.name, m][1] for s in series],
                "seconds": sum(results[s.name, m][2] for s in series)} for m in methods}


def table(title: str, res: dict, count: int) -> str:
    lines = [f"### {title} ({count} series)", "", "| method | F1 (margin 5) | covering | time ms |",
             "| --- | --- | --- | --- |"]
    for m, r in res.items():
        lines.append(f"| {m} | {np.mean(r['f1']):.3f} | {np.mean(r['cover']):.3f} | {r['seconds'] * 1e3:.1f} |")
    return "\n".join(lines)


def margin_lines(results, series, methods, draws: int, seed: int = 0) -> list[str]:
    """tracegen's margin over the strongest other method (by its mean) on F1 and on covering,
    with a 95 % paired bootstrap interval over the series (``draws`` resamples of the set, the
    same series for both methods) and how many series it wins, ties and loses: whether a margin
    is clear or within what another draw of series could undo."""
    if "tracegen" not in methods:
        return []
    others = [m for m in methods if m not in ("tracegen", "tracegen-numpy")]
    if not others:
        return []
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(series), size=(draws, len(series)))
    lines = []
    for i, metric in ((0, "F1"), (1, "covering")):
        score = {m: np.array([results[s.name, m][i] for s in series]) for m in methods}
        best = max(others, key=lambda m: score[m].mean())
        d = score["tracegen"] - score[best]
        lo, hi = np.quantile(d[picks].mean(axis=1), [0.025, 0.975])
        lines.append(f"tracegen - {best} (strongest on {metric}): {d.mean():+.3f}, 95 % paired bootstrap "
                     f"[{lo:+.3f}, {hi:+.3f}]; series won / tied / lost {(d > 1e-9).sum()} / "
                     f"{(np.abs(d) <= 1e-9).sum()} / {(d < -1e-9).sum()}")
    return lines


def pooled_margin_lines(per_set, methods, draws: int, seed: int = 0) -> list[str]:
    """tracegen's margin over the strongest other method across every set at once: the mean of
    the per-set mean differences (each set counts once, so the long RIPE Atlas and GPU sets do
    not outvote TCPD) and the mean over all series, each with a 95 % stratified paired bootstrap
    interval (every draw resamples the series within each set). ``per_set``: set name ->
    (results, series), as ``evaluate`` returned them."""
    if "tracegen" not in methods or len(per_set) < 2:
        return []
    others = [m for m in methods if m not in ("tracegen", "tracegen-numpy")]
    if not others:
        return []
    rng = np.random.default_rng(seed)
    lines = [f"all {len(per_set)} sets ({', '.join(per_set)}), "
             f"{sum(len(series) for _, series in per_set.values())} series:"]
    for i, metric in ((0, "F1"), (1, "covering")):
        score = {m: [np.array([res[s.name, m][i] for s in series]) for res, series in per_set.values()]
                 for m in methods}
        sizes = np.array([len(x) for x in score["tracegen"]], dtype=float)
        best = max(others, key=lambda m: np.mean([x.mean() for x in score[m]]))
        diffs = [a - b for a, b in zip(score["tracegen"], score[best])]
        means = np.empty((draws, len(diffs)))
        for k, d in enumerate(diffs):
            means[:, k] = d[rng.integers(0, d.size, size=(draws, d.size))].mean(axis=1)
        by_set, by_series = means.mean(axis=1), means @ sizes / sizes.sum()
        point_set = np.mean([d.mean() for d in diffs])
        point_series = np.concatenate(diffs).mean()
        lo_s, hi_s = np.quantile(by_set, [0.025, 0.975])
        lo_n, hi_n = np.quantile(by_series, [0.025, 0.975])
        lines.append(f"tracegen - {best} on {metric}: each set once {point_set:+.3f} [{lo_s:+.3f}, {hi_s:+.3f}]; "
                     f"each series once {point_series:+.3f} [{lo_n:+.3f}, {hi_n:+.3f}] "
                     f"(95 % stratified paired bootstrap); sets ahead / behind "
                     f"{sum(d.mean() > 0 for d in diffs)} / {sum(d.mean() < 0 for d in diffs)}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="tcpd,rtt,cpu,cpu-seed1,gpu")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--split", choices=("all", "dev", "held-out", "both"), default="both",
                   help="all series, the development half, the held-out half, or all and held-out (default)")
    p.add_argument("--gpu", type=Path, help="folder of GPU recordings (truth.json + CSV), default tests/analysis/data/gpu")
    p.add_argument("--cpu", type=Path, help="folder of CPU recordings (record_cpu_changes.py), default tests/analysis/data/cpu")
    p.add_argument("--runs", type=Path, help="folder of tracegen runs recorded with --schedule, default tests/analysis/data/gpu-runs")
    p.add_argument("--per-series", action="store_true", help="also print F1/covering per series")
    p.add_argument("--bootstrap", type=int, default=10000, metavar="DRAWS",
                   help="resamples of the series for the margin's interval (default 10000; 0: no margin lines)")
    args = p.parse_args(argv)
    methods = args.methods.split(",")
    names = args.sets.split(",")
    warm = 1.0 + np.random.default_rng(0).random(300)
    for m in methods:  # imports, compilation and first-call set-up are not part of any timing
        t0 = time.perf_counter()
        METHODS[m](warm)
        print(f"first call of {m}: {time.perf_counter() - t0:.3f} s", file=sys.stderr)
    per_set = {}
    for name, series in load_sets(names, args.gpu, args.cpu, args.runs).items():
        dev, held = held_out(series)
        parts = {"all": [("all", series)], "dev": [("development half", dev)],
                 "held-out": [("held-out half", held)],
                 "both": [("all", series), ("held-out half", held)]}[args.split]
        chosen = {s.name: s for _, part in parts for s in part}.values()
        results = evaluate(chosen, methods, args.repeats)
        for label, part in parts:
            print(table(f"{name}, {label}", summary(results, part, methods), len(part)), end="\n\n")
            if args.bootstrap > 0:
                for line in margin_lines(results, part, methods, args.bootstrap):
                    print(line)
                print(flush=True)
        per_set[name] = (results, series)
        if args.per_series:
            for s in chosen:
                print(s.name, " ".join(f"{m}={results[s.name, m][0]:.2f}/{results[s.name, m][1]:.2f}" for m in methods))
    if args.bootstrap > 0 and args.split in ("all", "both"):
        for line in pooled_margin_lines(per_set, methods, args.bootstrap):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
