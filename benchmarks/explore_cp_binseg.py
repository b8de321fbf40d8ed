"""Exploration for issue 8 item 1: the rank (ED-PELT) cost searched by binary segmentation,
then optimal partitioning over the binary segmentation's split points, instead of the exact
search on a 128-point grid that ``detect_changepoints`` uses. Not used by tracegen yet: it is
kept so the next round can start from measured figures (see the closing note of this round).

Variant ``candidates``: binary segmentation (greedy, best split of the segment with the largest
gain first) down to ``low`` times the penalty gives the candidate boundaries; optimal
partitioning over them with the penalty ``4 log n`` times the AR(1) dependence factor
(re-estimated up to 3 times); each boundary then moves to its best position between its
neighbours; segments closer than the KS / median-ratio thresholds of rank.py are merged.

    python benchmarks/explore_cp_binseg.py [--sets tcpd,cpu,gpu,rtt] [--low 1.0] [--rtt-every 2]
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_changepoints_real import ffill, kernel_rbf, load_sets  # noqa: E402
from tests.analysis.cp_real import covering, f_measure  # noqa: E402
from tracegen.analysis.changepoints import dependence_factor, normal_scores  # noqa: E402
from tracegen.analysis.changepoints.rank import RankCost, _merge_similar, optimal_partition  # noqa: E402


class PrefixCost(RankCost):
    """RankCost with the counts at or below each threshold as one (n + 1, K) prefix table."""

    def __init__(self, y: np.ndarray):
        super().__init__(y)
        onehot = np.zeros((y.size + 1, self.k + 1), dtype=np.int32)
        onehot[np.arange(1, y.size + 1), self.bucket] = 1
        np.cumsum(onehot, axis=0, out=onehot)
        np.cumsum(onehot, axis=1, out=onehot)
        self.P = onehot[:, : self.k]

    def best_split(self, a: int, b: int, m: int) -> tuple[float, int]:
        if b - a < 2 * m:
            return -math.inf, -1
        t = np.arange(a + m, b - m + 1)
        left = self.P[t] - self.P[a]
        whole = self.P[b] - self.P[a]
        gains = self.cost(whole, b - a) - self.cost(left, t - a) - self.cost(whole - left, b - t)
        j = int(np.argmax(gains))
        return float(gains[j]), int(t[j])


def split_points(cost: PrefixCost, n: int, m: int, threshold: float, cap: int = 256) -> np.ndarray:
    heap, out = [], []
    g, t = cost.best_split(0, n, m)
    if t >= 0:
        heap.append((-g, t, 0, n))
    while heap and len(out) < cap:
        ng, t, a, b = heapq.heappop(heap)
        if -ng < threshold:
            break
        out.append(t)
        for x, z in ((a, t), (t, b)):
            g2, t2 = cost.best_split(x, z, m)
            if t2 >= 0:
                heapq.heappush(heap, (-g2, t2, x, z))
    return np.array(sorted(out), dtype=np.int64)


def candidates(y: np.ndarray, m: int = 5, low: float = 1.0, factor: float = 4.0) -> list[int]:
    n = y.size
    if n < 2 * m:
        return []
    cost = PrefixCost(y)
    if cost.k == 0:
        return []
    base = factor * math.log(n)
    grid = np.r_[0, split_points(cost, n, m, base * low), n]
    length = grid[:, None] - grid[None, :]
    C = np.full(length.shape, np.inf)
    ti, si = np.nonzero(length >= m)
    C[ti, si] = cost.cost(cost.P[grid[ti]] - cost.P[grid[si]], length[ti, si])
    bounds = optimal_partition(C, grid, base)
    scores = normal_scores(y)
    for _ in range(3):
        new = optimal_partition(C, grid, base * dependence_factor(scores, bounds))
        if np.array_equal(new, bounds):
            break
        bounds = new
    b = [int(x) for x in bounds]
    for _ in range(2):
        moved = False
        for j in range(1, len(b) - 1):
            _, t = cost.best_split(b[j - 1], b[j + 1], m)
            if t >= 0 and t != b[j]:
                b[j], moved = t, True
        if not moved:
            break
    return [int(x) for x in _merge_similar(cost, y, np.array(b, dtype=np.int64))[1:-1]]


def main(argv=None) -> int:
    from tracegen.analysis import detect_changepoints

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="tcpd,cpu,gpu,rtt")
    p.add_argument("--low", type=float, default=1.0)
    p.add_argument("--rtt-every", type=int, default=2, help="use every k-th RTT series (KernelCPD takes ~2 s each)")
    args = p.parse_args(argv)
    methods = {"candidates": lambda v: candidates(v, low=args.low), "tracegen": detect_changepoints,
               "kernel-rbf": kernel_rbf}
    warm = 1.0 + np.random.default_rng(0).random(300)
    for f in methods.values():
        f(warm)
    print("| set | method | F1 (margin 5) | covering | time s |\n| --- | --- | --- | --- | --- |")
    for name, series in load_sets(args.sets.split(","), None).items():
        if name == "rtt":
            series = series[:: args.rtt_every]
        for label, f in methods.items():
            f1, cov, secs = [], [], 0.0
            for s in series:
                v = ffill(s.values)
                t0 = time.perf_counter()
                cps = f(v)
                secs += time.perf_counter() - t0
                f1.append(f_measure(s.annotations, cps))
                cov.append(covering(s.annotations, cps, v.size))
            print(f"| {name} ({len(series)}) | {label} | {np.mean(f1):.3f} | {np.mean(cov):.3f} | {secs:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
