"""Change points in the distribution of a trace, from ranks alone (empirical-distribution cost).

Why ranks: real latency traces are heavy-tailed, spiky and often multi-modal (a CPU time
slice makes a trace jump between 3, 7 and 11 ms from one call to the next); a change is often
a change of the mixture, not of the mean. The cost of a segment is the non-parametric
likelihood of Zou et al. (2014) as Haynes, Fearnhead and Eckley (2017, ED-PELT) approximate
it: the binomial log-likelihood of the segment's empirical distribution function at ``K``
quantiles of the whole trace, spaced evenly on the logit scale, weighted by
``2 log(2n - 1) / K``. It depends on the ranks only, so the same penalty holds for any noise
distribution, and one spike moves one count by one.

Penalty: ``PENALTY_FACTOR * log n`` per change point. On independent noise, the largest gain
of one split (segments of at least 5) has its 95th percentile at 3.6-4.4 log n for
n = 30..5000 (simulation, 100-300 series per n; the ranks make it the same for every noise
distribution), so a segment must beat what pure noise gives in 19 traces of 20.

Visible: a significant change may still be too small to matter; see ``_merge_similar``.

Search: exact optimal partitioning (every segment cost at once, as a matrix) with boundaries
on a grid of at most ``MAX_GRID`` points plus the candidates the caller passes (the change
points of the linear model, which locate short segments of long traces), then each boundary
moves to its best position at full resolution between its grid neighbours.
"""

from __future__ import annotations

import math

import numpy as np

PENALTY_FACTOR = 4.0
#: Adjacent segments must differ by this Kolmogorov-Smirnov distance (see _merge_similar) ...
MIN_DISTANCE = 0.5
#: ... unless (positive values) their medians differ by this factor: a 5 % shift of the level
#: is a change to report whatever the shape (the tiers' MIN_RATIO is the same).
MIN_RATIO = 1.05
#: Proposals (exact candidate positions) for long traces: see proposals().
PROPOSAL_Z = 4.0
MAX_PROPOSALS = 64
#: Grid points of the exact search (beyond them, block edges plus candidates).
MAX_GRID = 128


def quantile_levels(n: int) -> np.ndarray:
    """The K = ceil(4 log n) probabilities of ED-PELT: logit-evenly spaced, denser in the tails."""
    k_count = max(2, math.ceil(4.0 * math.log(n)))
    c = -math.log(2 * n - 1)
    k = np.arange(1, k_count + 1)
    return 1.0 / (1.0 + (2 * n - 1) * np.exp(c / k_count * (2 * k - 1)))


class RankCost:
    """Counts of points at or below each threshold, as prefix sums at chosen positions."""

    def __init__(self, y: np.ndarray):
        n = y.size
        levels = quantile_levels(n)
        q = np.unique(np.quantile(y, levels))
        q = q[q < y.max()]  # a threshold at the maximum counts every point: no information
        self.n, self.k = n, q.size
        self.weight = 2.0 * math.log(2 * n - 1) / max(1, levels.size)
        # bucket j: q[j-1] < y <= q[j]; "at or below threshold k" is bucket <= k
        self.bucket = np.searchsorted(q, y, side="left").astype(np.intp)
        x = np.arange(n + 1, dtype=np.float64)
        self.xlogx = x * np.log(np.maximum(x, 1.0))  # counts are integers: look x log x up

    def prefix_at(self, positions: np.ndarray) -> np.ndarray:
        """(len(positions), K) counts of points at or below each threshold among y[:p]."""
        positions = np.asarray(positions)
        cells = positions.size - 1
        cell = np.searchsorted(positions, np.arange(self.n), side="right") - 1
        hist = np.bincount(cell * (self.k + 1) + self.bucket, minlength=cells * (self.k + 1))
        hist = hist[: cells * (self.k + 1)].reshape(cells, self.k + 1)[:, : self.k]
        out = np.zeros((positions.size, self.k), dtype=np.intp)
        np.cumsum(np.cumsum(hist, axis=1), axis=0, out=out[1:])
        return out

    def counts(self, a: int, b: int) -> np.ndarray:
        """(K,) counts among y[a:b]."""
        return np.cumsum(np.bincount(self.bucket[a:b], minlength=self.k + 1))[: self.k]

    def running(self, a: int, b: int) -> np.ndarray:
        """(b - a + 1, K) counts among y[a:x] for every x in a..b."""
        onehot = np.zeros((b - a + 1, self.k + 1), dtype=np.intp)
        onehot[np.arange(1, b - a + 1), self.bucket[a:b]] = 1
        return np.cumsum(np.cumsum(onehot, axis=0), axis=1)[:, : self.k]

    def split(self, a: int, x: int, c: int) -> float:
        """Cost of [a, x) and [x, c) as two segments."""
        left, whole = self.counts(a, x), self.counts(a, c)
        return float(self.cost(left, x - a) + self.cost(whole - left, c - x))

    def cost(self, counts: np.ndarray, length) -> np.ndarray:
        """Weighted negative binomial log-likelihood of segments: ``counts`` (..., K) at or
        below each threshold among ``length`` points: L log L - c log c - (L - c) log (L - c)."""
        length = np.asarray(length)
        g = self.xlogx
        inner = g[counts] + g[length[..., None] - counts]
        return self.weight * (self.k * g[length] - inner.sum(axis=-1))


