"""Change points along the iteration index of a latency trace.

``detect_changepoints(values)`` returns the indices where a new segment starts (0 excluded).

How (each step in its own module):

1. Cost (kernel.py): a Gaussian kernel on the values, bandwidth the median distance between
   two values: a segment costs the spread of its points in the kernel's feature space, so
   changes of level, spread or mixture of modes all count, and heavy tails, spikes and
   multi-modal noise need no model.
2. Candidates (search.py): a multi-scale moving-sum scan of the normal scores of the ranks.
3. Search (search.py): the exact penalised partition with boundaries among the candidates,
   penalty ``log n`` per change point times a dependence factor (below); each boundary then
   moves to its best position at full resolution (kernel.refine).
4. Visible (visible.py): adjacent segments that differ neither in distribution, level nor
   spread enough to see are merged.

Dependence: latency noise is serially correlated (a slow phase lasts a few iterations), which
inflates the evidence for a change by the long-run variance factor (1 + rho) / (1 - rho) of an
AR(1). rho is the lag-1 autocorrelation of the normal scores about the means of the segments
found with the plain penalty; the factor is capped at ``(1 + MAX_RHO) / (1 - MAX_RHO)`` = 4,
because beyond that the trace is a drift, whose real turns the correction would erase.

``benchmarks/bench_changepoints_real.py`` measures it on real labelled series against ruptures
(benchmarks/RESULTS.md, "Change points on real, labelled series").
"""

from __future__ import annotations

import math

import numpy as np

from tracegen.analysis.changepoints.kernel import KernelCost, refine
from tracegen.analysis.changepoints.scores import average_ranks, normal_quantile
from tracegen.analysis.changepoints.search import candidates, optimal_partition
from tracegen.analysis.changepoints.signal import all_finite, as_array, fill_missing, noise_scale, to_log
from tracegen.analysis.changepoints.visible import merge_invisible

#: Shortest reported segment, in iterations.
MIN_SIZE = 5
#: Penalty per change point, in units of log n (the kernel cost's BIC-like scale).
PENALTY_FACTOR = 1.0
#: Largest lag-1 autocorrelation credited by the dependence factor (a factor of 4).
MAX_RHO = 0.6

#: Short runs at a segment's edges (see short_edges): at most SHORT_LOG log n iterations,
#: and their normal scores at least SHORT_Z standard errors from the rest of the segment.
SHORT_LOG = 4.0
SHORT_Z = 5.0

__all__ = ["MIN_SIZE", "all_finite", "as_array", "detect_changepoints", "noise_scale", "to_log"]


def detect_changepoints(values, *, min_size: int | None = None, penalty: float | None = None) -> list[int]:
    """Indices where a new segment of ``values`` starts, sorted, 0 excluded.

    ``values``: 1-D latencies (list, numpy array or polars Series), in iteration order.
    ``min_size``: shortest segment, in iterations (default ``MIN_SIZE`` = 5).
    ``penalty``: cost of one more change point in kernel-cost units, before the dependence
    factor (default ``PENALTY_FACTOR * log(n)``).
    Non-finite values are replaced by the previous finite one (they carry no evidence).
    """
    y = fill_missing(as_array(values))
    n = y.size
    min_size = MIN_SIZE if min_size is None else max(1, int(min_size))
    if n < 2 * min_size:
        return []
    cost = KernelCost(y)
    if cost.bins <= 1:
        return []
    scores = normal_scores(y)
    grid = np.r_[0, candidates(scores, min_size), n]
    C = cost.matrix(grid, min_size)
    base = PENALTY_FACTOR * math.log(n) if penalty is None else float(penalty)
    bounds = optimal_partition(C, grid, base)
    factor = dependence_factor(scores, bounds)
    if factor > 1.0:
        bounds = optimal_partition(C, grid, base * factor)
    bounds = refine(cost, bounds, min_size, grid)
    bounds = short_edges(scores, bounds, grid, min_size, factor)
    bounds = merge_invisible(y, bounds)
    return [int(b) for b in bounds[1:-1]]


def short_edges(scores: np.ndarray, bounds: np.ndarray, grid: np.ndarray, min_size: int, factor: float) -> np.ndarray:
    """Add the boundary of a short run at the start or end of a segment (a warm-up, a
    short slow phase) that the kernel cost cannot pay for: its points' normal scores differ
    from the rest of the segment by more than ``SHORT_Z`` standard errors (times the square
    root of the dependence factor). The kernel gain of a segment is at most about twice its
    length, so runs shorter than ``2 log n`` iterations are never worth a penalty there, however
    far they lie from the rest."""
    n = scores.size
    short = int(math.ceil(SHORT_LOG * math.log(n)))
    cum = np.concatenate(([0.0], np.cumsum(scores)))
    limit = SHORT_Z * math.sqrt(factor)
    out = [int(b) for b in bounds]
    for a, c in zip(bounds[:-1], bounds[1:]):
        t = grid[(grid >= a + min_size) & (grid <= c - min_size)]
        t = t[(t - a <= short) | (c - t <= short)]
        if t.size == 0:
            continue
        nl, nr = t - a, c - t
        diff = (cum[t] - cum[a]) / nl - (cum[c] - cum[t]) / nr
        z = np.abs(diff) / np.sqrt(1.0 / nl + 1.0 / nr)
        for side in (t - a <= short, c - t <= short):
            if side.any() and z[side].max() > limit:
                out.append(int(t[side][int(np.argmax(z[side]))]))
    return np.unique(np.asarray(out, dtype=np.int64))


def normal_scores(y: np.ndarray) -> np.ndarray:
    """Normal quantiles of the ranks of y (ties share their mean rank), in numpy (scores.py:
    the same values as scipy's ndtri of rankdata, without importing scipy)."""
    return normal_quantile((average_ranks(y) - 0.5) / y.size)


def dependence_factor(scores: np.ndarray, bounds: np.ndarray) -> float:
    """(1 + rho) / (1 - rho) for the lag-1 autocorrelation rho of the normal scores about
    their segment means, rho clipped to [0, MAX_RHO]."""
    e = scores.copy()
    for a, b in zip(bounds[:-1], bounds[1:]):
        e[a:b] -= e[a:b].mean()
    inside = np.ones(e.size - 1, dtype=bool)
    inside[bounds[1:-1] - 1] = False  # pairs that straddle a boundary
    num = float(e[:-1][inside] @ e[1:][inside])
    den = float(e @ e)
    rho = min(max(num / den if den > 0 else 0.0, 0.0), MAX_RHO)
    return (1.0 + rho) / (1.0 - rho)
