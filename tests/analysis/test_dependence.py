"""The dependence factor of the change-point penalty (reference.dependence_factor): two
estimates of the noise's lag-1 autocorrelation, the smaller one taken."""

from __future__ import annotations

import numpy as np
import pytest

from tracegen.analysis.changepoints import reference as R


def ar1(n: int, rho: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=n)
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = rho * x[i - 1] + np.sqrt(1 - rho * rho) * e[i]
    return x


def short_shifts(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Independent noise with a 25-point level shift of 4 noise units every 400 points (a
    RIPE Atlas trace's route flaps), and the shifts' boundaries."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    bounds = []
    for start in range(200, n - 200, 400):
        x[start : start + 25] += 4.0
        bounds += [start, start + 25]
    return x, bounds


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.5])
def test_both_estimates_recover_the_autocorrelation_of_plain_ar1_noise(rho):
    x = ar1(20_000, rho, seed=1)
    scores = R.normal_scores(x)
    whole = np.array([0, x.size])
    assert R.residual_rho(scores, whole) == pytest.approx(rho, abs=0.03)
    assert R.difference_rho(scores, 5) == pytest.approx(rho, abs=0.06)


@pytest.mark.parametrize("seed", range(4))
def test_missed_level_shifts_inflate_only_the_residual_estimate(seed):
    x, _ = short_shifts(10_000, seed=seed)
    scores = R.normal_scores(x)
    whole = np.array([0, x.size])  # as if the plain penalty had found none of the shifts
    residual, by_differences = R.residual_rho(scores, whole), R.difference_rho(scores, 5)
    assert residual > 0.2 and abs(by_differences) < 0.15 and residual - by_differences > 0.1
    assert R.dependence_factor(scores, whole, 5) < 1.35  # the residual estimate alone: 1.6


def test_dependence_beyond_the_lags_is_kept_by_the_residual_estimate():
    # slow phases: a level that changes every 40 points by a small random step, which the
    # difference estimate at lags 5-10 barely sees, the residual estimate does
    rng = np.random.default_rng(3)
    x = ar1(20_000, 0.6, seed=3) + np.repeat(rng.normal(0, 0.2, 500), 40)
    scores = R.normal_scores(x)
    factor = R.dependence_factor(scores, np.array([0, x.size]), 5)
    assert factor == pytest.approx(4.0, rel=0.15)


def test_the_difference_estimate_is_undefined_where_values_are_mostly_tied():
    x = np.ones(500)
    x[::50] = 2.0
    assert R.difference_rho(R.normal_scores(x), 5) is None
    assert R.difference_rho(R.normal_scores(np.arange(15.0)), 5) is None  # too short for lag 10
