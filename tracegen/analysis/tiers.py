"""Latency tiers: the few discrete levels the iterations of a variant sit in.

``detect_tiers(values, k=K)`` is the optimal 1-D k-means of the values (least within-tier sum
of squares), as Ckmeans.1d.dp computes it: sort, then dynamic programming over the sorted
values, each layer solved by divide and conquer on the monotone split points (vectorised one
recursion level at a time, O(k m log m) for m distinct values). Identical values merge
exactly into weighted points. Beyond ``EXACT_LIMIT`` distinct values the DP runs on
``FIXED_BINS`` bins (exact sums per bin, so it is exact among splits on bin edges) and Lloyd
steps on the sorted values then move each split to a stationary point; in the tests this
matches the exact optimum. Levels are the tier means.

``detect_tiers(values)`` chooses the number of tiers, in O(n) without sorting. Latency noise
is multiplicative, so it works on log values, binned at ``BIN_WIDTH`` of the noise scale (MAD
of first differences: tiers persist over iterations). Points in sparse stretches of the value
axis (spikes) are left out of the fit and then labelled with their nearest tier. The answer
is the largest k <= ``max_k`` whose optimal k-means split (on the bins) has tiers that are

* big: each holds at least ``MIN_SHARE`` of the points, spikes not counted;
* tight: each has a density peak like that of one bump of the noise scale (``TIGHTNESS``);
* apart: adjacent centres ``SEPARATION`` within-tier standard deviations apart, or a
  significant dip of the density between their peaks (``DIP``, ``DIP_Z``);
* different: adjacent levels at least ``MIN_RATIO`` apart.

Levels are then the tier medians: a tier also collects the spikes nearest to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tracegen.analysis.changepoints import all_finite, as_array, noise_scale, to_log

#: A tier holds at least this share of the points (so spikes never form a tier).
MIN_SHARE = 0.02
#: Adjacent tiers are apart by SEPARATION within-tier standard deviations (one normal tier
#: halved gives 2.6, a ramp cut in thirds 3.5, separated tiers 6 and more) ...
SEPARATION = 4.0
#: ... or the density of values (histogram smoothed by a normal kernel of SMOOTHING noise
#: scales) dips between their peaks to at most DIP times the lower peak, by DIP_Z standard
#: errors of the counts. Two normal tiers 3.5 noise scales apart dip to about 0.6.
DIP = 0.7
DIP_Z = 3.0
SMOOTHING = 0.5
#: A tier's density peak is at least TIGHTNESS times that of its points in one normal bump of
#: the noise scale (a ramp-blurred tier keeps about 0.5, spikes over a decade about 0.1).
TIGHTNESS = 0.4
#: Adjacent tier levels differ by at least this factor (for positive values).
MIN_RATIO = 1.05
#: Histogram bin width for automatic k, in noise scales, and the most bins.
BIN_WIDTH = 0.25
MAX_BINS = 4096
#: A point is sparse (left out of the automatic fit) when fewer than max(SPARSE_MIN,
#: SPARSE_SHARE * n) points lie within DENSITY_WINDOW noise scales of it.
DENSITY_WINDOW = 3.0
SPARSE_SHARE = 0.01
SPARSE_MIN = 3
#: Fixed k: exact DP up to this many distinct values, else DP on FIXED_BINS bins + Lloyd steps.
EXACT_LIMIT = 50_000
FIXED_BINS = 8192
#: tier_summary: the start tier is the most common of the first (final: last) SUMMARY_WINDOW
#: labels; onset needs ONSET_MIN of ONSET_RUN iterations in a slower tier; settle allows
#: STRAY_SHARE of the later iterations elsewhere.
SUMMARY_WINDOW = 10
ONSET_RUN = 5
ONSET_MIN = 3
STRAY_SHARE = 0.02


@dataclass(frozen=True, eq=False)
class Tiers:
    """Tiers of a trace."""

    #: Tier centres, ascending.
    levels: tuple[float, ...]
    #: One int32 per value: the index of its tier in ``levels`` (-1: value not finite).
    labels: np.ndarray
    #: Values in each tier.
    counts: tuple[int, ...]
    #: Value thresholds between adjacent tiers (k - 1 of them): tier j holds cuts[j-1] <= v < cuts[j]
    #: (up to the resolution of the method: exact for fixed k, a bin for automatic k).
    cuts: tuple[float, ...]

    @property
    def k(self) -> int:
        return len(self.levels)

    @property
    def shares(self) -> tuple[float, ...]:
        total = sum(self.counts)
        return tuple(c / total for c in self.counts) if total else ()


def detect_tiers(values, *, k: int | None = None, max_k: int = 6) -> Tiers:
    """Tiers of ``values`` (1-D latencies in iteration order; list, numpy array or polars Series).

    ``k`` fixed: optimal 1-D k-means (fewer tiers if there are fewer distinct values); levels
    are the tier means. ``k`` None: chosen in 1..``max_k`` as the module docstring says;
    levels are the tier medians. Non-finite values get label -1 and count in no tier.
    """
    v = as_array(values)
    finite = None if all_finite(v) else np.isfinite(v)
    x = v if finite is None else v[finite]
    if x.size == 0:
        return Tiers((), np.full(v.size, -1, dtype=np.int32), (), ())
    if k is None:
        levels, labels, counts, cuts = _auto_tiers(x, max(1, int(max_k)))
    else:
        if k < 1:
            raise ValueError("k must be >= 1")
        levels, labels, counts, cuts = _fixed_tiers(x, int(k))
    if finite is not None:
        full = np.full(v.size, -1, dtype=labels.dtype)
        full[finite] = labels
        labels = full
    return Tiers(tuple(float(a) for a in levels), labels, tuple(int(c) for c in counts), tuple(float(c) for c in cuts))


# --- exact weighted 1-D k-means ----------------------------------------------------------


class _Items:
    """Sorted weighted items (distinct values or bins) with prefix sums of weight, sum, sum of squares."""

    def __init__(self, w: np.ndarray, s1: np.ndarray, s2: np.ndarray):
        z = np.zeros(1)
        self.W = np.concatenate((z, np.cumsum(w, dtype=np.float64)))
        self.A = np.concatenate((z, np.cumsum(s1)))
        self.B = np.concatenate((z, np.cumsum(s2)))
        self.m = w.size

    def cost(self, lo, hi):
        """Within sum of squares of items [lo, hi) (arrays broadcast)."""
        s = self.A[hi] - self.A[lo]
        with np.errstate(divide="ignore", invalid="ignore"):  # empty groups: NaN, never chosen
            return np.maximum((self.B[hi] - self.B[lo]) - s * s / (self.W[hi] - self.W[lo]), 0.0)

    def stats(self, starts: np.ndarray):
        """Weight, mean and within SS of the groups that start at ``starts`` (and end at m)."""
        lo, hi = starts, np.r_[starts[1:], self.m]
        w = self.W[hi] - self.W[lo]
        return w, (self.A[hi] - self.A[lo]) / w, self.cost(lo, hi)


def _kmeans_layers(items: _Items, k_max: int) -> list[np.ndarray]:
    """Split points for 1..k_max groups: ``arg[j][i]`` = start of the last of j+1 groups of items [0, i)."""
    m = items.m
    prev = items.cost(0, np.arange(m + 1))
    prev[0] = np.inf
    args = [np.zeros(m + 1, dtype=np.intp)]
    for j in range(2, min(k_max, m) + 1):
        prev, arg = _layer(items, prev, j)
        args.append(arg)
    return args


def _layer(items: _Items, prev: np.ndarray, j: int):
    """D_j[i] = min over l in [j-1, i-1] of D_{j-1}[l] + cost(l, i), for i in [j, m].

    The best l never decreases with i (the cost is Monge for sorted values), so each row's
    search range is bounded by the answers of its neighbours: divide and conquer, with all
    rows of one recursion depth evaluated in one vectorised batch. O(m log m) per layer.
    """
    m = items.m
    D = np.full(m + 1, np.inf)
    arg = np.zeros(m + 1, dtype=np.intp)
    ilo, ihi = np.array([j]), np.array([m])
    llo, lhi = np.array([j - 1]), np.array([m - 1])
    while ilo.size:
        mid = (ilo + ihi) >> 1
        cnt = np.minimum(lhi, mid - 1) - llo + 1
        starts = np.cumsum(cnt) - cnt
        l = np.arange(int(cnt.sum())) - np.repeat(starts - llo, cnt)
        val = prev[l] + items.cost(l, np.repeat(mid, cnt))
        best = np.minimum.reduceat(val, starts)
        hits = np.flatnonzero(val == np.repeat(best, cnt))
        bl = l[hits[np.searchsorted(hits, starts)]]
        D[mid], arg[mid] = best, bl
        left, right = mid > ilo, mid < ihi
        ilo, ihi, llo, lhi = (
            np.concatenate((ilo[left], mid[right] + 1)),
            np.concatenate((mid[left] - 1, ihi[right])),
            np.concatenate((llo[left], bl[right])),
            np.concatenate((bl[left], lhi[right])),
        )
    return D, arg


def _starts(args: list[np.ndarray], k: int) -> np.ndarray:
    """Item index where each of the k groups starts, from the split points."""
    i = args[0].size - 1
    out = [0] * k
    for j in range(k - 1, 0, -1):
        i = int(args[j][i])
        out[j] = i
    return np.array(out, dtype=np.intp)


# --- fixed k -----------------------------------------------------------------------------


def _fixed_tiers(x: np.ndarray, k: int):
    """Optimal k-means of finite values x: (means, labels, counts, cuts)."""
    xs = np.sort(x)
    centre = float(xs[xs.size // 2])
    distinct = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])  # first position of each value
    if distinct.size <= EXACT_LIMIT:
        edges = np.r_[distinct, xs.size]  # items are the distinct values
    else:
        edges = _bin_edges(xs, FIXED_BINS)
    c = xs - centre
    P1 = np.concatenate(([0.0], np.cumsum(c)))
    P2 = np.concatenate(([0.0], np.cumsum(c * c)))
    items = _Items(np.diff(edges).astype(np.float64), np.diff(P1[edges]), np.diff(P2[edges]))
    k = min(k, items.m)
    pos = edges[_starts(_kmeans_layers(items, k), k)]  # group starts, as positions in xs
    if distinct.size > EXACT_LIMIT:
        pos = _lloyd(xs, P1, pos, centre)
    bounds = np.r_[pos, xs.size]
    levels = np.diff(P1[bounds]) / np.diff(bounds) + centre
    firsts = xs[pos[1:]]
    labels = np.searchsorted(firsts, x, side="right").astype(np.int32)
    cuts = (xs[pos[1:] - 1] + firsts) / 2.0
    return levels, labels, np.diff(bounds), cuts


def _bin_edges(xs: np.ndarray, bins: int) -> np.ndarray:
    """Positions in sorted ``xs`` of equal-width bin edges (log-spaced for positive values), empty bins dropped."""
    lo, hi = xs[0], xs[-1]
    if lo > 0:
        grid = np.exp(np.linspace(math.log(lo), math.log(hi), bins + 1)[1:-1])
    else:
        grid = np.linspace(lo, hi, bins + 1)[1:-1]
    return np.unique(np.r_[0, np.searchsorted(xs, grid, side="left"), xs.size])


def _lloyd(xs: np.ndarray, P1: np.ndarray, pos: np.ndarray, centre: float, max_steps: int = 100) -> np.ndarray:
    """Lloyd steps on sorted values: each split moves to the midpoint of its neighbours' means.

    ``P1``: prefix sums of ``xs - centre``. Never raises the within sum of squares.
    """
    for _ in range(max_steps):
        bounds = np.r_[pos, xs.size]
        means = np.diff(P1[bounds]) / np.diff(bounds)
        mids = (means[:-1] + means[1:]) / 2.0 + centre
        new = np.r_[0, np.searchsorted(xs, mids, side="right")]
        if np.array_equal(new, pos) or np.any(np.diff(np.r_[new, xs.size]) <= 0):
            break
        pos = new
    return pos


# --- automatic k -------------------------------------------------------------------------


def _auto_tiers(x: np.ndarray, max_k: int):
    """Tiers of finite values x with k chosen (module docstring): (medians, labels, counts, cuts)."""
    logged = bool(x.min() > 0)
    y = to_log(x)
    lo, hi = float(y.min()), float(y.max())
    sigma = noise_scale(y)
    if hi <= lo:
        return np.array([x.mean()]), np.zeros(x.size, dtype=np.int32), np.array([x.size]), np.empty(0)
    width = max(BIN_WIDTH * sigma, (hi - lo) / MAX_BINS)
    nb = int((hi - lo) / width) + 2  # one spare bin: float32 rounding of the largest value
    y -= lo
    y *= 1.0 / width  # y is now in bins
    idx = y.astype(np.int32)  # float32 -> int32 is vectorised; -> int64 is not (8x slower)
    cnt = np.bincount(idx, minlength=nb)
    centres = lo + (np.arange(nb) + 0.5) * width

    scale = sigma / width  # noise scale in bins
    dense = _dense_bins(cnt, max(1, math.ceil(DENSITY_WINDOW * scale)), x.size)
    dbins = np.flatnonzero(dense)
    w = cnt[dbins].astype(np.float64)
    offset = centres[dbins].mean()
    c = centres[dbins] - offset
    items = _Items(w, w * c, w * (c * c + width * width / 12.0))
    args = _kmeans_layers(items, max_k)
    kernel_sd = max(0.5, SMOOTHING * scale)
    density = _smooth(np.where(dense, cnt, 0).astype(np.float64), kernel_sd)

    thresholds = np.empty(0)
    for k in range(len(args), 1, -1):
        starts = _starts(args, k)
        weight, mean, ss = items.stats(starts)
        mean += offset
        cut = (mean[:-1] + mean[1:]) / 2.0
        first = dbins[starts]
        last = dbins[np.r_[starts[1:], dbins.size] - 1]
        peaks = _peaks(density, first, last)
        if (
            weight.min() >= MIN_SHARE * x.size  # counting non-sparse points only
            and _tight(density, peaks, weight, math.hypot(scale, kernel_sd))
            and _separated(density, kernel_sd, peaks, mean, np.sqrt(ss / weight))
            and (not logged or np.diff(mean).min() >= math.log(MIN_RATIO))
        ):
            thresholds = cut
            break
    # Tiers change at bin edges: a bin belongs to the tier whose centre is nearest to its own.
    bin_label = np.searchsorted(thresholds, centres)
    edges = np.flatnonzero(np.diff(bin_label)) + 1
    if edges.size <= 3:  # up to 3 comparisons are cheaper than a gather through the bin index
        labels = np.zeros(x.size, dtype=np.int32)
        for e in edges:
            labels += y >= e
    else:
        labels = bin_label.astype(np.int32)[idx]
    k = edges.size + 1
    counts = np.bincount(bin_label, weights=cnt, minlength=k).astype(np.int64)
    levels = lo + width * _medians(cnt, np.r_[0, edges, nb])
    cuts = lo + edges * width
    if logged:
        levels, cuts = np.exp(levels), np.exp(cuts)
    return levels, labels, counts, cuts


def _medians(cnt: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Median (in bins, interpolated linearly within its bin) of the points of each tier, whose
    bins run from bounds[j] to bounds[j + 1]. Medians, not means: a tier also collects the
    spikes nearest to it, which would drag its mean."""
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        cum = np.cumsum(cnt[a:b])
        half = cum[-1] / 2.0
        i = int(np.searchsorted(cum, half))
        below = cum[i - 1] if i else 0
        out.append(a + i + (half - below) / cnt[a + i])
    return np.array(out)


