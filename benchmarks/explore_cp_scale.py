"""Explored on the real change-point sets (benchmarks/RESULTS.md, "Change points on real,
labelled series"): the dependence estimate, the scale the kernel compares values on, and what
the scheduled truth of ``gpu-runs`` allows.

The numpy pipeline of ``tracegen.analysis.changepoints.reference.detect`` with one step
swapped. Prints F1 / covering per set:

* ``--dependence``: rho from the residuals alone (the detector before 2026-12-03), the
  difference estimate alone, the smaller of the two (the detector), with the differences at
  one lag, and with a robust residual estimate instead;
* ``--scale``: the kernel on the values (the detector), on their logarithm where all are
  positive, and on the sum of both kernels;
* ``--onset``: each boundary moved back to where a ramp towards the next segment starts;
* ``--local``: the penalty of each segment times the dependence factor of its own residuals
  (lag-1 autocorrelation of the normal scores about the segment's mean) instead of one factor
  per trace: alone, and its geometric mean, minimum or maximum with the trace's factor;
* ``--merge``: the merge of invisible changes at KS distances 0.3 and 0.4 (the detector: 0.5),
  and without the merge;
* ``--penalty``: ``detect_changepoints`` itself with the penalty at 0.7-1.5 times log n (the
  detector: 1.0), how sensitive the scores are to the BIC-like constant;
* ``--candidates``: the candidates' MOSUM threshold at 2.0 (the detector), 1.5, 1.0, 0.5 and 0
  (every local maximum), in the numpy pipeline: what a looser candidate set lets the search find;
* ``--visible``: gpu-runs scored for predicting exactly the scheduled changes that move the
  median of the 50 iterations either side by at least 2, 5 and 10 %.

``cpu-old`` is the first CPU recording (made under load from other sessions), read from
``--cpu-old DIR`` when given (``git archive 11e0002 tests/analysis/data/cpu | tar -x -C DIR``).

    python benchmarks/explore_cp_scale.py [--dependence] [--scale] [--onset] [--local] [--merge] [--penalty] [--candidates] [--visible] [--cpu-old DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_changepoints_real import ffill, load_sets  # noqa: E402
from tests.analysis.cp_real import covering, f_measure, load_recorded  # noqa: E402
from tracegen.analysis.changepoints import reference as R  # noqa: E402
from tracegen.analysis.changepoints.kernel import KernelCost, refine  # noqa: E402
from tracegen.analysis.changepoints import search  # noqa: E402
from tracegen.analysis.changepoints.search import candidates, optimal_partition  # noqa: E402
from tracegen.analysis import detect_changepoints  # noqa: E402
from tracegen.analysis.changepoints import visible  # noqa: E402
from tracegen.analysis.changepoints.visible import merge_invisible  # noqa: E402

SETS = ["tcpd", "rtt", "cpu", "cpu-seed1", "cpu-seed2", "gpu", "gpu-runs", "gpu-runs-seed3", "gpu-runs-seed4"]


def residual_only(scores, bounds, min_size):
    return R.factor_of(R.residual_rho(scores, bounds))


def differences_only(scores, bounds, min_size):
    d = R.difference_rho(scores, min_size)
    return R.factor_of(R.residual_rho(scores, bounds) if d is None else d)


def single_lag(lag):
    """rho from the differences at one lag instead of the median over min_size..2 min_size."""
    def factor(scores, bounds, min_size):
        one = np.median(np.abs(np.diff(scores)))
        at = np.median(np.abs(scores[lag:] - scores[:-lag]))
        rho = R.residual_rho(scores, bounds)
        return R.factor_of(min(rho, 1.0 - (one / at) ** 2) if at > 0 else rho)
    return factor


def robust_residuals(scores, bounds, min_size):
    """Gnanadesikan-Kettenring lag-1 correlation of the residuals (about segment medians) with
    the MAD as scale, pairs across a boundary left out; the smaller with the residual one."""
    e = scores.copy()
    for a, b in zip(bounds[:-1], bounds[1:]):
        e[a:b] -= np.median(e[a:b])
    inside = np.ones(e.size - 1, dtype=bool)
    inside[bounds[1:-1] - 1] = False
    mad = lambda x: float(np.median(np.abs(x - np.median(x))))  # noqa: E731
    u, v = mad((e[1:] + e[:-1])[inside]) ** 2, mad((e[1:] - e[:-1])[inside]) ** 2
    gk = (u - v) / (u + v) if u + v > 0 else 0.0
    return R.factor_of(min(R.residual_rho(scores, bounds), gk))


def ramp_onsets(y, bounds, min_size, window, quantile=0.9):
    """Move each boundary back to the earliest point of the ``window`` before it after which
    most points lie beyond the left segment's ``quantile`` towards the right segment."""
    b = [int(x) for x in bounds]
    for j in range(1, len(b) - 1):
        a, t, c = b[j - 1], b[j], b[j + 1]
        w = min(window, (t - a) // 2)
        ref = y[a : t - w]
        if w < 1 or ref.size < max(2 * min_size, w):
            continue
        side = np.sign(np.median(y[t:c]) - np.median(ref))
        if side == 0:
            continue
        limit = np.quantile(ref, quantile if side > 0 else 1 - quantile)
        gain = np.cumsum(np.where(side * (y[t - w : t] - limit) > 0, 1.0, -1.0)[::-1])
        k = int(np.argmax(gain))
        if gain[k] > 0 and t - (k + 1) >= a + min_size:
            b[j] = t - (k + 1)
    return np.asarray(b, dtype=np.int64)


def segment_rho(scores: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``r[t, s]``: lag-1 autocorrelation of the scores of grid[s]..grid[t] about their mean
    (0 where the segment is empty or flat), from prefix sums."""
    x = scores
    s1 = np.concatenate(([0.0], np.cumsum(x)))
    s2 = np.concatenate(([0.0], np.cumsum(x * x)))
    lag = np.concatenate(([0.0], np.cumsum(x[:-1] * x[1:]), [0.0]))
    lag[-1] = lag[-2]  # lag[k]: sum of x[t] x[t+1] for t < k, defined up to k = n
    start, end = np.meshgrid(grid, grid)  # end[t, s] = grid[t], start[t, s] = grid[s]
    length = (end - start).astype(np.float64)
    last = np.clip(end - 1, start, x.size)  # pairs t, t+1 with start <= t < end - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = (s1[end] - s1[start]) / length
        den = (s2[end] - s2[start]) - length * mu * mu
        firsts = s1[last] - s1[start]  # x[start .. end-2]
        seconds = s1[end] - s1[np.minimum(start + 1, end)]  # x[start+1 .. end-1]
        num = (lag[last] - lag[start]) - mu * (firsts + seconds) + (length - 1) * mu * mu
        r = num / den
    r[~np.isfinite(r) | (length < 2)] = 0.0
    return r


def partition_with_penalties(C: np.ndarray, grid: np.ndarray, P: np.ndarray) -> np.ndarray:
    """search.optimal_partition with a penalty per segment, ``P[t, s]``, instead of one."""
    m = grid.size - 1
    F = np.zeros(m + 1)
    prev = np.zeros(m + 1, dtype=np.intp)
    for t in range(1, m + 1):
        row = F[:t] + C[t, :t] + P[t, :t]
        j = int(row.argmin())
        F[t], prev[t] = row[j], j
    if not np.isfinite(F[m]):
        return np.array([0, grid[m]])
    out = [m]
    while out[-1] > 0:
        out.append(int(prev[out[-1]]))
    return grid[np.array(out[::-1])]


def detect_local(y, combine: str, min_size=5):
    """reference.detect with each segment's penalty times a factor of its own dependence,
    combined with the trace's factor by ``combine`` (local, geometric, min or max)."""
    n = y.size
    cost = KernelCost(y)
    if cost.bins <= 1:
        return []
    base = math.log(n)
    scores = R.normal_scores(y)
    grid = np.r_[0, candidates(scores, min_size), n]
    C = cost.matrix(grid, min_size)
    trace = R.dependence_factor(scores, optimal_partition(C, grid, base), min_size)
    rho = np.clip(segment_rho(scores, grid), 0.0, R.MAX_RHO)
    own = (1.0 + rho) / (1.0 - rho)
    factor = {"local": own, "geometric": np.sqrt(own * trace), "min": np.minimum(own, trace),
              "max": np.maximum(own, trace)}[combine]
    bounds = refine(cost, partition_with_penalties(C, grid, base * factor), min_size, grid)
    bounds = R.short_edges(scores, bounds, grid, min_size, trace)
    return [int(b) for b in merge_invisible(y, bounds)[1:-1]]


def with_merge_distance(distance: float):
    """detect with the merge's KS threshold at ``distance`` (0: no merge at all, since every
    pair then counts as apart)."""
    def method(s, v):
        saved = visible.MIN_DISTANCE
        visible.MIN_DISTANCE = distance
        try:
            return detect(v)
        finally:
            visible.MIN_DISTANCE = saved
    return method


def detect(y, factor=R.dependence_factor, scale="values", min_size=5, onset=None):
    """reference.detect with the dependence factor and the kernel's scale swappable, and
    optionally ramp_onsets(``onset`` iterations) after the refinement."""
    n = y.size
    base = math.log(n)
    raw = KernelCost(y)
    if raw.bins <= 1:
        return []
    logged = KernelCost(np.log(y)) if scale != "values" and y.min() > 0 else raw
    scores = R.normal_scores(y)
    grid = np.r_[0, candidates(scores, min_size), n]
    if scale == "sum":
        C = 0.5 * (raw.matrix(grid, min_size) + logged.matrix(grid, min_size))
    else:
        C = (logged if scale == "log" else raw).matrix(grid, min_size)
    bounds = optimal_partition(C, grid, base)
    f = factor(scores, bounds, min_size)
    if f > 1.0:
        bounds = optimal_partition(C, grid, base * f)
    bounds = refine(logged if scale == "log" else raw, bounds, min_size, grid)
    if onset:
        bounds = ramp_onsets(y, bounds, min_size, onset)
    bounds = R.short_edges(scores, bounds, grid, min_size, f)
    return [int(b) for b in merge_invisible(y, bounds)[1:-1]]


def scores_of(series, method) -> tuple[float, float]:
    found = [(s, v, method(s, v)) for s, v in series]  # each method runs once per series
    F = [f_measure(s.annotations, cps) for s, v, cps in found]
    C = [covering(s.annotations, cps, v.size) for s, v, cps in found]
    return float(np.mean(F)), float(np.mean(C))


def row(label, sets, method) -> str:
    cells = [f"{name} {'%.3f / %.3f' % scores_of(series, method)}" for name, series in sets.items()]
    return f"| {label} | " + " | ".join(cells) + " |"


def visible_truth(ratio: float):
    """The scheduled changes that move the median of the 50 iterations either side by ``ratio``."""
    def method(s, v):
        out = []
        for t in s.annotations[0]:
            left, right = np.median(v[max(0, t - 50) : t]), np.median(v[t : t + 50])
            if max(left, right) / min(left, right) >= ratio:
                out.append(t)
        return out
    return method


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dependence", action="store_true")
    p.add_argument("--scale", action="store_true")
    p.add_argument("--visible", action="store_true")
    p.add_argument("--onset", action="store_true")
    p.add_argument("--local", action="store_true")
    p.add_argument("--merge", action="store_true")
    p.add_argument("--penalty", action="store_true")
    p.add_argument("--candidates", action="store_true")
    p.add_argument("--cpu-old", type=Path)
    args = p.parse_args(argv)
    loaded = load_sets(SETS, None)
    sets = {k: [(s, ffill(np.asarray(s.values, float))) for s in v] for k, v in loaded.items()}
    if args.cpu_old:
        sets["cpu-old"] = [(s, ffill(np.asarray(s.values, float))) for s in load_recorded(args.cpu_old)]
    if args.dependence:
        print(row("rho: residuals only", sets, lambda s, v: detect(v, residual_only)))
        print(row("rho: differences only", sets, lambda s, v: detect(v, differences_only)))
        print(row("rho: the smaller (detector)", sets, lambda s, v: detect(v)))
        for lag in (5, 7, 10):
            print(row(f"rho: the smaller, differences at lag {lag} only", sets, lambda s, v: detect(v, single_lag(lag))))
        print(row("rho: the smaller of residuals and robust residuals", sets, lambda s, v: detect(v, robust_residuals)))
    if args.scale:
        for scale in ("values", "log", "sum"):
            print(row(f"kernel on {scale}", sets, lambda s, v: detect(v, scale=scale)))
    if args.onset:
        for window in (10, 20, 40):
            print(row(f"ramp onsets within {window}", sets, lambda s, v: detect(v, onset=window)))
    if args.local:
        for combine in ("local", "geometric", "min", "max"):
            print(row(f"segment dependence factor: {combine}", sets, lambda s, v: detect_local(v, combine)))
    if args.merge:
        for distance in (0.3, 0.4, 0.5, 0.0):
            label = "no merge" if distance == 0.0 else f"merge below KS {distance}"
            print(row(label, sets, with_merge_distance(distance)))
    if args.penalty:
        for k in (0.7, 0.85, 1.0, 1.2, 1.5):
            print(row(f"penalty {k} log n", sets,
                      lambda s, v: detect_changepoints(v, engine="numpy", penalty=k * math.log(v.size))))
    if args.candidates:
        saved = search.CANDIDATE_Z
        try:
            for z in (2.0, 1.5, 1.0, 0.5, 0.0):
                search.CANDIDATE_Z = z  # read by search.candidates at each call (the numpy pipeline)
                print(row(f"candidates above z {z}", sets, lambda s, v: detect(v)))
        finally:
            search.CANDIDATE_Z = saved
    if args.visible:
        runs = {"gpu-runs": sets["gpu-runs"]}
        for ratio in (1.02, 1.05, 1.1):
            count = sum(len(visible_truth(ratio)(s, v)) for s, v in runs["gpu-runs"])
            print(row(f"exactly the {count} changes of {ratio}x or more", runs, visible_truth(ratio)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
