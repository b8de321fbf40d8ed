"""Faster helpers of the analysis path give what they replaced: the numpy normal scores
(changepoints/scores.py) what scipy gives (scipy.stats costs seconds to import), the vectorised
iteration ranges and window maximum what their loops gave."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from tracegen.analysis.changepoints import normal_scores
from tracegen.analysis.changepoints.scores import average_ranks, normal_quantile
from tracegen.analysis.facts import ranges

rng = np.random.default_rng(11)

SAMPLES = {
    "normal": rng.normal(size=20_000),
    "heavy ties": np.round(rng.exponential(size=20_000), 1),
    "all equal": np.full(50, 2.5),
    "two values": rng.integers(0, 2, 101).astype(float),
    "one": np.array([3.0]),
    "empty": np.array([]),
    "latency-like": 2.3 + np.where(rng.random(5_000) < 0.01, 40.0, 0.0) + rng.exponential(0.05, 5_000),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_average_ranks_equal_scipy_rankdata(name):
    stats = pytest.importorskip("scipy.stats")
    y = SAMPLES[name]
    assert np.array_equal(average_ranks(y), stats.rankdata(y))


def test_normal_quantile_matches_scipy_ndtri():
    special = pytest.importorskip("scipy.special")
    p = np.concatenate([rng.random(50_000), np.logspace(-300, -1, 3_000), 1 - np.logspace(-16, -1, 500),
                        [0.5, 0.075, 0.925, 0.0749999, 0.9250001, np.exp(-25.0), 1 - np.exp(-25.0)]])
    ours, theirs = normal_quantile(p), special.ndtri(p)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=0)


def test_normal_quantile_edges_and_the_standard_library():
    assert normal_quantile(np.array([0.0]))[0] == -np.inf
    assert normal_quantile(np.array([1.0]))[0] == np.inf
    assert np.isnan(normal_quantile(np.array([-0.1, 1.1, np.nan]))).all()
    assert normal_quantile(np.array([0.5]))[0] == 0.0
    nd = statistics.NormalDist()
    p = np.r_[rng.random(200), 1e-10, 1e-200, 1 - 1e-12]
    np.testing.assert_allclose(normal_quantile(p), [nd.inv_cdf(x) for x in p], rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_normal_scores_equal_scipy(name):
    special = pytest.importorskip("scipy.special")
    stats = pytest.importorskip("scipy.stats")
    y = SAMPLES[name]
    if y.size == 0:
        return
    np.testing.assert_allclose(normal_scores(y), special.ndtri((stats.rankdata(y) - 0.5) / y.size), rtol=1e-14, atol=0)


def _ranges_reference(numbers, mask, max_gap=5, keep=5):
    """The loop ``facts.ranges`` replaced: runs of mask, merged across gaps <= max_gap."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return ()
    runs = [[int(idx[0]), int(idx[0])]]
    for i in idx[1:]:
        if i - runs[-1][1] <= max_gap:
            runs[-1][1] = int(i)
        else:
            runs.append([int(i), int(i)])
    runs.sort(key=lambda r: r[0] - r[1])
    return tuple((int(numbers[a]), int(numbers[b])) for a, b in sorted(runs[:keep]))


@pytest.mark.parametrize("density", [0.0, 0.01, 0.1, 0.5, 0.9, 1.0])
def test_ranges_equal_the_loop(density):
    for seed in range(20):
        r = np.random.default_rng(seed)
        n = int(r.integers(1, 3_000))
        mask = r.random(n) < density
        if seed % 3 == 0:  # long runs and equal lengths (ties keep the earlier run)
            mask = (np.arange(n) // int(r.integers(1, 40))) % 2 == 0
        numbers = np.sort(r.choice(10 * n, n, replace=False)) + 20
        for max_gap, keep in ((5, 5), (0, 3), (12, 1)):
            assert ranges(numbers, mask, max_gap=max_gap, keep=keep) == _ranges_reference(numbers, mask, max_gap, keep)


def test_window_max_equals_the_shifted_loop():
    from tracegen.analysis.changepoints.search import window_max

    def loop(z, h):  # what proposals() did before
        peak = z.copy()
        for shift in range(1, h):
            np.maximum(peak[shift:], z[:-shift], out=peak[shift:])
            np.maximum(peak[:-shift], z[shift:], out=peak[:-shift])
        return peak

    r = np.random.default_rng(5)
    for n in (1, 2, 3, 7, 40, 81, 1_000):
        for h in (1, 2, 3, 5, 8, 10, 40, 2_000):
            z = np.abs(r.normal(size=n))
            assert np.array_equal(window_max(z, h), loop(z, h)), (n, h)


def test_series_analysed_in_threads_give_the_same_facts(monkeypatch):
    from pathlib import Path

    from tracegen.analysis import facts as F
    from tracegen.trace.reader import read_run

    run = read_run(Path(__file__).resolve().parents[2] / "examples" / "h100-small-idle")
    monkeypatch.setattr(F, "PARALLEL_POINTS", 10**12)
    serial = F.collect_facts(run)
    monkeypatch.setattr(F, "PARALLEL_POINTS", 0)
    threaded = F.collect_facts(run)
    assert len(serial.changepoints) >= 2
    assert threaded.changepoints == serial.changepoints
    assert threaded.tier_summaries == serial.tier_summaries
    assert {v: list(t.levels) for v, t in threaded.tiers.items()} == {v: list(t.levels) for v, t in serial.tiers.items()}
