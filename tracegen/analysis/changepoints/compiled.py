"""The change-point pipeline compiled with numba: the same steps as the numpy modules
(kernel.py, search.py, visible.py and the dependence and edge steps of reference.py), as one
machine-code call per trace.

Why: the numpy pipeline spends most of a short trace's time in the fixed cost of several
hundred small numpy calls (0.6 ms for 15 points, about 1.2 ms for 300), four times what
ruptures' C code needs there. Compiled, the steps run as plain loops without that cost.

The numpy modules stay the reference: tests/analysis/test_compiled_changepoints.py checks that
both return the same change points on every real labelled series, and ``detect_changepoints``
falls back to them where numba cannot be imported. Compiled functions are cached on disk
(``cache=True``), so a process compiles them only the first time after an install or a change.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from tracegen.analysis.changepoints.kernel import BINS_PER_BANDWIDTH, CLIP, MAX_WINDOW
from tracegen.analysis.changepoints.scores import (
    _CENTRAL_DEN, _CENTRAL_NUM, _NEAR_DEN, _NEAR_NUM, _TAIL_DEN, _TAIL_NUM,
)
from tracegen.analysis.changepoints.search import CANDIDATE_Z, MAX_CANDIDATES, MAX_WINDOW_SHARE, STRIDE_DIVISOR
from tracegen.analysis.changepoints.visible import MIN_DISTANCE, MIN_RATIO, MIN_SPREAD_RATIO

jit = numba.njit(cache=True, nogil=True)

_CN, _CD = np.array(_CENTRAL_NUM), np.array(_CENTRAL_DEN)
_NN, _ND = np.array(_NEAR_NUM), np.array(_NEAR_DEN)
_TN, _TD = np.array(_TAIL_NUM), np.array(_TAIL_DEN)


# --- normal scores (scores.py) --------------------------------------------------------------

@jit
def _horner(c, x):
    y = 0.0
    for k in range(c.size):
        y = y * x + c[k]
    return y


@jit
def _ndtri(p):
    """AS 241 for one probability in (0, 1), as scores.normal_quantile."""
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _horner(_CN, r) / _horner(_CD, r)
    r = math.sqrt(-math.log(p if q < 0.0 else 1.0 - p))
    if r <= 5.0:
        x = _horner(_NN, r - 1.6) / _horner(_ND, r - 1.6)
    else:
        x = _horner(_TN, r - 5.0) / _horner(_TD, r - 5.0)
    return -x if q < 0.0 else x


@jit
def normal_scores(y, order):
    """Normal quantiles of the average ranks of y; ``order`` = np.argsort(y) (numpy's sort is
    several times faster than numba's on long traces)."""
    n = y.size
    out = np.empty(n)
    i = 0
    while i < n:
        j = i + 1
        while j < n and y[order[j]] == y[order[i]]:
            j += 1
        z = _ndtri(((i + j + 1) / 2.0 - 0.5) / n)
        for k in range(i, j):
            out[order[k]] = z
        i = j
    return out


# --- kernel cost (kernel.py) ----------------------------------------------------------------

@jit
def bandwidth(y, pair_i, pair_j):
    """kernel.bandwidth: all pairs when pair_i is empty, else the given pairs."""
    n = y.size
    if pair_i.size == 0:
        d = np.empty(n * (n - 1) // 2)
        k = 0
        for i in range(n):
            for j in range(i + 1, n):
                d[k] = abs(y[i] - y[j])
                k += 1
    else:
        d = np.abs(y[pair_i] - y[pair_j])
    s = np.median(d) if d.size else 0.0
    if s > 0:
        return s
    nz = d[d > 0]
    if nz.size:
        return np.median(nz)
    spread = y.max() - y.min()
    return spread if spread > 0 else 0.0


@jit
def bin_codes(y, order, s, table):
    """(codes, K): each value's occupied-bin index and the kernel between occupied bins."""
    top = table.shape[0] - 1
    h = y.size // 2
    med = y[order[h]] if y.size % 2 else (y[order[h - 1]] + y[order[h]]) / 2.0
    raw = np.empty(y.size, dtype=np.int64)
    used = np.zeros(top + 1, dtype=np.int64)
    for i in range(y.size):
        u = min(max((y[i] - med) / s, -CLIP), CLIP)
        r = min(int((u + CLIP) * BINS_PER_BANDWIDTH), top)
        raw[i] = r
        used[r] = 1
    occupied = np.flatnonzero(used)
    remap = np.zeros(top + 1, dtype=np.int64)
    for k in range(occupied.size):
        remap[occupied[k]] = k
    codes = np.empty(y.size, dtype=np.int64)
    for i in range(y.size):
        codes[i] = remap[raw[i]]
    m = occupied.size
    K = np.empty((m, m))
    for a in range(m):
        for b in range(m):
            K[a, b] = table[occupied[a], occupied[b]]
    return codes, K


@jit
def _counts(codes, bins, a, b):
    c = np.zeros(bins)
    for i in range(a, b):
        c[codes[i]] += 1.0
    return c


@jit
def cost_terms(codes, K, grid):
    """Q = P K P' for the prefix counts P at the grid positions (kernel.KernelCost.matrix)."""
    bins = K.shape[0]
    P = np.zeros((grid.size, bins))
    running = np.zeros(bins)
    at = 0
    for k in range(grid.size):
        while at < grid[k]:
            running[codes[at]] += 1.0
            at += 1
        P[k] = running
    return (P @ K) @ np.ascontiguousarray(P.T)


@jit
def _segment_cost(Q, grid, t, s, min_size):
    L = float(grid[t] - grid[s])
    if L < min_size:
        return np.inf
    return L - (Q[t, t] + Q[s, s] - Q[t, s] - Q[s, t]) / L


@jit
def optimal_partition(Q, grid, pen, min_size):
    """search.optimal_partition with the segment costs taken from Q."""
    m = grid.size - 1
    F = np.empty(m + 1)
    F[0] = -pen
    prev = np.zeros(m + 1, dtype=np.int64)
    for t in range(1, m + 1):
        best, j = np.inf, 0
        for s in range(t):
            v = F[s] + _segment_cost(Q, grid, t, s, min_size)
            if v < best:
                best, j = v, s
        F[t], prev[t] = best + pen, j
    if not np.isfinite(F[m]):
        return np.array([0, grid[m]])
    path = [m]
    while path[-1] > 0:
        path.append(prev[path[-1]])
    out = np.empty(len(path), dtype=np.int64)
    for k in range(len(path)):
        out[k] = grid[path[len(path) - 1 - k]]
    return out


@jit
def _running(codes, K, start, end, edge, forward):
    """kernel.KernelCost._running: sum_ij k over the segment as points are added one at a time."""
    bins = K.shape[0]
    base = _counts(codes, bins, start, end)
    r = K @ base
    total = base @ r
    steps = (edge - end) if forward else (start - edge)
    out = np.empty(steps + 1)
    out[0] = total
    for k in range(steps):
        w = codes[end + k] if forward else codes[start - 1 - k]
        total += 2.0 * r[w] + 1.0
        out[k + 1] = total
        for b in range(bins):
            r[b] += K[w, b]
    return out


@jit
def _best_split(codes, K, a, c, lo, hi):
    left = _running(codes, K, a, lo, hi, True)
    right = _running(codes, K, hi, c, lo, False)
    best, at = np.inf, lo
    for k in range(hi - lo + 1):
        tau = lo + k
        nl, nr = float(tau - a), float(c - tau)
        v = (nl - left[k] / nl) + (nr - right[hi - lo - k] / nr)
        if v < best:
            best, at = v, tau
    return at


@jit
def refine(codes, K, bounds, min_size, grid, rounds=2):
    """kernel.refine: each inner boundary to its best position between its neighbours."""
    b = bounds.copy()
    inner = b.size - 2
    todo = np.ones(b.size, dtype=np.bool_)
    todo[0] = todo[-1] = False
    for _ in range(rounds):
        moved = np.zeros(b.size, dtype=np.bool_)
        for j in range(1, inner + 1):
            if not todo[j]:
                continue
            a, c = b[j - 1], b[j + 1]
            lo, hi = a + min_size, c - min_size
            k = np.searchsorted(grid, b[j])
            lo = max(lo, grid[max(k - 1, 0)])
            hi = min(hi, grid[min(k + 1, grid.size - 1)])
            if hi - lo > MAX_WINDOW:
                lo, hi = max(lo, b[j] - MAX_WINDOW // 2), min(hi, b[j] + MAX_WINDOW // 2)
            if hi <= lo:
                continue
            best = _best_split(codes, K, a, c, lo, hi)
            if best != b[j]:
                b[j] = best
                moved[j] = True
        todo[:] = False
        for j in range(1, inner + 1):
            if moved[j]:
                if j - 1 > 0:
                    todo[j - 1] = True
                if j + 1 <= inner:
                    todo[j + 1] = True
        if not todo.any():
            break
    return b


# --- candidates (search.py) -----------------------------------------------------------------

@jit
def candidates(scores, min_size):
    n = scores.size
    level = np.zeros(n + 1)
    spread = np.zeros(n + 1)
    for i in range(n):
        level[i + 1] = level[i] + scores[i]
        spread[i + 1] = spread[i] + (scores[i] * scores[i] - 1.0)
    found_at = [0][:0]
    found_z = [0.0][:0]
    h = max(1, min_size)
    while 2 * h <= n and h <= max(min_size, MAX_WINDOW_SHARE * n):
        stride = max(1, h // STRIDE_DIVISOR)
        count = (n - 2 * h) // stride + 1
        z = np.empty(count)
        ca, cb = math.sqrt(0.5 / h), math.sqrt(0.25 / h)
        for k in range(count):
            t = h + k * stride
            z[k] = max(abs(level[t + h] - 2 * level[t] + level[t - h]) * ca,
                       abs(spread[t + h] - 2 * spread[t] + spread[t - h]) * cb)
        reach = max(1, h // stride)
        for k in range(count):
            if z[k] <= CANDIDATE_Z:
                continue
            top = True
            for q in range(max(0, k - reach + 1), min(count, k + reach)):
                if z[q] > z[k]:
                    top = False
                    break
            if top:
                found_at.append(h + k * stride)
                found_z.append(z[k])
        h *= 2
    at = np.array(found_at, dtype=np.int64)
    if at.size > MAX_CANDIDATES:
        zs = np.array(found_z)
        at = at[np.argsort(-zs, kind="mergesort")[:MAX_CANDIDATES]]
    at = np.unique(at)
    return at[(at >= min_size) & (at <= n - min_size)]


# --- dependence and short edges (reference.py) ----------------------------------------------

@jit
def dependence_factor(scores, bounds, min_size, max_rho, diff_sample):
    rho = residual_rho(scores, bounds)
    ok, by_differences = difference_rho(scores, min_size, diff_sample)
    if ok:
        rho = min(rho, by_differences)
    rho = min(max(rho, 0.0), max_rho)
    return (1.0 + rho) / (1.0 - rho)


@jit
def residual_rho(scores, bounds):
    e = scores.copy()
    for k in range(bounds.size - 1):
        a, b = bounds[k], bounds[k + 1]
        e[a:b] -= e[a:b].mean()
    inside = np.ones(e.size - 1, dtype=np.bool_)
    for k in range(1, bounds.size - 1):
        inside[bounds[k] - 1] = False
    num = 0.0
    for i in range(e.size - 1):
        if inside[i]:
            num += e[i] * e[i + 1]
    den = e @ e
    return num / den if den > 0 else 0.0


@jit
def difference_rho(scores, min_size, diff_sample):
    """(defined, rho) as reference.difference_rho (None there is defined=False here); the
    differences of each lag go into one reused buffer (numpy's temporaries cost more than the
    medians on a short trace)."""
    n = scores.size
    longest = 2 * min_size
    if n - longest < 2 * min_size:
        return False, 0.0
    step = max(1, (n - longest) // diff_sample)
    count = (n - longest + step - 1) // step
    buf = np.empty(count)
    for i in range(count):
        buf[i] = abs(scores[i * step + 1] - scores[i * step])
    at_one = np.median(buf)
    medians = np.empty(longest - min_size + 1)
    for j in range(medians.size):
        k = min_size + j
        for i in range(count):
            buf[i] = abs(scores[i * step + k] - scores[i * step])
        medians[j] = np.median(buf)
    at_lags = np.median(medians)
    if at_lags <= 0:
        return False, 0.0
    return True, 1.0 - (at_one / at_lags) ** 2


@jit
def short_edges(scores, bounds, grid, min_size, factor, short_log, short_z):
    n = scores.size
    short = int(math.ceil(short_log * math.log(n)))
    cum = np.zeros(n + 1)
    for i in range(n):
        cum[i + 1] = cum[i] + scores[i]
    limit = short_z * math.sqrt(factor)
    out = list(bounds)
    for k in range(bounds.size - 1):
        a, c = bounds[k], bounds[k + 1]
        for side in range(2):
            best_z, best_t = -1.0, -1
            for t in grid:
                if t < a + min_size or t > c - min_size:
                    continue
                if not ((t - a <= short) if side == 0 else (c - t <= short)):
                    continue
                nl, nr = float(t - a), float(c - t)
                diff = (cum[t] - cum[a]) / nl - (cum[c] - cum[t]) / nr
                z = abs(diff) / math.sqrt(1.0 / nl + 1.0 / nr)
                if z > best_z:
                    best_z, best_t = z, t
            if best_t >= 0 and best_z > limit:
                out.append(best_t)
    return np.unique(np.array(out, dtype=np.int64))


# --- visible changes (visible.py) -----------------------------------------------------------

@jit
def _quantile(s, q):
    x = q * (s.size - 1)
    lo = int(x)
    hi = min(lo + 1, s.size - 1)
    return s[lo] + (s[hi] - s[lo]) * (x - lo)


@jit
def _ks(u, v):
    """visible.ks_distance of two sorted samples, by one merge walk."""
    i = j = 0
    best = 0.0
    while i < u.size or j < v.size:
        x = u[i] if j >= v.size or (i < u.size and u[i] <= v[j]) else v[j]
        while i < u.size and u[i] <= x:
            i += 1
        while j < v.size and v[j] <= x:
            j += 1
        best = max(best, abs(i / u.size - j / v.size))
    return best


@jit
def _apart(su, mu, iu, sv, mv, iv, positive):
    if positive and abs(math.log(mv / mu)) >= math.log(MIN_RATIO):
        return np.inf
    if iu > 0 and iv > 0:
        if abs(math.log(iv / iu)) >= math.log(MIN_SPREAD_RATIO):
            return np.inf
    elif iu != iv:
        return np.inf
    return _ks(su, sv)


@jit
def _sorted_segments(y, bounds, order):
    """The values of each segment, sorted, from one pass over the trace's sort order."""
    seg = np.empty(y.size, dtype=np.int64)
    for k in range(bounds.size - 1):
        seg[bounds[k]:bounds[k + 1]] = k
    fill = bounds[:-1].copy()
    flat = np.empty(y.size)
    for i in order:
        k = seg[i]
        flat[fill[k]] = y[i]
        fill[k] += 1
    return [flat[bounds[k]:bounds[k + 1]] for k in range(bounds.size - 1)]


@jit
def _merged(u, v):
    out = np.empty(u.size + v.size)
    i = j = 0
    for k in range(out.size):
        if j >= v.size or (i < u.size and u[i] <= v[j]):
            out[k] = u[i]
            i += 1
        else:
            out[k] = v[j]
            j += 1
    return out


@jit
def merge_invisible(y, bounds, order):
    """visible.merge_invisible; ``order`` = np.argsort(y)."""
    b = list(bounds)
    if len(b) <= 2:
        return bounds.copy()
    positive = y.min() > 0
    sorted_ = _sorted_segments(y, bounds, order)
    med = [_quantile(s, 0.5) for s in sorted_]
    iqr = [_quantile(s, 0.75) - _quantile(s, 0.25) for s in sorted_]
    gap = [_apart(sorted_[k], med[k], iqr[k], sorted_[k + 1], med[k + 1], iqr[k + 1], positive)
           for k in range(len(sorted_) - 1)]
    while len(gap):
        j = 0
        for k in range(1, len(gap)):
            if gap[k] < gap[j]:
                j = k
        if gap[j] >= MIN_DISTANCE:
            break
        b.pop(j + 1)
        s = _merged(sorted_[j], sorted_[j + 1])
        sorted_[j] = s
        med[j] = _quantile(s, 0.5)
        iqr[j] = _quantile(s, 0.75) - _quantile(s, 0.25)
        sorted_.pop(j + 1)
        med.pop(j + 1)
        iqr.pop(j + 1)
        gap.pop(j)
        if j > 0:
            gap[j - 1] = _apart(sorted_[j - 1], med[j - 1], iqr[j - 1], sorted_[j], med[j], iqr[j], positive)
        if j < len(gap):
            gap[j] = _apart(sorted_[j], med[j], iqr[j], sorted_[j + 1], med[j + 1], iqr[j + 1], positive)
    return np.array(b, dtype=np.int64)


# --- the pipeline ---------------------------------------------------------------------------

@jit
def detect(y, order, min_size, base, table, pair_i, pair_j, max_rho, diff_sample, short_log, short_z):
    """Boundaries (0 and n included) of the change points of a finite trace y, whose
    np.argsort is ``order``; see
    ``tracegen.analysis.changepoints.detect_changepoints`` for the steps."""
    n = y.size
    none = np.array([0, n], dtype=np.int64)
    s = bandwidth(y, pair_i, pair_j)
    if s <= 0:
        return none
    codes, K = bin_codes(y, order, s, table)
    if K.shape[0] <= 1:
        return none
    scores = normal_scores(y, order)
    cand = candidates(scores, min_size)
    grid = np.empty(cand.size + 2, dtype=np.int64)
    grid[0], grid[-1] = 0, n
    grid[1:-1] = cand
    Q = cost_terms(codes, K, grid)
    bounds = optimal_partition(Q, grid, base, min_size)
    factor = dependence_factor(scores, bounds, min_size, max_rho, diff_sample)
    if factor > 1.0:
        bounds = optimal_partition(Q, grid, base * factor, min_size)
    bounds = refine(codes, K, bounds, min_size, grid)
    bounds = short_edges(scores, bounds, grid, min_size, factor, short_log, short_z)
    return merge_invisible(y, bounds, order)
