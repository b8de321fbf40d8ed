"""Synthetic latency traces with known truth, and the scores to grade a segmentation.

Shared by the analysis tests and ``benchmarks/bench_changepoints.py``. A trace is a noise-free
signal in milliseconds (piecewise flat levels and linear ramps) times lognormal noise, with
optional spikes (a random point multiplied by a log-uniform factor, 5-50x by default).
Everything is drawn from ``numpy.random.default_rng(seed)``, so a seed fixes the trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

KINDS = ("flat", "steps", "ramp", "mixed")
#: Shortest segment the random traces contain.
MIN_SEGMENT = 20


@dataclass(frozen=True, eq=False)
class Trace:
    """A synthetic trace and its truth."""

    values: np.ndarray
    #: Index where each segment after the first starts (the truth for change points).
    changepoints: tuple[int, ...]
    kind: str
    #: Noise-free signal.
    signal: np.ndarray
    #: For tier mixtures: the true levels (ascending) and the tier of each point.
    levels: tuple[float, ...] = ()
    labels: np.ndarray | None = None


def piecewise(lengths, levels, *, ramps=(), noise=0.05, spikes=0.0, spike_range=(5.0, 50.0), seed=None,
              kind="piecewise") -> Trace:
    """Segments of ``lengths`` points at ``levels``; a segment listed in ``ramps`` instead goes
    linearly from the previous segment's level to its own (so the next segment, at the same
    level, is "stable after the ramp"); its start and end are the kinks of the signal. ``noise``: sigma of the lognormal noise; ``spikes``:
    share of points multiplied by a factor drawn log-uniformly from ``spike_range``."""
    rng = np.random.default_rng(seed)
    lengths = [int(x) for x in lengths]
    parts = []
    for i, (length, level) in enumerate(zip(lengths, levels)):
        if i in ramps and i > 0:
            start = levels[i - 1]
            parts.append(start + (level - start) * (np.arange(length) / length))
        else:
            parts.append(np.full(length, float(level)))
    signal = np.concatenate(parts)
    values = signal * np.exp(rng.normal(0.0, noise, signal.size))
    if spikes > 0:
        hit = rng.random(signal.size) < spikes
        lo, hi = np.log(spike_range)
        values[hit] *= np.exp(rng.uniform(lo, hi, int(hit.sum())))
    cps = tuple(int(c) for c in np.cumsum(lengths)[:-1])
    return Trace(values, cps, kind, signal)


def _split(rng, n: int, parts: int, minimum: int) -> list[int]:
    """``parts`` random lengths >= ``minimum`` summing to n."""
    spare = n - parts * minimum
    cuts = np.sort(rng.integers(0, spare + 1, parts - 1))
    return [minimum + int(d) for d in np.diff(np.r_[0, cuts, spare])]


def random_trace(n: int, seed: int, kind: str | None = None) -> Trace:
    """A random trace of ``n`` points (n >= 100) of ``kind`` (random of ``KINDS`` if None).

    flat: one level. steps: 1-8 level shifts (|log step| >= max(0.08, 4 sigma)), sometimes a
    slow warm-up first. ramp: normal -> linear slow-down -> stable, the ramp steep enough to
    locate its ends (at least sigma / 4 per iteration). mixed: warm-up, steps and a ramp.
    Noise sigma 0.02-0.12 (lognormal), spikes 0-2 % of the points.
    """
    rng = np.random.default_rng(seed)
    kind = kind or KINDS[int(rng.integers(len(KINDS)))]
    noise = float(rng.uniform(0.02, 0.12))
    spikes = float(rng.choice([0.0, 0.005, 0.01, 0.02]))
    base = float(rng.uniform(1.0, 20.0))
    if kind == "flat":
        return piecewise([n], [base], noise=noise, spikes=spikes, seed=rng, kind=kind)

    def step(level):
        size = rng.uniform(max(0.08, 4 * noise), 0.8)
        return level * math.exp(size if rng.random() < 0.6 else -size)

    def ramp_segment(level):
        """(length, end level) of a slow-down ramp from ``level``."""
        length = int(rng.integers(MIN_SEGMENT, min(150, n // 3) + 1))
        rise = max(0.1, 4 * noise, length * noise / 4, float(rng.uniform(0.2, 0.8)))
        rise = min(rise, 0.95)
        length = min(length, max(MIN_SEGMENT, int(4 * rise / noise)))
        return length, level * math.exp(rise)

    lengths: list[int] = []
    levels: list[float] = []
    ramps: list[int] = []
    if kind in ("steps", "mixed") and rng.random() < 0.5:  # slow warm-up
        lengths.append(int(rng.integers(MIN_SEGMENT, 61)))
        levels.append(base * float(rng.uniform(1.3, 2.0)))
    if kind == "ramp":
        r_len, r_level = ramp_segment(base)
        a, c = _split(rng, n - r_len, 2, MIN_SEGMENT)
        lengths += [a, r_len, c]
        levels += [base, r_level, r_level]
        ramps.append(len(lengths) - 2)
    else:
        rest = n - sum(lengths)
        k = int(rng.integers(1, max(1, min(8, rest // 100)) + 1))
        k = min(k, rest // MIN_SEGMENT - 1)
        pieces = _split(rng, rest, k + 1, MIN_SEGMENT)
        level = base
        ramp_at = int(rng.integers(1, k + 1)) if kind == "mixed" else -1
        for i, length in enumerate(pieces):
            if i == ramp_at and length >= 2 * MIN_SEGMENT + 20:
                r_len, level = ramp_segment(level)
                r_len = min(r_len, length - MIN_SEGMENT)
                ramps.append(len(lengths))
                lengths += [r_len, length - r_len]
                levels += [level, level]
                continue
            if i > 0:
                level = step(level)
            lengths.append(length)
            levels.append(level)
    return piecewise(lengths, levels, ramps=set(ramps), noise=noise, spikes=spikes, seed=rng, kind=kind)


def random_mixture(n: int, k: int, seed: int, *, spikes: float = 0.005) -> Trace:
    """``n`` points in ``k`` clearly separated tiers, in runs along the iterations.

    Levels are apart by at least 8 noise sigmas and 15 % (log gap >= max(8 sigma, log 1.15));
    every tier holds at least 5 % of the points, split into 1-3 runs in random order.
    """
    rng = np.random.default_rng(seed)
    noise = float(rng.uniform(0.01, 0.06))
    gaps = rng.uniform(max(8 * noise, math.log(1.15)), max(8 * noise, math.log(1.15)) + 0.6, k - 1)
    logs = np.log(rng.uniform(1.0, 20.0)) + np.r_[0.0, np.cumsum(gaps)]
    shares = 0.05 + (1 - 0.05 * k) * rng.dirichlet(np.ones(k))
    counts = np.floor(shares * n).astype(int)
    counts[np.argmax(counts)] += n - counts.sum()
    runs = []
    for tier, count in enumerate(counts):
        pieces = int(rng.integers(1, 4)) if count >= 3 * MIN_SEGMENT else 1
        cuts = np.sort(rng.choice(np.arange(1, count), pieces - 1, replace=False)) if pieces > 1 else []
        runs += [(tier, int(d)) for d in np.diff(np.r_[0, cuts, count])]
    order = rng.permutation(len(runs))
    labels = np.concatenate([np.full(runs[i][1], runs[i][0]) for i in order])
    signal = np.exp(logs)[labels]
    values = signal * np.exp(rng.normal(0.0, noise, n))
    if spikes > 0:
        hit = rng.random(n) < spikes
        values[hit] *= np.exp(rng.uniform(np.log(5.0), np.log(50.0), int(hit.sum())))
    cps = tuple(int(i) for i in np.flatnonzero(np.diff(labels)) + 1)
    return Trace(values, cps, "mixture", signal, tuple(float(x) for x in np.exp(logs)), labels)


# --- scores ------------------------------------------------------------------------------


def match_count(truth, predicted, margin: int = 5) -> int:
    """True positives: pairs (true, predicted) at most ``margin`` apart, each point used once
    (closest pairs first)."""
    truth = np.asarray(truth, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if truth.size == 0 or predicted.size == 0:
        return 0
    pairs = []
    for i, t in enumerate(truth):
        lo, hi = np.searchsorted(predicted, [t - margin, t + margin + 1])
        pairs += [(abs(int(predicted[j]) - int(t)), i, j) for j in range(lo, hi)]
    used_t, used_p = set(), set()
    for _, i, j in sorted(pairs):
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
    return len(used_t)


def f1_score(tp: int, n_true: int, n_pred: int) -> float:
    """F1 from counts; 1.0 when there is nothing to find and nothing was found."""
    if n_true == 0 and n_pred == 0:
        return 1.0
    return 2.0 * tp / (n_true + n_pred)


def covering(truth, predicted, n: int) -> float:
    """Segmentation covering of the true segmentation by the predicted one (1.0 = identical):
    sum over true segments A of |A| * max over predicted A' of |A & A'| / |A | A'|, over n."""
    tb = np.r_[0, np.asarray(truth, dtype=np.int64), n]
    pb = np.r_[0, np.asarray(predicted, dtype=np.int64), n]
    total = 0.0
    for a, b in zip(tb[:-1], tb[1:]):
        lo = max(int(np.searchsorted(pb, a, side="right")) - 1, 0)
        hi = int(np.searchsorted(pb, b, side="left"))
        s, e = pb[lo:hi], pb[lo + 1 : hi + 1]
        inter = np.minimum(e, b) - np.maximum(s, a)
        union = np.maximum(e, b) - np.minimum(s, a)
        total += (b - a) * float(np.max(inter / union))
    return total / n
