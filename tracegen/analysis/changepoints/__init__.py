"""Change points along the iteration index of a latency trace.

``detect_changepoints(values)`` returns the indices where a new segment starts (0 excluded).

Two models, each for what it sees best:

* ``rank``: changes of the distribution (level, spread, mixture of modes), from ranks alone,
  so heavy tails, spikes and multi-modal noise need no model (rank.py). It decides which
  change points there are.
* ``linear``: piecewise flat or linear segments of the spike-clipped log trace (linear.py).
  It proposes exact positions (short segments of long traces, which a coarse grid misses)
  and turns a staircase that the rank model cuts out of a ramp back into one ramp.
"""

from __future__ import annotations

import math

import numpy as np

from tracegen.analysis.changepoints.linear import merge_ramps
from tracegen.analysis.changepoints.rank import MAX_GRID, PENALTY_FACTOR, RankSegmenter, no_change_at, proposals
from tracegen.analysis.changepoints.scores import average_ranks, normal_quantile
from tracegen.analysis.changepoints.signal import all_finite, as_array, fill_missing, noise_scale, to_log

#: Shortest reported segment, in iterations.
MIN_SIZE = 5
#: Re-estimations of the serial dependence (each from the segmentation before it).
MAX_ROUNDS = 3
#: A ramp's knot may cost the rank model this share of one change point's penalty.
KNOT_SLACK = 2.0
#: Largest lag-1 autocorrelation credited (a factor of 39): beyond it a trace is a random walk.
MAX_RHO = 0.95

__all__ = ["MIN_SIZE", "all_finite", "as_array", "detect_changepoints", "noise_scale", "to_log"]


def detect_changepoints(values, *, min_size: int | None = None, penalty: float | None = None) -> list[int]:
    """Indices where a new segment of ``values`` starts, sorted, 0 excluded.

    ``values``: 1-D latencies (list, numpy array or polars Series), in iteration order.
    ``min_size``: shortest segment, in iterations (default ``MIN_SIZE`` = 5).
    ``penalty``: cost of one more change point in the rank model's units (default
    ``rank.PENALTY_FACTOR * log(n)``).
    Non-finite values are replaced by the previous finite one (they carry no evidence).
    """
    y = fill_missing(as_array(values))
    n = y.size
    min_size = MIN_SIZE if min_size is None else max(1, int(min_size))
    if n < 2 * min_size:
        return []
    # Off-grid proposals matter only where the rank search runs on a coarser grid than every point.
    base = PENALTY_FACTOR * math.log(n) if penalty is None else float(penalty)
    scores = normal_scores(y)
    extra = proposals(scores, min_size) if n > MAX_GRID else ()
    solver = RankSegmenter(y, min_size, candidates=extra)
    bounds = solver.segment(base)
    factor = 1.0
    for _ in range(MAX_ROUNDS):
        factor = dependence_factor(scores, bounds)
        new = solver.segment(base * factor)
        if np.array_equal(new, bounds):
            break
        bounds = new
    pen = base * factor
    cost = solver.cost

    def same(residuals, split):
        return no_change_at(residuals, split, pen)

    def accept(a, old, new, c):
        # A knot may move a boundary only where the rank model locates it no better (within
        # the evidence of one change point: a ramp's end is diffuse, a step is sharp).
        return cost.split(a, new, c) <= cost.split(a, old, c) + KNOT_SLACK * pen

    bounds = merge_ramps(y, bounds, min_size, same, accept)
    return [int(b) for b in bounds[1:-1]]


def normal_scores(y: np.ndarray) -> np.ndarray:
    """Normal quantiles of the ranks of y (ties share their mean rank), in numpy (scores.py:
    the same values as scipy's ndtri of rankdata, without importing scipy)."""
    return normal_quantile((average_ranks(y) - 0.5) / y.size)


def dependence_factor(scores: np.ndarray, bounds: np.ndarray) -> float:
    """(1 + rho) / (1 - rho) for the lag-1 autocorrelation rho of the normal scores about
    their segment means: the factor by which serial dependence inflates the evidence for a
    change (the long-run variance of an AR(1) over its variance), at least 1."""
    e = scores.copy()
    for a, b in zip(bounds[:-1], bounds[1:]):
        e[a:b] -= e[a:b].mean()
    inside = np.ones(e.size - 1, dtype=bool)
    inside[bounds[1:-1] - 1] = False  # pairs that straddle a boundary
    num = float(e[:-1][inside] @ e[1:][inside])
    den = float(e @ e)
    rho = min(max(num / den if den > 0 else 0.0, 0.0), MAX_RHO)
    return (1.0 + rho) / (1.0 - rho)
