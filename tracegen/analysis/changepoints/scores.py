"""Normal scores in numpy alone: average ranks and the inverse normal distribution function.

``scipy.stats`` (``rankdata``) costs about 2 s to import on the 2-core development machine,
more than the change-point search of a 500,000-point trace; ``scipy.special`` (``ndtri``) alone
still costs 0.25 to 0.5 s. Both are a few lines of numpy:

* ``average_ranks``: one argsort, ties get the mean of the ranks they span (exactly what
  ``scipy.stats.rankdata(method="average")`` returns: the means are multiples of 0.5).
* ``normal_quantile``: Wichura's algorithm AS 241 (PPND16, Applied Statistics 37, 1988), the
  rational approximations the standard library's ``statistics.NormalDist.inv_cdf`` also uses,
  accurate to about 1e-16 relative; evaluated for a whole array at once.

tests/analysis/test_exact_speedups.py compares both with scipy; benchmarks/bench_normal_scores.py
times them against it.
"""

from __future__ import annotations

import numpy as np

# AS 241 coefficients, highest power first (np.polyval order); each denominator ends in 1.
_CENTRAL_NUM = (2.5090809287301226727e3, 3.3430575583588128105e4, 6.7265770927008700853e4,
                4.5921953931549871457e4, 1.3731693765509461125e4, 1.9715909503065514427e3,
                1.3314166789178437745e2, 3.3871328727963666080e0)
_CENTRAL_DEN = (5.2264952788528545610e3, 2.8729085735721942674e4, 3.9307895800092710610e4,
                2.1213794301586595867e4, 5.3941960214247511077e3, 6.8718700749205790830e2,
                4.2313330701600911252e1, 1.0)
_NEAR_NUM = (7.74545014278341407640e-4, 2.27238449892691845833e-2, 2.41780725177450611770e-1,
             1.27045825245236838258e0, 3.64784832476320460504e0, 5.76949722146069140550e0,
             4.63033784615654529590e0, 1.42343711074968357734e0)
_NEAR_DEN = (1.05075007164441684324e-9, 5.47593808499534494600e-4, 1.51986665636164571966e-2,
             1.48103976427480074590e-1, 6.89767334985100004550e-1, 1.67638483018380384940e0,
             2.05319162663775882187e0, 1.0)
_TAIL_NUM = (2.01033439929228813265e-7, 2.71155556874348757815e-5, 1.24266094738807843860e-3,
             2.65321895265761230930e-2, 2.96560571828504891230e-1, 1.78482653991729133580e0,
             5.46378491116411436990e0, 6.65790464350110377720e0)
_TAIL_DEN = (2.04426310338993978564e-15, 1.42151175831644588870e-7, 1.84631831751005468180e-5,
             7.86869131145613259100e-4, 1.48753612908506148525e-2, 1.36929880922735805310e-1,
             5.99832206555887937690e-1, 1.0)


def average_ranks(y: np.ndarray) -> np.ndarray:
    """1-based ranks of ``y`` (float64), ties sharing the mean of their ranks."""
    y = np.asarray(y)
    n = y.size
    order = np.argsort(y)  # any order of equal values: they get the same rank
    s = y[order]
    start = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if n else np.empty(0, dtype=np.intp)
    end = np.r_[start[1:], n]
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((start + end + 1) / 2.0, end - start)
    return ranks


def normal_quantile(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile of each probability in ``p`` (0 -> -inf, 1 -> inf, outside
    [0, 1] or NaN -> NaN), as ``scipy.special.ndtri``."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    q = p - 0.5
    central = np.abs(q) <= 0.425
    if central.any():
        qc = q[central]
        r = 0.180625 - qc * qc
        out[central] = qc * np.polyval(_CENTRAL_NUM, r) / np.polyval(_CENTRAL_DEN, r)
    tail = ~central & (p > 0.0) & (p < 1.0)
    if tail.any():
        qt = q[tail]
        r = np.sqrt(-np.log(np.where(qt < 0.0, p[tail], 1.0 - p[tail])))
        near = r <= 5.0
        x = np.empty(r.shape)
        rn, rf = r[near] - 1.6, r[~near] - 5.0
        x[near] = np.polyval(_NEAR_NUM, rn) / np.polyval(_NEAR_DEN, rn)
        x[~near] = np.polyval(_TAIL_NUM, rf) / np.polyval(_TAIL_DEN, rf)
        out[tail] = np.where(qt < 0.0, -x, x)
    out[p == 0.0] = -np.inf
    out[p == 1.0] = np.inf
    return out
