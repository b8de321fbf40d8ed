"""Change points along the iteration index of a latency trace.

``detect_changepoints(values)`` returns the indices where a new segment starts (0 excluded).
Every segment is flat or a straight line, so a ramp ("normal -> linear slow-down -> stable")
gives two change points, at its start and at its end, instead of a staircase.

How, and why:

1. Noise model. Latency noise is multiplicative and heavy-tailed: its spread grows with the
   level. The noise scale ``sigma`` is the MAD of the log-ratios of neighbours (level shifts
   and spikes touch few pairs), so the penalty needs no per-trace tuning; a segment's squared
   error is measured in units of (sigma * its level)^2. Values that are not all positive use
   absolute noise (MAD of first differences) instead.
2. Spikes. Isolated spikes (5-50x the level) would each buy a segment under a squared-error
   cost, so a point further than ``CLIP_SIGMAS`` noise scales from the median of its block is
   clipped to its running median of ``2 * REFERENCE_HALF + 1`` +- ``CLIP_SIGMAS`` noise
   scales. A running median keeps steps sharp and ignores up to five spikes among eleven.
3. Exact penalised segmentation (optimal partitioning) of the clipped trace. Segment cost:
   least squared error of a constant, or of a line plus ``SLOPE_PENALTY_FACTOR * log(n)``
   (BIC: one more parameter). Each segment costs ``PENALTY_FACTOR * log(n)``.
4. Speed. Prefix sums of the weighted moments every ``CHUNK`` points give the exact cost of
   any segment. The partition is first solved exactly with boundaries restricted to a grid:
   the edges of at most ``MAX_BLOCKS`` blocks, plus chunk edges where a local contrast
   flags a change (so short segments of long traces are not averaged away). Each boundary
   then moves to its best position at full resolution between its grid neighbours;
   boundaries that no longer pay for their penalty are dropped, and two boundaries that
   bracket one change are merged. Cost: about ten O(n) numpy passes plus O(grid^2)
   vectorised work, whatever the trace.
"""

from __future__ import annotations

import math

import numpy as np

#: Shortest reported segment, in iterations.
MIN_SIZE = 5
#: Penalty per segment, in units of sigma^2 * log(n). BIC would be 2 (a level and a
#: location); 3 leaves room for the mild autocorrelation and non-normal tails of real traces.
PENALTY_FACTOR = 3.0
#: Extra penalty for a sloped segment, in units of sigma^2 * log(n) (BIC: one parameter).
SLOPE_PENALTY_FACTOR = 1.0
#: Points this many noise scales away from their local level are clipped.
CLIP_SIGMAS = 3.0
#: The first pass segments on at most this many blocks (exact up to this many points) ...
MAX_BLOCKS = 256
#: ... plus at most MAX_CANDIDATES edges of chunks of CHUNK points where the weighted means
#: of the two chunks before and the two after differ by more than CANDIDATE_Z standard errors
#: (local maxima only): short segments in long traces would vanish in block sums.
CHUNK = 8
MAX_CANDIDATES = 96
CANDIDATE_Z = 4.0
#: How far (in chunks) to look for the half-contrast points on either side of a candidate.
HALF_SEARCH = 64
#: A boundary next to a ramp may move this far to the knot of a continuous fit.
HINGE_REACH = 50
#: Spike screening compares points with the median of blocks of at least this many points;
#: a flagged point is clipped around its running median over 2 * REFERENCE_HALF + 1 points.
MIN_REFERENCE_BLOCK = 16
REFERENCE_HALF = 5
#: MAD to standard deviation for a normal distribution.
MAD_TO_SD = 1.4826
#: The noise scale is estimated from about this many neighbour pairs (evenly spread).
NOISE_SAMPLE = 1 << 13


