"""The linear model of change points: piecewise flat or linear segments of the clipped log trace.

``detect_linear(values)`` returns the indices where a new segment starts (0 excluded).
Every segment is flat or a straight line, so a ramp ("normal -> linear slow-down -> stable")
gives two change points, at its start and at its end, instead of a staircase.

How, and why:

1. Noise model. Latency noise is multiplicative and heavy-tailed: its spread grows with the
   level. The noise scale ``sigma`` is a trimmed spread of the log-ratios of neighbours
   (level shifts and spikes touch few pairs), so the penalty needs no per-trace tuning, and squared errors
   are relative to each point's own value (weights 1 / value^2), in units of sigma^2. Values
   that are not all positive use absolute noise (MAD of first differences) instead.
2. Spikes. Isolated spikes (5-50x the level) would each buy a segment under a squared-error
   cost, so a point further than ``CLIP_SIGMAS`` noise scales from the median of its block is
   clipped to its running median of ``2 * REFERENCE_HALF + 1`` +- ``CLIP_SIGMAS`` noise
   scales. A running median keeps steps sharp and ignores up to five spikes among eleven.
3. Exact penalised segmentation (optimal partitioning). Segment cost: least squared error
   of a constant, or of a line plus ``SLOPE_PENALTY_FACTOR * log(n)`` (BIC: one more
   parameter). Each segment costs ``PENALTY_FACTOR * log(n)``. Where a ramp meets a flat
   segment without a jump, the boundary is finally put at the knot of one continuous broken
   line, which locates a kink far better than two separate fits.
4. Speed. Weighted moments summed per chunk of ``CHUNK`` points give the exact cost of any
   segment. The partition is first solved exactly with boundaries restricted to a grid: the
   edges of at most ``MAX_BLOCKS`` blocks, plus chunk edges where a local contrast flags a
   change (so short segments of long traces are not averaged away). Each boundary then moves
   to its best position at full resolution between its grid neighbours; boundaries that no
   longer pay for their penalty are dropped, and two that bracket one change are merged.
   Cost: about eight O(n) numpy passes plus O(grid^2) vectorised work, whatever the trace.
"""

from __future__ import annotations

import math

import numpy as np

from tracegen.analysis.changepoints.moments import W, WT, WTT, WZ, WZT, WZZ, _Sums, _shifted
from tracegen.analysis.changepoints.rank import optimal_partition
from tracegen.analysis.changepoints.signal import NOISE_SAMPLE, fill_missing, as_array, noise_scale

#: Shortest reported segment, in iterations.
MIN_SIZE = 5
#: Penalty per segment, in units of sigma^2 * log(n). BIC would be 2 (a level and a
#: location); 3 leaves room for the mild autocorrelation and non-normal tails of real traces.
PENALTY_FACTOR = 3.0
#: Extra penalty for a sloped segment, in units of sigma^2 * log(n) (BIC: one parameter).
SLOPE_PENALTY_FACTOR = 1.0
#: Points this many noise scales away from their local level are clipped.
CLIP_SIGMAS = 3.0
#: Spike screening compares points with the median of blocks of at least this many points;
#: a flagged point is clipped around its running median over 2 * REFERENCE_HALF + 1 points.
MIN_REFERENCE_BLOCK = 16
REFERENCE_HALF = 5
#: The first pass segments on at most this many blocks (exact up to this many points) ...
MAX_BLOCKS = 128
#: ... plus at most MAX_CANDIDATES chunk edges (chunks of CHUNK points) where the weighted
#: means of the two chunks before and the two after differ by more than CANDIDATE_Z standard
#: errors (local maxima only), and the edges where that contrast has halved, at most
#: HALF_SEARCH chunks away. Short segments of long traces would vanish in block sums.
CHUNK = 8
MAX_CANDIDATES = 96
CANDIDATE_Z = 4.0
HALF_SEARCH = 64
#: A boundary next to a ramp may move this far to the knot of a continuous fit.
HINGE_REACH = 50