def _dense_bins(cnt: np.ndarray, reach: int, n: int) -> np.ndarray:
    """Occupied bins with at least max(SPARSE_MIN, SPARSE_SHARE * n) points within ``reach`` bins."""
    nb = cnt.size
    cum = np.concatenate(([0], np.cumsum(cnt)))
    i = np.arange(nb)
    near = cum[np.minimum(i + reach + 1, nb)] - cum[np.maximum(i - reach, 0)]
    dense = (cnt > 0) & (near >= max(SPARSE_MIN, SPARSE_SHARE * n))
    return dense if dense.any() else cnt > 0


def _smooth(counts: np.ndarray, sd: float) -> np.ndarray:
    """Histogram counts smoothed by a normal kernel of ``sd`` bins."""
    half = math.ceil(3 * sd)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sd) ** 2)
    return np.convolve(counts, kernel / kernel.sum(), mode="same")


def _peaks(density: np.ndarray, first, last) -> list[int]:
    """Bin of the highest density within each tier's bins first..last."""
    return [first[j] + int(np.argmax(density[first[j] : last[j] + 1])) for j in range(len(first))]


def _tight(density: np.ndarray, peaks, weight, spread: float) -> bool:
    """Every tier's density peak reaches ``TIGHTNESS`` times the peak its points would make as
    one normal bump of ``spread`` bins (noise and smoothing). Spikes spread over a decade are
    a group of points, not a tier."""
    expected = np.asarray(weight) / (math.sqrt(2.0 * math.pi) * spread)
    return bool(np.all(density[peaks] >= TIGHTNESS * expected))