def detect_changepoints(values, *, min_size: int | None = None, penalty: float | None = None) -> list[int]:
    """Indices where a new segment of ``values`` starts, sorted, 0 excluded.

    ``values``: 1-D latencies (list, numpy array or polars Series), in iteration order.
    ``min_size``: shortest segment, in iterations (default ``MIN_SIZE`` = 5).
    ``penalty``: cost of one more segment in units of the noise variance
    (default ``PENALTY_FACTOR * log(n)``).
    Non-finite values are replaced by the previous finite one (they carry no evidence).
    """
    y = _finite(as_array(values))
    n = y.size
    min_size = MIN_SIZE if min_size is None else max(1, int(min_size))
    if n < 2 * min_size:
        return []
    chunk = CHUNK if n > CHUNK * MAX_BLOCKS else 1
    block = chunk * max(1, -(-n // (MAX_BLOCKS * chunk)))
    log_n = math.log(n)
    pen = PENALTY_FACTOR * log_n if penalty is None else float(penalty)
    sums = _Sums(*robust_signal(y, max(block, MIN_REFERENCE_BLOCK)), chunk)
    costs = _Costs(SLOPE_PENALTY_FACTOR * log_n)
    grid = np.r_[np.arange(0, n - block // 2, block), n]  # block edges; the last block takes the rest
    if chunk > 1:
        grid = np.union1d(grid, _contrast_candidates(sums))
    sums.set_grid(grid)
    bounds = _optimal_partition(sums, costs, grid, min_size, pen)
    if block > 1:
        bounds = _refine(sums, costs, bounds, grid, min_size)
        bounds = _tidy(sums, costs, bounds, min_size, 2 * max(block, min_size), pen)
    bounds = _join_ramps(sums, costs, bounds, min_size, log_n)
    return [int(b) for b in bounds[1:-1]]


# --- input and robust signal -------------------------------------------------------------


def as_array(values) -> np.ndarray:
    """1-D float64 array from a list, numpy array or polars Series (nulls become NaN)."""
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = values.to_numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of latencies, got shape {arr.shape}")
    return arr


def all_finite(y: np.ndarray) -> bool:
    """True when no value is NaN or infinite (a sum is one fast pass; exact check if it overflows)."""
    return bool(np.isfinite(y.sum())) or bool(np.isfinite(y).all())


def _finite(y: np.ndarray) -> np.ndarray:
    """Replace non-finite entries by the previous finite value (the first finite one at the start)."""
    if all_finite(y):
        return y
    bad = ~np.isfinite(y)
    if bad.all():
        return np.zeros_like(y)
    idx = np.where(bad, 0, np.arange(y.size))
    np.maximum.accumulate(idx, out=idx)
    first = np.flatnonzero(~bad)[0]
    idx[:first] = first
    return y[idx]


def to_log(y: np.ndarray) -> np.ndarray:
    """float32 log(y) when every value is positive (multiplicative noise becomes additive), else float32 y.

    float32 is twice as fast; its 1e-7 resolution is far below latency noise.
    """
    y32 = y.astype(np.float32)
    return np.log(y32, out=y32) if y.size and y.min() > 0 else y32


def noise_scale(z: np.ndarray, *, relative: bool = False) -> float:
    """Robust standard deviation of the point-to-point noise of ``z``.

    MAD of the first differences / sqrt(2), from about ``NOISE_SAMPLE`` evenly spread pairs
    (``relative``: differences of log z, i.e. noise as a fraction of the level). Quantised
    traces (most differences exactly 0) fall back to the mean absolute deviation of the
    differences. Returns 0.0 for a constant trace.
    """
    if z.size < 3:
        return 0.0
    step = max(1, (z.size - 1) // NOISE_SAMPLE)
    count = (z.size - 1) // step
    a = z[:-1:step][:count].astype(np.float64)
    b = z[1::step][:count].astype(np.float64)
    d = np.log(b / a) if relative else b - a
    dev = np.abs(d - np.median(d))
    sigma = MAD_TO_SD * float(np.median(dev)) / math.sqrt(2.0)
    if sigma <= 0.0:
        sigma = math.sqrt(math.pi / 2.0) * float(dev.mean()) / math.sqrt(2.0)
    return sigma


def robust_signal(y: np.ndarray, ref_block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spike-clipped trace as weights w, w z and w z^2 per point (what the segment costs need).

    Positive values (relative noise): z = y / (median * sigma) with sigma the relative noise
    and w = (median / y)^2, so a weighted squared error sum(w (z - fit)^2) is the squared
    relative error in units of sigma^2. Otherwise z = (y - median) / absolute noise, w = 1.
    """
    relative = bool(y.min() > 0)
    sigma = noise_scale(y, relative=relative)
    if sigma <= 0.0:
        # Noise-free trace: any real change is infinitely significant; keep a scale far above rounding.
        sigma = 1e-6 * (1.0 if relative else max(1.0, float(np.abs(y).max())))
    lim = CLIP_SIGMAS * sigma
    far = _far_from_block_median(y, ref_block, lim, relative)
    z = y.astype(np.float64, copy=True)
    if far.size:
        n = z.size
        # Centred windows, shifted inwards at the ends (never repeating an end value).
        width = min(2 * REFERENCE_HALF + 1, n)
        first = np.clip(far - REFERENCE_HALF, 0, n - width)
        ref = np.partition(y[first[:, None] + np.arange(width)], width // 2, axis=1)[:, width // 2]
        lo, hi = (ref * math.exp(-lim), ref * math.exp(lim)) if relative else (ref - lim, ref + lim)
        z[far] = np.clip(y[far], lo, hi)
    centre = float(np.median(z[:: max(1, z.size // NOISE_SAMPLE)]))
    if relative:
        p = np.divide(centre, z, out=z)  # z is not needed any more: reuse its memory
        wz = p * (1.0 / sigma)
        p *= p
        return p, wz, np.full(p.size, 1.0 / (sigma * sigma))
    z -= centre
    z *= 1.0 / sigma
    return np.ones_like(z), z, z * z


def _far_from_block_median(y: np.ndarray, g: int, lim: float, relative: bool) -> np.ndarray:
    """Indices of points more than ``lim`` from the median of their block of ``g`` points.

    ``relative``: ``lim`` is in log units, screened conservatively as |y - med| > med (1 -
    exp(-lim)). Each median is taken over at most 33 evenly spread points of its block (cheap,
    and precise enough to screen); the last partial block joins the one before it.
    """
    n = y.size
    m = max(1, n // g)
    if m == 1:
        g = n
    head = y[: m * g].reshape(m, g)
    med = np.median(head[:, :: max(1, g // 32)], axis=1)
    bound = med * -math.expm1(-lim) if relative else np.full(m, lim)
    dev = head - med[:, None]
    np.abs(dev, out=dev)
    far = np.flatnonzero(dev > bound[:, None])
    if m * g < n:
        tail = np.flatnonzero(np.abs(y[m * g :] - med[-1]) > bound[-1]) + m * g
        far = np.concatenate((far, tail))
    return far


# --- segment costs -----------------------------------------------------------------------

#: Segments up to this long have their sums taken directly (about their own start), so the
#: time moments of short segments far into a long trace keep full precision.
DIRECT = 512

# Weighted moments are stacked along axis 0 of an array, in this order: sums of w, w t,
# w t^2, w z, w z t and w z^2 (t counted from some origin).
W, WT, WTT, WZ, WZT, WZZ = range(6)


def _shifted(m: np.ndarray, d) -> np.ndarray:
    """The same moments with t counted from d later (t' = t - d)."""
    out = m.copy()
    out[WT] -= d * m[W]
    out[WTT] -= d * (2.0 * m[WT] - d * m[W])
    out[WZT] -= d * m[WZ]
    return out


def _local_moments(w: np.ndarray, wz: np.ndarray, wzz: np.ndarray) -> np.ndarray:
    """Moments of each row of 2-D arrays (or of a 1-D array), t counted from the row start.

    Matrix products throughout: numpy's sum along a short last axis is several times slower.
    """
    t = np.arange(w.shape[-1], dtype=np.float64)
    powers = np.stack((np.ones_like(t), t, t * t), axis=-1)
    a = w @ powers
    b = wz @ powers[:, :2]
    return np.stack((a[..., 0], a[..., 1], a[..., 2], b[..., 0], b[..., 1], wzz @ powers[:, 0]))


def _running(w: np.ndarray, wz: np.ndarray, wzz: np.ndarray) -> np.ndarray:
    """Prefix moments at every position 0..len (shape (6, len + 1)), t counted from the first point."""
    t = np.arange(w.size, dtype=np.float64)
    wt = w * t
    out = np.zeros((6, w.size + 1))
    for row, a in zip(range(6), (w, wt, wt * t, wz, wz * t, wzz)):
        np.cumsum(a, out=out[row, 1:])
    return out


class _Sums:
    """Weighted moments of z over any segment.

    Moments are summed per chunk of ``chunk`` points (a remainder is one more, shorter chunk)
    and, once the grid is known, accumulated to every grid point; any other position adds
    the chunks since the grid point before it and its partial chunk. (A full running sum
    over all chunks would cost more than everything else here.)
    """

    def __init__(self, w: np.ndarray, wz: np.ndarray, wzz: np.ndarray, chunk: int):
        n = w.size
        m = n // chunk
        self.n, self.chunk = n, chunk
        self.w, self.wz, self.wzz = w, wz, wzz
        cut = m * chunk
        if chunk == 1:
            t = np.arange(n, dtype=np.float64)
            wt = w * t
            self.moments = np.stack((w, wt, wt * t, wz, wz * t, wzz))
        else:
            local = _local_moments(*(a[:cut].reshape(m, chunk) for a in (w, wz, wzz)))
            self.moments = _shifted(local, -np.arange(0, cut, chunk, dtype=np.float64))
            if cut < n:
                tail = _shifted(_local_moments(w[cut:], wz[cut:], wzz[cut:]), -float(cut))
                self.moments = np.concatenate((self.moments, tail[:, None]), axis=1)
        #: Sums of w and w z per chunk, for the contrast screen.
        self.chunk_w, self.chunk_wz = self.moments[W, :m], self.moments[WZ, :m]

    def _column(self, pos) -> np.ndarray:
        """Index of the chunk that starts at ``pos`` (n: one past the last chunk)."""
        return np.where(pos >= self.n, self.moments.shape[1], pos // self.chunk)

    def set_grid(self, grid: np.ndarray) -> None:
        """Accumulate the moments to each point of ``grid`` (ascending chunk starts, 0 first, n last)."""
        cols = self._column(grid)
        between = np.add.reduceat(self.moments, cols[:-1], axis=1)
        self.grid = grid
        self.grid_prefix = np.zeros((6, grid.size))
        np.cumsum(between, axis=1, out=self.grid_prefix[:, 1:])

    def at(self, pos: int) -> np.ndarray:
        """Moments over [0, pos), t counted from 0."""
        k = int(np.searchsorted(self.grid, pos, side="right")) - 1
        g = int(self.grid[k])
        if pos == g:
            return self.grid_prefix[:, k]
        c0, c1 = int(self._column(g)), int(pos // self.chunk)
        out = self.grid_prefix[:, k] + self.moments[:, c0:c1].sum(axis=1)
        e = c1 * self.chunk
        if pos > e:
            out += _shifted(_local_moments(self.w[e:pos], self.wz[e:pos], self.wzz[e:pos]), -float(e))
        return out

    def segment(self, a: int, b: int) -> np.ndarray:
        """Moments of [a, b) with t counted from a."""
        if b - a <= DIRECT:
            return _local_moments(self.w[a:b], self.wz[a:b], self.wzz[a:b])
        return _shifted(self.at(b) - self.at(a), float(a))


def _contrast_candidates(sums: _Sums) -> np.ndarray:
    """Grid points where a change is likely, from the contrast at each chunk edge: the
    difference of the weighted means of the two chunks after and the two before, in standard
    errors (weights are inverse variances). Each local maximum above ``CANDIDATE_Z`` (the
    ``MAX_CANDIDATES`` strongest) gives its edge and the nearest edges on either side where
    the contrast has fallen to half: a step gives three close points, a ramp or a short
    segment its two ends."""
    w, wz = sums.chunk_w, sums.chunk_wz
    if w.size < 5:
        return np.empty(0, dtype=np.int64)
    w2, wz2 = w[:-1] + w[1:], wz[:-1] + wz[1:]  # pairs of chunks (i, i + 1)
    wl, zl, wr, zr = w2[:-2], wz2[:-2], w2[2:], wz2[2:]  # around the edge before chunk i + 2
    contrast = np.abs(zr / wr - zl / wl) / np.sqrt(1.0 / wr + 1.0 / wl)
    peak = contrast.copy()
    for shift in (1, 2):
        np.maximum(peak[shift:], contrast[:-shift], out=peak[shift:])
        np.maximum(peak[:-shift], contrast[shift:], out=peak[:-shift])
    found = np.flatnonzero((contrast > CANDIDATE_Z) & (contrast >= peak))
    if found.size > MAX_CANDIDATES:
        found = found[np.argsort(contrast[found])[-MAX_CANDIDATES:]]
    points = [found]
    for i in found:
        half = contrast[i] / 2.0
        left = np.flatnonzero(contrast[max(0, i - HALF_SEARCH) : i] < half)
        right = np.flatnonzero(contrast[i + 1 : i + 1 + HALF_SEARCH] < half)
        points.append(np.array([i - left.size + left[-1] if left.size else max(0, i - HALF_SEARCH),
                                i + 1 + right[0] if right.size else min(contrast.size - 1, i + HALF_SEARCH)]))
    return (np.unique(np.concatenate(points)) + 2) * sums.chunk


class _Costs:
    """Weighted least squared error of segments from their moments: flat, or a line at
    ``degree_penalty`` extra. The formulas do not depend on the time origin."""

    def __init__(self, degree_penalty: float):
        self.p = degree_penalty

    def __call__(self, m: np.ndarray, length) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            flat = m[WZZ] - m[WZ] * m[WZ] / m[W]
            stt = m[WTT] - m[WT] * m[WT] / m[W]
            sty = m[WZT] - m[WT] * m[WZ] / m[W]
            line = flat - sty * sty / stt + self.p
            line[~(np.asarray(length) >= 3) | ~(stt > 0)] = np.inf
            out = np.fmin(flat, line)
        out[~(out > 0)] = 0.0  # rounding below zero, and empty segments (NaN)
        return out

    def sloped(self, m: np.ndarray, length: int) -> bool:
        """Whether the segment is fitted better by a line (penalty included) than flat."""
        w, wt, wtt, wz, wzt, wzz = m.tolist()
        stt = wtt - wt * wt / w
        if length < 3 or stt <= 0:
            return False
        sty = wzt - wt * wz / w
        return sty * sty / stt > self.p

    def one(self, m: np.ndarray, length: int) -> float:
        """Cost of one segment (plain floats: much faster than arrays of one)."""
        w, wt, wtt, wz, wzt, wzz = m.tolist()
        flat = wzz - wz * wz / w
        stt = wtt - wt * wt / w
        if length >= 3 and stt > 0:
            sty = wzt - wt * wz / w
            flat = min(flat, flat - sty * sty / stt + self.p)
        return max(flat, 0.0)


# --- segmentation ------------------------------------------------------------------------


def _optimal_partition(sums: _Sums, costs: _Costs, grid: np.ndarray, min_size: int, pen: float) -> np.ndarray:
    """Exact penalised segmentation with boundaries on ``grid`` (ascending, 0 first, n last),
    segments at least ``min_size`` long.

    All segment costs at once (a matrix over the grid, a few hundred points), then the
    optimal-partitioning recursion F[t] = min_s F[s] + C[s, t] + pen. Returns the chosen
    boundary positions including 0 and n.
    """
    m = grid.size - 1
    pre = sums.grid_prefix
    start, end = np.arange(m + 1)[None, :], np.arange(m + 1)[:, None]  # C[t, s]: grid[s]..grid[t]
    length = grid[end] - grid[start]
    C = costs(pre[:, end] - pre[:, start], length)
    C[length < min_size] = np.inf
    F = np.empty(m + 1)
    F[0] = -pen
    prev = np.zeros(m + 1, dtype=np.intp)
    for t in range(1, m + 1):
        row = F[:t] + C[t, :t]
        j = int(np.argmin(row))
        F[t], prev[t] = row[j] + pen, j
    out = [m]
    while out[-1] > 0:
        out.append(int(prev[out[-1]]))
    return grid[np.array(out[::-1])]


def _segment_cost(sums: _Sums, costs: _Costs, a: int, b: int) -> float:
    return costs.one(sums.segment(a, b), b - a)


def _best_split(sums: _Sums, costs: _Costs, a: int, c: int, lo: int, hi: int) -> tuple[int, float]:
    """Best single boundary in [lo, hi] between fixed neighbours a and c: (position, cost of both segments).

    All sums are taken with t counted from ``lo``, near every boundary tried.
    """
    run = _running(sums.w[lo:hi], sums.wz[lo:hi], sums.wzz[lo:hi])
    left = _shifted(sums.segment(a, lo), float(lo - a))[:, None] + run
    right = sums.segment(lo, c)[:, None] - run
    tau = np.arange(lo, hi + 1)
    total = costs(left, tau - a) + costs(right, c - tau)
    j = int(np.argmin(total))
    return int(tau[j]), float(total[j])


def _refine(sums: _Sums, costs: _Costs, bounds: np.ndarray, grid: np.ndarray, min_size: int, rounds: int = 2) -> np.ndarray:
    """Move each inner boundary to its best position between its grid neighbours (where the
    change it stands for must lie), its neighbouring boundaries fixed and both segments at
    least ``min_size`` long."""
    b = bounds.astype(np.int64).copy()
    k = np.searchsorted(grid, b)
    reach_lo = grid[np.maximum(k - 1, 0)]
    reach_hi = grid[np.minimum(k + 1, grid.size - 1)]
    for _ in range(rounds):
        moved = False
        for j in range(1, b.size - 1):
            lo = max(int(b[j - 1]) + min_size, int(reach_lo[j]))
            hi = min(int(b[j + 1]) - min_size, int(reach_hi[j]))
            if hi >= lo:
                best, _ = _best_split(sums, costs, int(b[j - 1]), int(b[j + 1]), lo, hi)
                moved |= best != b[j]
                b[j] = best
        if not moved:
            break
    return b


def _hinge(sums: _Sums, a: int, c: int, lo: int, hi: int) -> tuple[int, float]:
    """Best knot in [lo, hi] for one continuous broken line over [a, c): (knot, weighted SS).

    Basis 1, t, (t - knot)+ with t counted from ``lo``, orthogonalised in turn, so each term
    removes its own share of the squared error.
    """
    run = _running(sums.w[lo:hi], sums.wz[lo:hi], sums.wzz[lo:hi])
    tail = sums.segment(lo, c)
    sw, swt, swtt, swz, swzt, swzz = _shifted(sums.segment(a, lo), float(lo - a)) + tail
    right = tail[:, None] - run  # sums over [knot, c)
    k = np.arange(hi - lo + 1, dtype=np.float64)
    swh = right[WT] - k * right[W]
    swhh = right[WTT] - k * (2.0 * right[WT] - k * right[W])
    swth = right[WTT] - k * right[WT]
    swzh = right[WZT] - k * right[WZ]
    stt = swtt - swt * swt / sw
    stz = swzt - swt * swz / sw
    line = swzz - swz * swz / sw - stz * stz / stt
    sth = swth - swt * swh / sw
    with np.errstate(divide="ignore", invalid="ignore"):
        shh = swhh - swh * swh / sw - sth * sth / stt
        shz = swzh - swh * swz / sw - sth * stz / stt
        ss = np.where(shh > 1e-9 * swhh, line - shz * shz / shh, line)
    j = int(np.argmin(ss))
    return lo + j, float(ss[j])


def _join_ramps(sums: _Sums, costs: _Costs, bounds: np.ndarray, min_size: int, jump_penalty: float) -> np.ndarray:
    """Where a ramp starts or ends without a jump, place its boundary at the knot of one
    continuous broken line across both segments: a kink is located far better by the
    continuous fit than by two separate ones that may jump. Used when the continuous fit
    costs at most ``jump_penalty`` more than the separate ones (BIC for the jump it saves)."""
    b = [int(x) for x in bounds]
    for j in range(1, len(b) - 1):
        a, x, c = b[j - 1], b[j], b[j + 1]
        left, right = sums.segment(a, x), sums.segment(x, c)
        if not (costs.sloped(left, x - a) or costs.sloped(right, c - x)):
            continue
        lo, hi = max(a + min_size, x - HINGE_REACH), min(c - min_size, x + HINGE_REACH)
        if hi < lo:
            continue
        knot, ss = _hinge(sums, a, c, lo, hi)
        if ss + costs.p <= costs.one(left, x - a) + costs.one(right, c - x) + jump_penalty:
            b[j] = knot
    return np.array(b, dtype=np.int64)


def _tidy(sums: _Sums, costs: _Costs, bounds: np.ndarray, min_size: int, close: int, pen: float) -> np.ndarray:
    """Greedy clean-up after refinement, best improvement first, until nothing improves:
    drop a boundary that does not pay for its penalty, or replace two boundaries at most
    ``close`` apart (often both sides of one change, held apart by ``min_size``) by the best
    single one between them."""
    b = [int(x) for x in bounds]
    while len(b) > 2:
        seg = [_segment_cost(sums, costs, b[i], b[i + 1]) for i in range(len(b) - 1)]
        best_gain, action = 0.0, None
        for j in range(1, len(b) - 1):
            gain = seg[j - 1] + seg[j] + pen - _segment_cost(sums, costs, b[j - 1], b[j + 1])
            if gain > best_gain:
                best_gain, action = gain, (j, j + 1, None)
            if j + 2 < len(b) and b[j + 1] - b[j] <= close:
                lo = max(b[j - 1] + min_size, b[j] - min_size)
                hi = min(b[j + 2] - min_size, b[j + 1] + min_size)
                if hi >= lo:
                    tau, cost = _best_split(sums, costs, b[j - 1], b[j + 2], lo, hi)
                    gain = seg[j - 1] + seg[j] + seg[j + 1] + pen - cost
                    if gain > best_gain:
                        best_gain, action = gain, (j, j + 2, tau)
        if action is None:
            break
        j, k, tau = action
        b[j:k] = [] if tau is None else [tau]
    return np.array(b, dtype=np.int64)
