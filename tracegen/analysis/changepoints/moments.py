"""Weighted moments of a trace over any segment, for the linear model's exact segment costs.

Weighted moments are sums of w, w t, w t^2, w z, w z t and w z^2 (t counted from some origin);
summed per chunk and accumulated to grid points, they give any segment's cost in O(1).
"""

from __future__ import annotations

import numpy as np

#: Segments up to this long have their sums taken directly (about their own start), so the
#: time moments of short segments far into a long trace keep full precision.
DIRECT = 512

# --- weighted moments --------------------------------------------------------------------

# Weighted moments are stacked along axis 0 of an array, in this order: sums of w, w t,
# w t^2, w z, w z t and w z^2 (t counted from some origin). The weights w and w z^2 may be
# constants (floats) instead of per-point arrays.
W, WT, WTT, WZ, WZT, WZZ = range(6)


def _part(a, lo: int, hi: int):
    """Slice of a per-point array; a constant stays a constant."""
    return a[lo:hi] if isinstance(a, np.ndarray) else a


def _shifted(m: np.ndarray, d) -> np.ndarray:
    """The same moments with t counted from d later (t' = t - d)."""
    out = m.copy()
    out[WT] -= d * m[W]
    out[WTT] -= d * (2.0 * m[WT] - d * m[W])
    out[WZT] -= d * m[WZ]
    return out


def _local_moments(w, wz: np.ndarray, wzz) -> np.ndarray:
    """Moments of each row of 2-D arrays (or of a 1-D array), t counted from the row start.

    Matrix products throughout: numpy's sum along a short last axis is several times slower.
    """
    t = np.arange(wz.shape[-1], dtype=np.float64)
    powers = np.stack((np.ones_like(t), t, t * t), axis=-1)
    a = w @ powers if isinstance(w, np.ndarray) else np.broadcast_to(w * powers.sum(axis=0), wz.shape[:-1] + (3,))
    b = wz @ powers[:, :2]
    c = wzz @ powers[:, 0] if isinstance(wzz, np.ndarray) else np.full(wz.shape[:-1], wzz * t.size)
    return np.stack((a[..., 0], a[..., 1], a[..., 2], b[..., 0], b[..., 1], c))


def _running(w, wz: np.ndarray, wzz) -> np.ndarray:
    """Prefix moments at every position 0..len (shape (6, len + 1)), t counted from the first point."""
    t = np.arange(wz.size, dtype=np.float64)
    w = w if isinstance(w, np.ndarray) else np.full(wz.size, w)
    wzz = wzz if isinstance(wzz, np.ndarray) else np.full(wz.size, wzz)
    wt = w * t
    out = np.zeros((6, wz.size + 1))
    for row, a in zip(range(6), (w, wt, wt * t, wz, wz * t, wzz)):
        np.cumsum(a, out=out[row, 1:])
    return out


def _chunk_moments(w, wz: np.ndarray, wzz, m: int, chunk: int) -> np.ndarray:
    """Moments of the first m chunks of ``chunk`` points (t from 0), shape (6, m).

    Sums over each chunk come from one matrix product per weight (t counted from the chunk
    start, written out row by row so every row is contiguous), then move to the global t.
    """
    cut = m * chunk
    s = np.arange(chunk, dtype=np.float64)
    powers = np.stack((np.ones(chunk), s, s * s))  # (3, chunk)
    out = np.empty((6, m))
    if isinstance(w, np.ndarray):
        out[[W, WT, WTT]] = powers @ w[:cut].reshape(m, chunk).T
    else:
        out[[W, WT, WTT]] = (w * powers.sum(axis=1))[:, None]
    out[[WZ, WZT]] = powers[:2] @ wz[:cut].reshape(m, chunk).T
    out[WZZ] = (wzz[:cut].reshape(m, chunk) @ powers[0]) if isinstance(wzz, np.ndarray) else wzz * chunk
    e = np.arange(0, cut, chunk, dtype=np.float64)
    out[WTT] += e * (2.0 * out[WT] + e * out[W])
    out[WT] += e * out[W]
    out[WZT] += e * out[WZ]
    return out


class _Sums:
    """Weighted moments of z over any segment.

    Moments are summed per chunk of ``chunk`` points (a remainder is one more, shorter chunk)
    and, once the grid is known, accumulated to every grid point; any other position adds
    the chunks since the grid point before it and its partial chunk. (A running sum over all
    chunks would cost more than everything else here.)
    """

    def __init__(self, w, wz: np.ndarray, wzz, chunk: int):
        n = wz.size
        m = n // chunk
        self.n, self.chunk = n, chunk
        self.w, self.wz, self.wzz = w, wz, wzz
        cut = m * chunk
        self.moments = _chunk_moments(w, wz, wzz, m, chunk)
        if cut < n:
            tail = _shifted(_local_moments(*(_part(a, cut, n) for a in (w, wz, wzz))), -float(cut))
            self.moments = np.concatenate((self.moments, tail[:, None]), axis=1)
        #: Sums of w and w z per chunk, for the contrast screen.
        self.chunk_w, self.chunk_wz = self.moments[W, :m], self.moments[WZ, :m]

    def _column(self, pos):
        """Index of the chunk that starts at ``pos`` (n: one past the last chunk)."""
        return np.where(pos >= self.n, self.moments.shape[1], pos // self.chunk)

    def set_grid(self, grid: np.ndarray) -> None:
        """Accumulate the moments to each point of ``grid`` (ascending chunk starts, 0 first, n last)."""
        between = np.add.reduceat(self.moments, self._column(grid)[:-1], axis=1)
        self.grid = grid
        self._at: dict[int, np.ndarray] = {}
        self.grid_prefix = np.zeros((6, grid.size))
        np.cumsum(between, axis=1, out=self.grid_prefix[:, 1:])

    def at(self, pos: int) -> np.ndarray:
        """Moments over [0, pos), t counted from 0 (cached: boundaries are asked for again and again)."""
        out = self._at.get(pos)
        if out is None:
            out = self._at[pos] = self._prefix(pos)
        return out

    def _prefix(self, pos: int) -> np.ndarray:
        k = int(np.searchsorted(self.grid, pos, side="right")) - 1
        g = int(self.grid[k])
        if pos == g:
            return self.grid_prefix[:, k]
        c0, c1 = int(self._column(g)), pos // self.chunk
        out = self.grid_prefix[:, k] + self.moments[:, c0:c1].sum(axis=1)
        e = c1 * self.chunk
        if pos > e:
            out += _shifted(self.local(e, pos), -float(e))
        return out

    def local(self, a: int, b: int) -> np.ndarray:
        """Moments of [a, b) summed directly, t counted from a."""
        return _local_moments(_part(self.w, a, b), self.wz[a:b], _part(self.wzz, a, b))

    def running(self, a: int, b: int) -> np.ndarray:
        """Moments of [a, x) for every x in a..b, t counted from a."""
        return _running(_part(self.w, a, b), self.wz[a:b], _part(self.wzz, a, b))

    def segment(self, a: int, b: int) -> np.ndarray:
        """Moments of [a, b) with t counted from a."""
        if b - a <= DIRECT:
            return self.local(a, b)
        return _shifted(self.at(b) - self.at(a), float(a))
