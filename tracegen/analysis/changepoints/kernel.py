"""The segment cost of change-point detection: a Gaussian kernel on binned values.

Cost of a segment of ``L`` points: ``L - (1 / L) * sum_ij k(x_i, x_j)`` with
``k(x, y) = exp(-((x - y) / s) ** 2)`` (Harchaoui and Cappé 2007; Arlot, Celisse and Harchaoui
2019): the spread of the segment in the kernel's feature space, so a change of level, of
spread or of the mixture of modes all raise it, without a noise model. ``s`` is the median
distance between two values of the trace (the median heuristic), which makes the cost
unit-free; values further than ``CLIP`` bandwidths from the median are clipped there (a spike
is as far from the bulk at 12 bandwidths as at 100).

Why binned: every value falls into one of at most ``2 * CLIP * BINS_PER_BANDWIDTH + 2`` bins of
a sixth of a bandwidth, and the kernel is evaluated between bin centres. A segment is then a
vector of bin counts ``c`` and ``sum_ij k = c' K c``, so the cost of any segment between two
chosen positions comes from prefix counts at those positions (one matrix product for all
pairs), and a boundary's best position at full resolution from running sums in O(window x
bins) instead of the O(n^2) kernel matrix an exact kernel method needs.
"""

from __future__ import annotations

import functools

import numpy as np

#: Bins per bandwidth (the kernel changes by under 3 % of its peak across one bin).
BINS_PER_BANDWIDTH = 6
#: Values beyond this many bandwidths from the median are clipped to it.
CLIP = 12.0
#: Pairs sampled for the median heuristic beyond SMALL points (all pairs below).
PAIRS = 4000
SMALL = 200
#: Longest window of positions one boundary is searched over at full resolution.
MAX_WINDOW = 8192

_TABLE: np.ndarray | None = None


def kernel_table() -> np.ndarray:
    """Kernel between every two bins of the clipped range (computed once)."""
    global _TABLE
    if _TABLE is None:
        d = np.arange(int(2 * CLIP * BINS_PER_BANDWIDTH) + 2) / BINS_PER_BANDWIDTH
        _TABLE = np.exp(-((d[:, None] - d[None, :]) ** 2))
    return _TABLE