def _separated(density: np.ndarray, kernel_sd: float, peaks, mean, sd) -> bool:
    """Adjacent tiers are told apart when their centres are ``SEPARATION`` within-tier standard
    deviations apart, or when the density dips between their peaks: to at most ``DIP`` times
    the lower peak, by more than ``DIP_Z`` standard errors of the counts (Poisson counts
    smoothed over about 2 sqrt(pi) ``kernel_sd`` bins). A tier carved out of the slope of
    another has its peak at its edge, next to the other: no dip."""
    for j in range(len(peaks) - 1):
        if mean[j + 1] - mean[j] >= SEPARATION * max(sd[j], sd[j + 1]):
            continue
        a, b = peaks[j], peaks[j + 1]
        peak, valley = min(density[a], density[b]), float(density[a : b + 1].min())
        noise = math.sqrt((peak + valley) / (2.0 * math.sqrt(math.pi) * kernel_sd))
        if valley > DIP * peak or peak - valley < DIP_Z * noise:
            return False
    return True


# --- summary -----------------------------------------------------------------------------


def tier_summary(values, tiers: Tiers, baseline=None) -> dict:
    """Per-tier level, share, first and last iteration, ratio to ``baseline``; onset and settle.

    ``baseline``: a number (e.g. the median latency of the no-gap variant) or a sequence of
    baseline latencies (its median is used). ``start_tier`` / ``final_tier``: most common tier
    among the first / last ``SUMMARY_WINDOW`` iterations. ``onset``: first iteration in a
    slower tier than the start tier that begins a stretch where at least ``ONSET_MIN`` of
    ``ONSET_RUN`` iterations are slower (a lone spike is no onset). ``settle``: first iteration
    in the final tier after which at most ``STRAY_SHARE`` of the iterations are elsewhere.
    Indices are positions in ``values``; None where there is none.
    """
    v = as_array(values)
    labels = np.asarray(tiers.labels)
    if labels.size != v.size:
        raise ValueError(f"tiers has {labels.size} labels for {v.size} values")
    if baseline is not None and not np.isscalar(baseline):
        baseline = float(np.nanmedian(as_array(baseline)))
    where = np.flatnonzero(labels >= 0)
    lab = labels[where]
    out = {"k": tiers.k, "baseline": None if baseline is None else float(baseline), "tiers": [],
           "start_tier": None, "final_tier": None, "onset": None, "settle": None}
    if lab.size == 0:
        return out
    for j, level in enumerate(tiers.levels):
        mine = np.flatnonzero(lab == j)
        out["tiers"].append({
            "tier": j,
            "level": level,
            "count": int(mine.size),
            "share": mine.size / lab.size,
            "first": int(where[mine[0]]) if mine.size else None,
            "last": int(where[mine[-1]]) if mine.size else None,
            "ratio": level / baseline if baseline else None,
        })
    start = int(np.bincount(lab[:SUMMARY_WINDOW]).argmax())
    final = int(np.bincount(lab[-SUMMARY_WINDOW:]).argmax())
    out["start_tier"], out["final_tier"] = start, final

    slower = (lab > start).astype(np.int64)
    run = np.convolve(slower, np.ones(ONSET_RUN, dtype=np.int64))[ONSET_RUN - 1 :]  # count in [i, i+RUN)
    onset = np.flatnonzero((slower == 1) & (run >= min(ONSET_MIN, lab.size)))
    out["onset"] = int(where[onset[0]]) if onset.size else None

    stray = (lab != final).astype(np.int64)
    after = np.cumsum(stray[::-1])[::-1]  # strays in [i, n)
    ok = (stray == 0) & (after <= STRAY_SHARE * (lab.size - np.arange(lab.size)))
    out["settle"] = int(where[np.argmax(ok)]) if ok.any() else None
    return out
