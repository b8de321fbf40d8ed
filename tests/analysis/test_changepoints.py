"""Change points on synthetic traces with known truth (tests/analysis/synthetic.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.analysis.synthetic import covering, f1_score, match_count, piecewise, random_trace
from tracegen.analysis import detect_changepoints


def near(found, truth, margin=5) -> bool:
    """Same number of change points, each within ``margin`` of its true one."""
    return len(found) == len(truth) and all(abs(f - t) <= margin for f, t in zip(found, truth))


@pytest.mark.parametrize("n", [100, 1_000, 10_000, 200_000])
def test_flat_noisy_trace_has_no_changepoints(n):
    for seed in range(5):
        noise = [0.02, 0.05, 0.1, 0.15, 0.2][seed]
        trace = piecewise([n], [4.7], noise=noise, spikes=0.01, seed=seed)
        assert detect_changepoints(trace.values) == [], (n, seed)


def test_spikes_and_bursts_do_not_create_segments():
    rng = np.random.default_rng(7)
    values = 5.0 * np.exp(rng.normal(0, 0.05, 5_000))
    values[rng.choice(5_000, 100, replace=False)] *= rng.uniform(5, 50, 100)  # isolated
    for start in (1000, 2000, 3000):  # bursts of 2 and 3 slow iterations
        values[start : start + 2] *= 20
        values[start + 500 : start + 503] *= 8
    assert detect_changepoints(values) == []


@pytest.mark.parametrize("seed", range(6))
def test_steps_within_five_iterations(seed):
    trace = piecewise([120, 80, 300, 40, 460], [4.7, 7.0, 5.2, 9.8, 6.1], noise=0.05, spikes=0.01, seed=seed)
    assert near(detect_changepoints(trace.values), trace.changepoints)


def test_ramp_start_and_end():
    # The seed report: normal for about 50 iterations, a linear slow-down, then stable at ~2x.
    # The kernel cost places a ramp's ends where the level has left the one before (a kink is
    # diffuse, 7-15 iterations in): both ends found within 15 iterations, and at most one
    # step cut out of the ramp between them, in 20 traces of 20.
    for seed in range(20):
        trace = piecewise([60, 70, 870], [4.7, 10.1, 10.1], ramps={1}, noise=0.03, spikes=0.01, seed=seed)
        found = detect_changepoints(trace.values)
        assert 2 <= len(found) <= 3, seed
        assert abs(found[0] - 60) <= 15 and abs(found[-1] - 130) <= 15, (seed, found)


def test_short_segment_in_a_long_trace():
    # 60 iterations 30 % slower among 200,000. (The kernel cost of a segment grows with its
    # length only, so a segment needs about 2 log n = 24 iterations to pay for its two
    # change points; a 30-iteration one at this noise is not found.)
    trace = piecewise([120_000, 60, 80_000], [5.0, 6.5, 5.0], noise=0.05, spikes=0.01, seed=3)
    assert near(detect_changepoints(trace.values), trace.changepoints)


def test_accuracy_on_random_traces():
    tp = n_true = n_pred = 0
    cover = []
    for seed in range(60):
        trace = random_trace(1_000, seed)
        found = detect_changepoints(trace.values)
        tp += match_count(trace.changepoints, found)
        n_true += len(trace.changepoints)
        n_pred += len(found)
        cover.append(covering(trace.changepoints, found, 1_000))
    # A unit check, not the claim (that is the real-data benchmark): the generator's ramps
    # are located 5-15 iterations in from their kinks, which F1 with margin 5 counts as misses.
    assert f1_score(tp, n_true, n_pred) >= 0.6
    assert np.mean(cover) >= 0.92


def test_input_types_and_missing_values():
    trace = piecewise([300, 300], [5.0, 8.0], noise=0.05, seed=1)
    expected = detect_changepoints(trace.values)
    assert near(expected, trace.changepoints)
    assert detect_changepoints(list(trace.values)) == expected
    assert detect_changepoints(pl.Series(trace.values)) == expected
    with_nan = trace.values.copy()
    with_nan[[10, 400]] = np.nan
    assert near(detect_changepoints(with_nan), trace.changepoints)
    assert detect_changepoints(pl.Series(with_nan).fill_nan(None)) == detect_changepoints(with_nan)


def test_degenerate_inputs():
    assert detect_changepoints([]) == []
    assert detect_changepoints([1.0, 2.0, 3.0]) == []
    assert detect_changepoints(np.full(500, 3.0)) == []
    assert detect_changepoints(np.r_[np.full(50, 3.0), np.full(50, 4.0)]) == [50]
    with pytest.raises(ValueError):
        detect_changepoints(np.ones((3, 3)))


def test_values_that_are_not_positive_use_absolute_noise():
    rng = np.random.default_rng(2)
    values = np.r_[rng.normal(0, 1, 400), rng.normal(4, 1, 400)]
    assert near(detect_changepoints(values), [400])


def test_penalty_and_min_size():
    trace = piecewise([200, 15, 200, 200], [5.0, 9.0, 5.0, 5.6], noise=0.05, seed=4)
    assert near(detect_changepoints(trace.values), trace.changepoints)
    longer = detect_changepoints(trace.values, min_size=20)
    assert min(np.diff([0, *longer, 615])) >= 20
    assert near(longer[-1:], [415])
    assert detect_changepoints(trace.values, penalty=1e6) == []


def test_scores():
    assert match_count([10, 50], [12, 49, 90]) == 2
    assert match_count([10, 12], [11]) == 1  # one predicted point matches one true point
    assert f1_score(0, 0, 0) == 1.0 and f1_score(0, 2, 0) == 0.0
    assert covering([50], [50], 100) == 1.0
    assert covering([], [50], 100) == pytest.approx(0.5)
    assert covering([50], [], 100) == pytest.approx(0.5)

