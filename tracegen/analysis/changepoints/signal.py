"""Input handling and the noise scale shared by the change-point and tier detectors."""

from __future__ import annotations

import math

import numpy as np

#: The noise scale is estimated from about NOISE_SAMPLE neighbour pairs (evenly spread), as
#: the root mean square of the smallest NOISE_KEEP of their differences (corrected to the
#: standard deviation for normal noise): far more precise than the MAD on short traces, and
#: blind to the largest 10 % (steps, spikes: a spike makes two large differences).
NOISE_SAMPLE = 1 << 13
NOISE_KEEP = 0.9
_q = 1.6448536269514722  # normal quantile at (1 + NOISE_KEEP) / 2
_TRIMMED_VARIANCE = 1.0 - 2.0 * _q * math.exp(-_q * _q / 2.0) / math.sqrt(2.0 * math.pi) / NOISE_KEEP


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


def fill_missing(y: np.ndarray) -> np.ndarray:
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

    Trimmed root mean square of the first differences / sqrt(2) (see ``NOISE_KEEP``), from
    about ``NOISE_SAMPLE`` evenly spread pairs (``relative``: differences of log z, i.e. noise
    as a fraction of the level). Quantised traces (most differences exactly 0) fall back to
    the mean absolute deviation of the differences. Returns 0.0 for a constant trace.
    """
    if z.size < 3:
        return 0.0
    step = max(1, (z.size - 1) // NOISE_SAMPLE)
    count = (z.size - 1) // step
    a = z[:-1:step][:count].astype(np.float64)
    b = z[1::step][:count].astype(np.float64)
    d = np.log(b / a) if relative else b - a
    dev = np.abs(d - np.median(d))
    keep = max(1, int(NOISE_KEEP * dev.size))
    core = np.partition(dev, keep - 1)[:keep]
    sigma = math.sqrt(float(core @ core) / keep / _TRIMMED_VARIANCE / 2.0)
    if sigma <= 0.0:
        sigma = math.sqrt(math.pi / 2.0) * float(dev.mean()) / math.sqrt(2.0)
    return sigma