def detect_linear(values, *, min_size: int | None = None, penalty: float | None = None) -> list[int]:
    """Indices where a new segment of ``values`` starts, sorted, 0 excluded.

    ``values``: 1-D latencies (list, numpy array or polars Series), in iteration order.
    ``min_size``: shortest segment, in iterations (default ``MIN_SIZE`` = 5).
    ``penalty``: cost of one more segment in units of the noise variance
    (default ``PENALTY_FACTOR * log(n)``).
    Non-finite values are replaced by the previous finite one (they carry no evidence).
    """
    y = fill_missing(as_array(values))
    n = y.size
    min_size = MIN_SIZE if min_size is None else max(1, int(min_size))
    if n < 2 * min_size:
        return []
    chunk = CHUNK if n > CHUNK * MAX_BLOCKS else 1
    block = chunk * max(1, -(-n // (MAX_BLOCKS * chunk)))
    w, wz, wzz, unit = robust_signal(y, max(block, MIN_REFERENCE_BLOCK))
    log_n = math.log(n)
    pen = unit * (PENALTY_FACTOR * log_n if penalty is None else float(penalty))
    sums = _Sums(w, wz, wzz, chunk)
    costs = _Costs(unit * SLOPE_PENALTY_FACTOR * log_n)
    grid = np.r_[np.arange(0, n - block // 2, block), n]  # block edges; the last block takes the rest
    if chunk > 1:
        grid = np.union1d(grid, _contrast_candidates(sums, unit))
    sums.set_grid(grid)
    bounds = _optimal_partition(sums, costs, grid, min_size, pen)
    if block > 1:
        bounds = _refine(sums, costs, bounds, grid, min_size)
        bounds = _tidy(sums, costs, bounds, min_size, 2 * max(block, min_size), pen)
    bounds = _join_ramps(sums, costs, bounds, min_size, unit * log_n)
    return [int(b) for b in bounds[1:-1]]


# --- input and robust signal -------------------------------------------------------------



def robust_signal(y: np.ndarray, ref_block: int):
    """Spike-clipped trace as per-point weights w, w z and w z^2 (each an array or a
    constant), and the noise variance ``unit`` in which weighted squared errors are measured.

    Positive values: z = y / median and w = 1 / z^2, so w z = 1 / z, w z^2 = 1 and a
    weighted squared error is a squared relative error (unit = sigma^2). Otherwise
    z = y - median, w = 1 (unit = absolute noise variance).
    """
    relative = bool(y.min() > 0)
    sigma = noise_scale(y, relative=relative)
    if sigma <= 0.0:
        # Noise-free trace: any real change is infinitely significant; keep a scale far above rounding.
        sigma = 1e-6 * (1.0 if relative else max(1.0, float(np.abs(y).max())))
    lim = CLIP_SIGMAS * sigma
    far = _far_from_block_median(y, ref_block, lim, relative)
    if far.size:
        n = y.size
        # Centred windows, shifted inwards at the ends (never repeating an end value).
        width = min(2 * REFERENCE_HALF + 1, n)
        first = np.clip(far - REFERENCE_HALF, 0, n - width)
        ref = np.partition(y[first[:, None] + np.arange(width)], width // 2, axis=1)[:, width // 2]
        lo, hi = (ref * math.exp(-lim), ref * math.exp(lim)) if relative else (ref - lim, ref + lim)
        clipped = np.clip(y[far], lo, hi)
    centre = float(np.median(y[:: max(1, y.size // NOISE_SAMPLE)]))
    if relative:
        p = np.divide(centre, y)
        if far.size:
            p[far] = centre / clipped
        return p * p, p, 1.0, sigma * sigma
    z = y - centre
    if far.size:
        z[far] = clipped - centre
    return 1.0, z, z * z, sigma * sigma


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
    lo, hi = (med - bound)[:, None], (med + bound)[:, None]
    far = np.flatnonzero((head < lo) | (head > hi))
    if m * g < n:
        tail = y[m * g :]
        far = np.concatenate((far, np.flatnonzero((tail < lo[-1]) | (tail > hi[-1])) + m * g))
    return far


def _contrast_candidates(sums: _Sums, unit: float) -> np.ndarray:
    """Grid points where a change is likely, from the contrast at each chunk edge: the
    difference of the weighted means of the two chunks after and the two before, in standard
    errors (``unit`` / weight is the variance of a weighted mean). Each local maximum above
    ``CANDIDATE_Z`` (the ``MAX_CANDIDATES`` strongest) gives its edge and the nearest edges on
    either side where the contrast has fallen to half: a step gives three close points, a
    ramp or a short segment its two ends."""
    w, wz = sums.chunk_w, sums.chunk_wz
    if w.size < 5:
        return np.empty(0, dtype=np.int64)
    w2, wz2 = w[:-1] + w[1:], wz[:-1] + wz[1:]  # pairs of chunks (i, i + 1)
    wl, zl, wr, zr = w2[:-2], wz2[:-2], w2[2:], wz2[2:]  # around the edge before chunk i + 2
    contrast = np.abs(zr / wr - zl / wl) / np.sqrt(unit * (1.0 / wr + 1.0 / wl))
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
        start = max(0, i - HALF_SEARCH)
        left = np.flatnonzero(contrast[start:i] < half)
        right = np.flatnonzero(contrast[i + 1 : i + 1 + HALF_SEARCH] < half)
        points.append(np.array([start + left[-1] if left.size else start,
                                i + 1 + right[0] if right.size else min(contrast.size - 1, i + HALF_SEARCH)]))
    return (np.unique(np.concatenate(points)) + 2) * sums.chunk


# --- segment costs -----------------------------------------------------------------------


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
    pre = sums.grid_prefix
    length = grid[:, None] - grid[None, :]  # C[t, s]: segment grid[s]..grid[t]
    C = costs(pre[:, :, None] - pre[:, None, :], length)
    C[length < min_size] = np.inf
    return optimal_partition(C, grid, pen)


def _segment_cost(sums: _Sums, costs: _Costs, a: int, b: int) -> float:
    return costs.one(sums.segment(a, b), b - a)


def _best_split(sums: _Sums, costs: _Costs, a: int, c: int, lo: int, hi: int) -> tuple[int, float]:
    """Best single boundary in [lo, hi] between fixed neighbours a and c: (position, cost of both segments).

    Long ranges are searched at chunk edges first (from the chunk sums), then point by point
    within a chunk of the best edge. All sums are taken with t counted from the start of the
    range, near every boundary tried.
    """
    k = sums.chunk
    if hi - lo > 8 * k:
        c0, c1 = -(-lo // k), hi // k
        run = np.zeros((6, c1 - c0 + 1))
        np.cumsum(sums.moments[:, c0:c1], axis=1, out=run[:, 1:])
        start = c0 * k
        run = _shifted(run, float(start))
        tau = np.arange(c0, c1 + 1) * k
        best, _ = _split_costs(sums, costs, a, c, start, run, tau)
        lo, hi = max(lo, best - k), min(hi, best + k)
    return _split_costs(sums, costs, a, c, lo, sums.running(lo, hi), np.arange(lo, hi + 1))


def _split_costs(sums: _Sums, costs: _Costs, a: int, c: int, start: int, run: np.ndarray, tau: np.ndarray):
    """Best of the boundaries ``tau`` between a and c, given the moments ``run`` of [start, tau)
    (t counted from ``start``): (position, cost of both segments)."""
    left = _shifted(sums.segment(a, start), float(start - a))[:, None] + run
    right = sums.segment(start, c)[:, None] - run
    total = costs(left, tau - a) + costs(right, c - tau)
    j = int(np.argmin(total))
    return int(tau[j]), float(total[j])


def _refine(sums: _Sums, costs: _Costs, bounds: np.ndarray, grid: np.ndarray, min_size: int, rounds: int = 2) -> np.ndarray:
    """Move each inner boundary to its best position between its grid neighbours (where the
    change it stands for must lie), its neighbouring boundaries fixed and both segments at
    least ``min_size`` long."""
    b = [int(x) for x in bounds]
    k = np.searchsorted(grid, bounds)
    reach_lo = grid[np.maximum(k - 1, 0)]
    reach_hi = grid[np.minimum(k + 1, grid.size - 1)]
    todo = set(range(1, len(b) - 1))
    for _ in range(rounds):
        moved = set()
        for j in sorted(todo):
            lo = max(b[j - 1] + min_size, int(reach_lo[j]))
            hi = min(b[j + 1] - min_size, int(reach_hi[j]))
            if hi >= lo:
                best, _ = _best_split(sums, costs, b[j - 1], b[j + 1], lo, hi)
                if best != b[j]:
                    b[j] = best
                    moved.add(j)
        # Only a boundary whose neighbour moved can have a new best position.
        todo = {i for j in moved for i in (j - 1, j + 1) if 0 < i < len(b) - 1}
        if not todo:
            break
    return np.array(b, dtype=np.int64)


def _tidy(sums: _Sums, costs: _Costs, bounds: np.ndarray, min_size: int, close: int, pen: float) -> np.ndarray:
    """Greedy clean-up after refinement, best improvement first, until nothing improves:
    drop a boundary that does not pay for its penalty, or replace two boundaries at most
    ``close`` apart (often both sides of one change, held apart by ``min_size``) by the best
    single one between them."""
    b = [int(x) for x in bounds]
    memo: dict[tuple[int, int], float] = {}
    splits: dict[tuple[int, int, int, int], tuple[int, float]] = {}

    def cost(a: int, c: int) -> float:
        if (a, c) not in memo:
            memo[a, c] = _segment_cost(sums, costs, a, c)
        return memo[a, c]

    while len(b) > 2:
        seg = [cost(b[i], b[i + 1]) for i in range(len(b) - 1)]
        best_gain, action = 0.0, None
        for j in range(1, len(b) - 1):
            gain = seg[j - 1] + seg[j] + pen - cost(b[j - 1], b[j + 1])
            if gain > best_gain:
                best_gain, action = gain, (j, j + 1, None)
            if j + 2 < len(b) and b[j + 1] - b[j] <= close:
                lo = max(b[j - 1] + min_size, b[j] - min_size)
                hi = min(b[j + 2] - min_size, b[j + 1] + min_size)
                if hi >= lo:
                    key = (b[j - 1], lo, hi, b[j + 2])
                    if key not in splits:
                        splits[key] = _best_split(sums, costs, b[j - 1], b[j + 2], lo, hi)
                    tau, both = splits[key]
                    gain = seg[j - 1] + seg[j] + seg[j + 1] + pen - both
                    if gain > best_gain:
                        best_gain, action = gain, (j, j + 2, tau)
        if action is None:
            break
        j, k, tau = action
        b[j:k] = [] if tau is None else [tau]
    return np.array(b, dtype=np.int64)


def _hinge(sums: _Sums, a: int, c: int, lo: int, hi: int) -> tuple[int, float]:
    """Best knot in [lo, hi] for one continuous broken line over [a, c): (knot, weighted SS).

    Basis 1, min(t - knot, 0), max(t - knot, 0): a slope on each side of the knot. The two
    slope columns live on disjoint sides, so after removing the constant they stay well
    conditioned however long the segments are (unlike 1, t, (t - knot)+).
    """
    run = sums.running(lo, hi)  # [lo, knot), t from lo
    head = _shifted(sums.segment(a, lo), float(lo - a))[:, None] + run  # [a, knot)
    tail = sums.segment(lo, c)[:, None] - run  # [knot, c)
    k = np.arange(hi - lo + 1, dtype=np.float64)
    sw = head[W] + tail[W]
    swz = head[WZ] + tail[WZ]
    flat = (head[WZZ] + tail[WZZ]) - swz * swz / sw

    def side(m):  # sums of w u, w u^2, w z u for u = t - knot, less their constant part
        su = m[WT] - k * m[W]
        suu = m[WTT] - k * (2.0 * m[WT] - k * m[W])
        szu = m[WZT] - k * m[WZ]
        return su, suu - su * su / sw, szu - su * swz / sw

    sl, sll, slz = side(head)
    sr, srr, srz = side(tail)
    slr = -sl * sr / sw
    with np.errstate(divide="ignore", invalid="ignore"):
        det = sll * srr - slr * slr
        explained = (srr * slz * slz - 2.0 * slr * slz * srz + sll * srz * srz) / det
        ss = np.where(det > 1e-12 * sll * srr, flat - explained, flat)
    j = int(np.argmin(ss))
    return lo + j, float(ss[j])


def _join_ramps(sums: _Sums, costs: _Costs, bounds: np.ndarray, min_size: int, jump_penalty: float,
                accept=None) -> np.ndarray:
    """Where a ramp starts or ends without a jump, place its boundary at the knot of one
    continuous broken line across both segments: a kink is located far better by the
    continuous fit than by two separate ones that may jump. Used when the continuous fit
    costs at most ``jump_penalty`` more than the separate ones (BIC for the jump it does not need)."""
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
        # Both fits have three parameters (the broken line: a level and two slopes; flat plus
        # line: two levels and a slope), and the separate fits pay one slope penalty.
        if ss + costs.p <= costs.one(left, x - a) + costs.one(right, c - x) + jump_penalty:
            if accept is None or accept(a, x, knot, c):
                b[j] = knot
    return np.array(b, dtype=np.int64)


def merge_ramps(y: np.ndarray, bounds: np.ndarray, min_size: int, same, accept) -> np.ndarray:
    """Turn staircases cut out of a ramp back into one sloped segment, then put the ends of
    each merged ramp at the knots of a continuous broken line.

    Adjacent segments merge, best gain first, when (1) one straight line over both costs no
    more than the two fits apart plus one segment's penalty, (2) that line is sloped, and (3)
    ``same(residuals, split)`` says that once the line is removed the two parts no longer
    differ (the rank model's own test): the steps were the slope. A step, or a change of
    spread or shape, keeps its boundary. A boundary next to a sloped segment moves to its knot
    when ``accept(a, old, knot, c)`` agrees (the rank model must not see a worse split).
    """
    n = y.size
    if len(bounds) < 3:
        return bounds
    w, wz, wzz, unit = robust_signal(y, MIN_REFERENCE_BLOCK)
    log_n = math.log(n)
    sums = _Sums(w, wz, wzz, 1)
    sums.set_grid(np.asarray(bounds))
    costs = _Costs(unit * SLOPE_PENALTY_FACTOR * log_n)
    pen = unit * PENALTY_FACTOR * log_n
    z = wz / w if isinstance(w, np.ndarray) else wz  # the clipped signal (relative units or centred)
    b = [int(x) for x in bounds]
    rejected: set[tuple[int, int, int]] = set()
    while len(b) > 2:
        options = []
        for j in range(1, len(b) - 1):
            a, x, c = b[j - 1], b[j], b[j + 1]
            merged = sums.segment(a, c)
            if (a, x, c) in rejected or not costs.sloped(merged, c - a):
                continue
            gain = costs.one(sums.segment(a, x), x - a) + costs.one(sums.segment(x, c), c - x) + pen
            gain -= costs.one(merged, c - a)
            if gain > 0:
                options.append((gain, j))
        done = False
        for _, j in sorted(options, reverse=True):
            a, x, c = b[j - 1], b[j], b[j + 1]
            t = np.arange(c - a, dtype=np.float64)
            seg = z[a:c]
            slope, icept = np.polyfit(t, seg, 1)
            if same(seg - (icept + slope * t), x - a):
                del b[j]
                done = True
                break
            rejected.add((a, x, c))
        if not done:
            break
    return _join_ramps(sums, costs, np.array(b, dtype=np.int64), min_size, unit * log_n, accept=accept)
