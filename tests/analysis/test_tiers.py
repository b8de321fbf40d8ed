"""Latency tiers: exact 1-D k-means for a fixed k, the number of tiers, and the summary."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.analysis.synthetic import piecewise, random_mixture
from tracegen.analysis import Tiers, detect_tiers, tier_summary
from tracegen.analysis import tiers as tiers_module


def reference_kmeans_ss(values, k: int) -> float:
    """Least within-group sum of squares over all splits of the sorted values into k
    contiguous groups: the textbook O(k n^2) dynamic programme, no speed-ups."""
    x = sorted(float(v) for v in values)
    n = len(x)

    def ss(i, j):  # values x[i..j-1]
        part = x[i:j]
        mean = sum(part) / len(part)
        return sum((v - mean) ** 2 for v in part)

    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for groups in range(1, k + 1):
        for j in range(groups, n + 1):
            best[groups][j] = min(best[groups - 1][i] + ss(i, j) for i in range(groups - 1, j))
    return best[k][n]


def within_ss(values, tiers: Tiers) -> float:
    values = np.asarray(values, dtype=float)
    return float(sum(((values[tiers.labels == j] - values[tiers.labels == j].mean()) ** 2).sum()
                     for j in range(tiers.k)))


@pytest.mark.parametrize("seed", range(40))
def test_fixed_k_is_the_exact_optimum(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 30))
    kind = seed % 4
    if kind == 0:
        values = rng.normal(0, 1, n)
    elif kind == 1:
        values = rng.lognormal(1, 0.6, n)
    elif kind == 2:
        values = rng.integers(0, 6, n).astype(float)  # many ties
    else:
        values = np.r_[rng.normal(5, 0.3, n // 2), rng.normal(9, 0.3, n - n // 2)] * rng.choice([1, 10], n)
    for k in range(1, min(n, 5) + 1):
        tiers = detect_tiers(values, k=k)
        expected = reference_kmeans_ss(values, tiers.k)
        assert tiers.k == min(k, len(set(values.tolist())))
        assert within_ss(values, tiers) == pytest.approx(expected, rel=1e-9, abs=1e-9), (seed, k)
        assert list(tiers.levels) == sorted(tiers.levels)
        assert sum(tiers.counts) == n


def test_fixed_k_on_binned_large_input_matches_exact(monkeypatch):
    trace = random_mixture(3_000, 3, seed=5)
    exact = detect_tiers(trace.values, k=3)
    monkeypatch.setattr(tiers_module, "EXACT_LIMIT", 100)  # force the binned DP + Lloyd path
    monkeypatch.setattr(tiers_module, "FIXED_BINS", 64)
    binned = detect_tiers(trace.values, k=3)
    assert within_ss(trace.values, binned) == pytest.approx(within_ss(trace.values, exact), rel=1e-9)
    assert np.array_equal(binned.labels, exact.labels)


def test_number_of_tiers_on_200_separated_mixtures():
    right = 0
    for seed in range(200):
        rng = np.random.default_rng(10_000 + seed)
        k = int(rng.integers(1, 6))
        n = int(rng.choice([100, 300, 1_000, 5_000]))
        trace = random_mixture(n, k, seed)
        tiers = detect_tiers(trace.values)
        right += tiers.k == k
    assert right >= 0.95 * 200


def test_levels_and_labels_of_a_mixture():
    trace = random_mixture(2_000, 3, seed=11)
    tiers = detect_tiers(trace.values)
    assert tiers.k == 3
    assert np.allclose(tiers.levels, trace.levels, rtol=0.03)
    spikes = trace.values > 2.5 * trace.signal
    assert np.mean(tiers.labels[~spikes] == trace.labels[~spikes]) > 0.99
    assert tiers.labels.dtype == np.int32 and sum(tiers.counts) == 2_000
    assert len(tiers.cuts) == 2 and tiers.levels[0] < tiers.cuts[0] < tiers.levels[1] < tiers.cuts[1]


@pytest.mark.parametrize("noise", [0.02, 0.1, 0.2])
def test_flat_trace_with_spikes_is_one_tier(noise):
    for seed in range(5):
        trace = piecewise([3_000], [4.7], noise=noise, spikes=0.02, seed=seed)
        tiers = detect_tiers(trace.values)
        assert tiers.k == 1
        assert tiers.levels[0] == pytest.approx(4.7, rel=0.02)  # the median


def test_seed_report_idle_trace_has_two_tiers():
    # Normal for 100 iterations, a linear slow-down over 100, stable at 2.15x (4.7 -> 10.1 ms).
    trace = piecewise([100, 100, 800], [4.7, 10.1, 10.1], ramps={1}, noise=0.03, spikes=0.01, seed=3)
    tiers = detect_tiers(trace.values)
    assert tiers.k == 2
    assert tiers.levels[0] == pytest.approx(4.7, rel=0.1) and tiers.levels[1] == pytest.approx(10.1, rel=0.03)
    summary = tier_summary(trace.values, tiers, baseline=4.7)
    assert summary["start_tier"] == 0 and summary["final_tier"] == 1
    assert 100 <= summary["onset"] <= 160
    assert 140 <= summary["settle"] <= 210
    assert summary["tiers"][1]["ratio"] == pytest.approx(10.1 / 4.7, rel=0.03)


def test_summary_of_a_step_with_strays():
    rng = np.random.default_rng(1)
    values = np.r_[np.full(200, 5.0), np.full(800, 9.0)] * np.exp(rng.normal(0, 0.02, 1_000))
    values[50] = 9.0  # one slow iteration before the step: no onset yet
    values[[400, 700]] = 5.0  # fast strays after it: settled anyway
    tiers = detect_tiers(values)
    summary = tier_summary(values, tiers, baseline=np.full(30, 5.0))
    assert summary["onset"] == 200 and summary["settle"] == 200
    assert summary["baseline"] == 5.0
    first, second = summary["tiers"]
    assert (first["first"], first["last"], second["first"], second["last"]) == (0, 700, 50, 999)
    assert first["share"] == pytest.approx(0.201) and second["ratio"] == pytest.approx(1.8, rel=0.01)


def test_input_types_missing_values_and_edge_cases():
    trace = random_mixture(500, 2, seed=2, spikes=0.0)
    values = trace.values.copy()
    values[[3, 30]] = np.nan
    tiers = detect_tiers(pl.Series(values))
    assert tiers.k == 2 and tiers.labels[3] == -1 and tiers.labels[30] == -1
    assert sum(tiers.counts) == 498
    assert detect_tiers(list(values)).levels == tiers.levels
    assert detect_tiers([]).k == 0
    assert detect_tiers(np.full(50, 3.0)).levels == (3.0,)
    assert detect_tiers([1.0, 1.0, 2.0], k=5).k == 2
    with pytest.raises(ValueError):
        detect_tiers([1.0, 2.0], k=0)
    summary = tier_summary(values, tiers)
    assert summary["tiers"][0]["ratio"] is None and summary["k"] == 2
