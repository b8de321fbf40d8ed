"""The change-point pipeline in numpy: the reference for compiled.py, and the path taken where
numba cannot be imported. The steps are described in ``tracegen.analysis.changepoints``."""

from __future__ import annotations

import math

import numpy as np

from tracegen.analysis.changepoints.kernel import KernelCost, refine
from tracegen.analysis.changepoints.scores import average_ranks, normal_quantile
from tracegen.analysis.changepoints.search import candidates, optimal_partition
from tracegen.analysis.changepoints.visible import merge_invisible

#: Largest lag-1 autocorrelation credited by the dependence factor (a factor of 4).
MAX_RHO = 0.6
#: The difference-based estimate of rho (see difference_rho) reads at most this many
#: positions, evenly spread, so it costs the same on 10^4 and 10^6 points.
DIFF_SAMPLE = 20000

#: Short runs at a segment's edges (see short_edges): at most SHORT_LOG log n iterations,
#: and their normal scores at least SHORT_Z standard errors from the rest of the segment.
SHORT_LOG = 4.0
SHORT_Z = 5.0


def detect(y: np.ndarray, min_size: int, base: float) -> np.ndarray:
    """Boundaries (0 and n included) of the change points of a finite trace ``y`` of at least
    ``2 min_size`` values, penalty ``base`` before the dependence factor."""
    n = y.size
    cost = KernelCost(y)
    if cost.bins <= 1:
        return np.array([0, n], dtype=np.int64)
    scores = normal_scores(y)
    grid = np.r_[0, candidates(scores, min_size), n]
    C = cost.matrix(grid, min_size)
    bounds = optimal_partition(C, grid, base)
    factor = dependence_factor(scores, bounds, min_size)
    if factor > 1.0:
        bounds = optimal_partition(C, grid, base * factor)
    bounds = refine(cost, bounds, min_size, grid)
    bounds = short_edges(scores, bounds, grid, min_size, factor)
    return merge_invisible(y, bounds)


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


def dependence_factor(scores: np.ndarray, bounds: np.ndarray, min_size: int) -> float:
    """(1 + rho) / (1 - rho), rho clipped to [0, MAX_RHO]: the smaller of two estimates of the
    lag-1 autocorrelation of the noise, ``residual_rho`` and, where it is defined,
    ``difference_rho``. Each is inflated by what the other is blind to: the residual estimate
    by every change the plain penalty missed (its points sit on one side of the wrong mean, one
    correlated run per missed change: RIPE Atlas traces hold hundreds of short level shifts),
    the difference estimate by dependence that lasts beyond its lags."""
    rho = residual_rho(scores, bounds)
    by_differences = difference_rho(scores, min_size)
    return factor_of(rho if by_differences is None else min(rho, by_differences))


def factor_of(rho: float) -> float:
    """The long-run variance factor (1 + rho) / (1 - rho) of an AR(1), rho clipped to [0, MAX_RHO]."""
    rho = min(max(rho, 0.0), MAX_RHO)
    return (1.0 + rho) / (1.0 - rho)


def residual_rho(scores: np.ndarray, bounds: np.ndarray) -> float:
    """Lag-1 autocorrelation of the normal scores about their segment means (pairs that
    straddle a boundary left out)."""
    e = scores.copy()
    for a, b in zip(bounds[:-1], bounds[1:]):
        e[a:b] -= e[a:b].mean()
    inside = np.ones(e.size - 1, dtype=bool)
    inside[bounds[1:-1] - 1] = False  # pairs that straddle a boundary
    num = float(e[:-1][inside] @ e[1:][inside])
    den = float(e @ e)
    return num / den if den > 0 else 0.0


def difference_rho(scores: np.ndarray, min_size: int) -> float | None:
    """Lag-1 autocorrelation from the spread of differences: for stationary noise,
    |x[t+k] - x[t]| has a spread proportional to sqrt(1 - r(k)), so with r(k) near 0 at lags
    k of ``min_size`` to ``2 min_size``, rho = 1 - (spread at lag 1 / spread at those lags)^2.
    Spreads are median absolute differences (the lags' medians pooled by their median), so a
    level shift, which changes only the k differences that straddle it, does not move them.
    None where it is undefined: fewer than ``2 min_size`` positions, or a spread of 0 (mostly
    tied values)."""
    n = scores.size
    longest = 2 * min_size
    if n - longest < 2 * min_size:
        return None
    step = max(1, (n - longest) // DIFF_SAMPLE)
    t = np.arange(0, n - longest, step)
    at_one = float(np.median(np.abs(scores[t + 1] - scores[t])))
    at_lags = float(np.median([np.median(np.abs(scores[t + k] - scores[t])) for k in range(min_size, longest + 1)]))
    if at_lags <= 0:
        return None
    return 1.0 - (at_one / at_lags) ** 2