class RankSegmenter:
    """Penalised rank segmentation of finite ``y``: grid and segment costs built once, then
    solved for any penalty (the dependence correction re-solves with a larger one)."""

    def __init__(self, y: np.ndarray, min_size: int, candidates=()):
        n = y.size
        self.n, self.min_size, self.y = n, min_size, y
        self.cost = RankCost(y)
        step = max(1, -(-n // MAX_GRID))
        grid = np.arange(0, n, step)
        cand = np.asarray([c for c in candidates if 0 < c < n], dtype=np.int64)
        if cand.size and step > 1:
            grid = np.union1d(grid, np.clip(np.r_[cand - 1, cand, cand + 1], 1, n - 1))
        self.grid = grid = np.r_[grid[grid < n], n]
        self.step = step
        pre = self.cost.prefix_at(grid)
        length = grid[:, None] - grid[None, :]  # C[t, s]: segment grid[s]..grid[t]
        t_idx, s_idx = np.nonzero(length >= min_size)
        self.C = np.full((grid.size, grid.size), np.inf)
        if self.cost.k:
            self.C[t_idx, s_idx] = self.cost.cost(pre[t_idx] - pre[s_idx], length[t_idx, s_idx])
        else:
            self.C[t_idx, s_idx] = 0.0

    def segment(self, pen: float) -> np.ndarray:
        """Boundaries (0 and n included)."""
        bounds = optimal_partition(self.C, self.grid, pen)
        if self.step > 1:
            bounds = _refine(self.cost, bounds, self.grid, self.min_size)
        return _merge_similar(self.cost, self.y, bounds)


def proposals(scores: np.ndarray, min_size: int) -> np.ndarray:
    """Positions where a short window of normal scores changes its mean or its spread by more
    than ``PROPOSAL_Z`` standard errors (local maxima, the ``MAX_PROPOSALS`` strongest), at
    window half-widths 2 ``min_size`` and 8 ``min_size``: exact candidates for the coarse grid."""
    n = scores.size
    out = []
    cum = np.concatenate(([0.0], np.cumsum(scores)))
    cum2 = np.concatenate(([0.0], np.cumsum(scores * scores - 1.0)))
    for h in (2 * min_size, 8 * min_size):
        if n < 4 * h:
            continue
        t = np.arange(h, n - h + 1)
        for c, var in ((cum, 1.0), (cum2, 2.0)):  # normal scores: mean 0, var 1; squares: var 2
            z = np.abs((c[t + h] - 2 * c[t] + c[t - h]) / h) / math.sqrt(2.0 * var / h)
            peak = window_max(z, h)
            hit = np.flatnonzero((z > PROPOSAL_Z) & (z >= peak))
            out.append(np.c_[t[hit], z[hit]])
    if not out:
        return np.empty(0, dtype=np.int64)
    found = np.concatenate(out)
    found = found[np.argsort(-found[:, 1])][:MAX_PROPOSALS]
    return np.unique(found[:, 0].astype(np.int64))


def window_max(z: np.ndarray, h: int) -> np.ndarray:
    """``max(z[i - h + 1 : i + h])`` (clipped at the ends) for every i, exactly: the maximum of
    power-of-two windows doubled in log2(h) passes (two of them overlap to cover each window),
    instead of 2 (h - 1) shifted passes (5 x 10^5 points, h = 40: 0.01 s instead of 0.03 s)."""
    width = 2 * h - 1
    if h <= 1 or z.size == 0:
        return z.copy()
    pad = np.full(h - 1, -np.inf)
    m = np.concatenate([pad, z, pad])  # m[j] becomes max(padded[j : j + p])
    p = 1
    while 2 * p <= width:
        np.maximum(m[:-p], m[p:], out=m[:-p])
        p *= 2
    return np.maximum(m[: z.size], m[width - p : width - p + z.size])


def optimal_partition(C: np.ndarray, grid: np.ndarray, pen: float) -> np.ndarray:
    """Optimal partitioning over a matrix of segment costs (``C[t, s]`` = cost of the segment
    grid[s]..grid[t], inf where not allowed): F[t] = min_s F[s] + C[t, s] + pen. Returns the
    boundaries including 0 and n; one segment when no partition is finite. Shared by the rank
    and the linear models."""
    m = grid.size - 1
    F = np.empty(m + 1)
    F[0] = -pen
    prev = np.zeros(m + 1, dtype=np.intp)
    for t in range(1, m + 1):
        row = F[:t] + C[t, :t]
        j = int(np.argmin(row))
        F[t], prev[t] = row[j] + pen, j
    if not np.isfinite(F[m]):
        return np.array([0, grid[m]])
    out = [m]
    while out[-1] > 0:
        out.append(int(prev[out[-1]]))
    return grid[np.array(out[::-1])]


def _refine(cost: RankCost, bounds: np.ndarray, grid: np.ndarray, min_size: int, rounds: int = 2) -> np.ndarray:
    """Move each inner boundary to its best position between its grid neighbours, at full resolution."""
    b = [int(x) for x in bounds]
    k = np.searchsorted(grid, bounds)
    reach_lo = grid[np.maximum(k - 1, 0)]
    reach_hi = grid[np.minimum(k + 1, grid.size - 1)]
    for _ in range(rounds):
        moved = False
        for j in range(1, len(b) - 1):
            a, c = b[j - 1], b[j + 1]
            lo, hi = max(a + min_size, int(reach_lo[j])), min(c - min_size, int(reach_hi[j]))
            if hi <= lo:
                continue
            tau = np.arange(lo, hi + 1)
            left = cost.counts(a, lo) + cost.running(lo, hi)  # counts of y[a:tau]
            right = cost.counts(a, c) - left
            total = cost.cost(left, tau - a) + cost.cost(right, c - tau)
            best = int(tau[int(np.argmin(total))])
            if best != b[j]:
                b[j], moved = best, True
        if not moved:
            break
    return np.array(b, dtype=np.int64)


def _merge_similar(cost: RankCost, y: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Drop boundaries between segments whose distribution functions differ by less than
    ``MIN_DISTANCE`` at every threshold (a Kolmogorov-Smirnov distance) and, for positive
    values, whose medians differ by less than ``MIN_RATIO``, least different first. With thousands of points a shift of a twentieth of the noise is significant, but
    it is not a change anyone sees on the chart or acts on (RTT traces: 0.1 ms on 154 ms)."""
    b = [int(x) for x in bounds]
    positive = bool(y.min() > 0)
    cdf = [cost.counts(x, z) / (z - x) for x, z in zip(b[:-1], b[1:])]
    med = [float(np.median(y[x:z])) for x, z in zip(b[:-1], b[1:])]
    while len(b) > 2:
        ks = np.array([np.abs(cdf[i] - cdf[i + 1]).max(initial=0.0) for i in range(len(cdf) - 1)])
        if positive:
            ratio = np.abs(np.log(np.array(med[1:]) / np.array(med[:-1])))
            ks = np.where(ratio >= math.log(MIN_RATIO), np.inf, ks)
        j = int(np.argmin(ks))
        if ks[j] >= MIN_DISTANCE:
            break
        del b[j + 1]
        x, z = b[j], b[j + 1]
        cdf[j : j + 2] = [cost.counts(x, z) / (z - x)]
        med[j : j + 2] = [float(np.median(y[x:z]))]
    return np.array(b, dtype=np.int64)


def no_change_at(values: np.ndarray, split: int, pen: float) -> bool:
    """Whether the rank model finds no change at ``split`` in ``values`` (gain below ``pen``)."""
    cost = RankCost(values)
    if cost.k == 0:
        return True
    n = values.size
    whole = cost.counts(0, n)
    left = cost.counts(0, split)
    gain = cost.cost(whole, n) - cost.cost(left, split) - cost.cost(whole - left, n - split)
    return bool(gain < pen)