@functools.lru_cache(maxsize=64)
def sampled_pairs(n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The index pairs the median heuristic samples for a trace of n values (``PAIRS``
    pairs, fixed seed), or None up to ``SMALL`` values, where it takes all pairs. Shared by
    both engines; the arrays are cached, so callers must not change them."""
    if n <= SMALL:
        return None
    rng = np.random.default_rng(0)
    return rng.integers(0, n, PAIRS), rng.integers(0, n, PAIRS)


def bandwidth(y: np.ndarray) -> float:
    """Median distance between two values of ``y`` (all pairs when short, else ``PAIRS``
    pairs drawn with a fixed seed, so the result is reproducible); the
    median of the non-zero distances when most values are equal; 0 when all are."""
    pairs = sampled_pairs(y.size)
    i, j = np.triu_indices(y.size, 1) if pairs is None else pairs
    d = np.abs(y[i] - y[j])
    s = float(np.median(d))
    if s > 0:
        return s
    d = d[d > 0]
    if d.size:
        return float(np.median(d))
    spread = float(y.max() - y.min())  # equal in every sampled pair, not in the trace
    return spread if spread > 0 else 0.0


class KernelCost:
    """Kernel segment costs of a finite trace ``y``."""

    def __init__(self, y: np.ndarray):
        self.n = n = y.size
        s = bandwidth(y)
        if s <= 0:  # a constant trace: one bin, no change to find
            self.bins, self.codes, self.K = 1, np.zeros(n, dtype=np.intp), np.ones((1, 1))
            return
        table = kernel_table()
        u = np.clip((y - np.median(y)) / s, -CLIP, CLIP)
        raw = np.minimum(((u + CLIP) * BINS_PER_BANDWIDTH).astype(np.intp), table.shape[0] - 1)
        occupied = np.flatnonzero(np.bincount(raw, minlength=table.shape[0]))  # no sort: bins are few
        remap = np.zeros(table.shape[0], dtype=np.intp)
        remap[occupied] = np.arange(occupied.size)
        self.codes = remap[raw]
        self.bins = occupied.size
        self.K = table[np.ix_(occupied, occupied)]

    def counts(self, a: int, b: int) -> np.ndarray:
        """Bin counts of y[a:b]."""
        return np.bincount(self.codes[a:b], minlength=self.bins).astype(np.float64)

    def prefix_at(self, positions: np.ndarray) -> np.ndarray:
        """(len(positions), bins) counts of y[:p] for each sorted position p (one pass)."""
        cells = positions.size - 1
        cell = np.searchsorted(positions, np.arange(self.n), side="right") - 1
        inside = (cell >= 0) & (cell < cells)
        hist = np.bincount(cell[inside] * self.bins + self.codes[inside], minlength=cells * self.bins)
        out = np.zeros((positions.size, self.bins))
        np.cumsum(hist.reshape(cells, self.bins), axis=0, out=out[1:])
        return out

    def cost(self, a: int, b: int) -> float:
        c = self.counts(a, b)
        return (b - a) - float(c @ self.K @ c) / (b - a)

    def matrix(self, grid: np.ndarray, min_size: int) -> np.ndarray:
        """``C[t, s]``: cost of the segment grid[s]..grid[t] (inf when shorter than min_size)."""
        P = self.prefix_at(grid)
        Q = P @ self.K @ P.T  # Q[i, j] = c_i' K c_j, so c' K c of a difference is quadratic in Q
        d = np.diag(Q)
        L = (grid[:, None] - grid[None, :]).astype(np.float64)
        inner = d[:, None] + d[None, :] - Q - Q.T
        with np.errstate(divide="ignore", invalid="ignore"):
            C = L - inner / L
        C[L < min_size] = np.inf
        return C

    def split_costs(self, a: int, c: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions tau = lo..hi, cost of y[a:tau] plus cost of y[tau:c]) for a < lo <= hi < c."""
        tau = np.arange(lo, hi + 1)
        left = self._running(a, lo, hi, forward=True)
        right = self._running(hi, c, lo, forward=False)[::-1]
        nl, nr = tau - a, c - tau
        return tau, (nl - left / nl) + (nr - right / nr)

    def _running(self, start: int, end: int, edge: int, *, forward: bool) -> np.ndarray:
        """Forward: sum_ij k over y[start:t] for t = end..edge (end < edge), from the counts of
        y[start:end] plus one point at a time. Backward: over y[t:end] for t = start..edge,
        walking down from y[start:end]."""
        base = self.counts(start, end)
        walk = self.codes[end:edge] if forward else self.codes[edge:start][::-1]
        total = float(base @ self.K @ base)
        if walk.size == 0:
            return np.array([total])
        r0 = self.K @ base
        rows = self.K[walk]
        before = np.cumsum(rows, axis=0) - rows  # kernel of each new point with those added before it
        steps = 2.0 * (r0[walk] + before[np.arange(walk.size), walk]) + 1.0
        return np.concatenate(([total], total + np.cumsum(steps)))


def refine(cost: KernelCost, bounds: np.ndarray, min_size: int, grid: np.ndarray | None = None,
           rounds: int = 2) -> np.ndarray:
    """Move each inner boundary to its best position at full resolution between its
    neighbours (within MAX_WINDOW positions of where it is, and between the grid points next
    to it when a grid is given); a later round revisits only the boundaries next to one that
    moved."""
    b = [int(x) for x in bounds]
    todo = set(range(1, len(b) - 1))
    for _ in range(rounds):
        moved = set()
        for j in sorted(todo):
            a, c = b[j - 1], b[j + 1]
            lo, hi = a + min_size, c - min_size
            if grid is not None:
                k = int(np.searchsorted(grid, b[j]))
                lo, hi = max(lo, int(grid[max(k - 1, 0)])), min(hi, int(grid[min(k + 1, grid.size - 1)]))
            if hi - lo > MAX_WINDOW:
                lo, hi = max(lo, b[j] - MAX_WINDOW // 2), min(hi, b[j] + MAX_WINDOW // 2)
            if hi <= lo:
                continue
            tau, total = cost.split_costs(a, c, lo, hi)
            best = int(tau[int(np.argmin(total))])
            if best != b[j]:
                b[j] = best
                moved.add(j)
        todo = {k for j in moved for k in (j - 1, j + 1) if 0 < k < len(b) - 1}
        if not todo:
            break
    return np.array(b, dtype=np.int64)
