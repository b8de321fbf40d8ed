"""Thin long series for drawing without hiding tiers or change points.

A variant of a million iterations cannot be drawn point by point. Each bucket of consecutive
iterations becomes its median (which keeps the tier levels) and its min and max (which keep
spikes visible as a band); iterations within a few points of a change point are kept as they are,
so a step is drawn at its exact iteration.
"""

from __future__ import annotations

import numpy as np

KEEP_AROUND = 3  # raw points kept on each side of a marked index


def downsample(x: np.ndarray, y: np.ndarray, max_points: int = 1500, keep: list[int] | None = None) -> dict[str, np.ndarray]:
    """Return arrays ``x``, ``y`` (bucket median or raw value), ``lo``, ``hi`` with at most
    about ``max_points`` buckets plus the kept raw points; ``x`` sorted."""
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n <= max_points:
        return {"x": x, "y": y, "lo": y, "hi": y}
    raw = np.zeros(n, dtype=bool)
    for k in keep or []:
        raw[max(0, k - KEEP_AROUND): min(n, k + KEEP_AROUND + 1)] = True
    size = int(np.ceil(n / max_points))
    pad = (-n) % size
    # Buckets are whole runs of `size` points: pad with NaN and reshape. Kept raw points are left
    # out of their bucket's statistics and drawn as themselves.
    yy = np.concatenate([np.where(raw, np.nan, y), np.full(pad, np.nan)]).reshape(-1, size)
    xs = np.concatenate([np.where(raw, np.nan, x.astype(np.float64)), np.full(pad, np.nan)]).reshape(-1, size)
    filled = ~np.all(np.isnan(yy), axis=1)
    yy, xs = yy[filled], xs[filled]
    med, lo, hi = np.nanmedian(yy, axis=1), np.nanmin(yy, axis=1), np.nanmax(yy, axis=1)
    out_x = np.concatenate([np.nanmedian(xs, axis=1), x[raw].astype(np.float64)])
    out_y = np.concatenate([med, y[raw]])
    out_lo = np.concatenate([lo, y[raw]])
    out_hi = np.concatenate([hi, y[raw]])
    order = np.argsort(out_x, kind="stable")
    return {"x": out_x[order], "y": out_y[order], "lo": out_lo[order], "hi": out_hi[order]}
