"""The binned kernel cost against a direct computation, and the merge of invisible changes."""

from __future__ import annotations

import numpy as np
import pytest

from tracegen.analysis.changepoints.kernel import KernelCost, bandwidth, refine
from tracegen.analysis.changepoints.search import candidates, optimal_partition
from tracegen.analysis.changepoints.visible import ks_distance, merge_invisible


def direct_cost(cost: KernelCost, a: int, b: int) -> float:
    """L - sum_ij k / L from the kernel between every two points' bins, O(L^2)."""
    codes = cost.codes[a:b]
    return (b - a) - float(cost.K[np.ix_(codes, codes)].sum()) / (b - a)


@pytest.fixture(scope="module")
def trace():
    rng = np.random.default_rng(5)
    return np.r_[rng.lognormal(1.5, 0.1, 150), rng.lognormal(1.9, 0.3, 90), rng.lognormal(1.5, 0.1, 60)]


def test_segment_costs_equal_the_direct_sum(trace):
    cost = KernelCost(trace)
    grid = np.array([0, 17, 150, 151, 240, 300])
    C = cost.matrix(grid, 1)
    for t in range(1, grid.size):
        for s in range(t):
            assert C[t, s] == pytest.approx(direct_cost(cost, grid[s], grid[t]), rel=1e-9, abs=1e-9)
            assert cost.cost(grid[s], grid[t]) == pytest.approx(C[t, s], rel=1e-9, abs=1e-9)


def test_split_costs_at_every_position_equal_the_direct_sums(trace):
    cost = KernelCost(trace)
    tau, total = cost.split_costs(20, 280, 100, 200)
    assert list(tau) == list(range(100, 201))
    expected = [direct_cost(cost, 20, t) + direct_cost(cost, t, 280) for t in tau]
    np.testing.assert_allclose(total, expected, rtol=1e-9)
    # and the best split is the true change, which refine finds from a wrong start
    assert abs(refine(cost, np.array([0, 130, 300]), 5)[1] - 150) <= 5


def test_bandwidth_is_the_median_distance():
    y = np.array([1.0, 2.0, 4.0, 8.0])  # distances 1, 3, 7, 2, 6, 4: median 3.5
    assert bandwidth(y) == 3.5
    assert bandwidth(np.r_[np.zeros(50), 1.0]) == 1.0  # most pairs equal: median of the rest
    assert bandwidth(np.zeros(10)) == 0.0
    big = np.random.default_rng(1).normal(0, 1, 5000)
    assert bandwidth(big) == bandwidth(big.copy())  # reproducible
    assert bandwidth(big) == pytest.approx(0.954, rel=0.03)  # sqrt(2) * 0.6745 for N(0, 1)


def test_candidates_cover_a_step_and_the_partition_finds_it(trace):
    from tracegen.analysis.changepoints import normal_scores

    cand = candidates(normal_scores(trace), 5)
    assert any(abs(c - 150) <= 2 for c in cand) and any(abs(c - 240) <= 2 for c in cand)
    grid = np.r_[0, cand, trace.size]
    bounds = optimal_partition(KernelCost(trace).matrix(grid, 5), grid, np.log(trace.size))
    assert bounds[0] == 0 and bounds[-1] == trace.size and len(bounds) >= 4


def test_merge_keeps_level_spread_and_shape_changes_and_drops_the_rest():
    rng = np.random.default_rng(3)
    base = rng.normal(100, 1, 300)
    assert ks_distance(np.sort(base[:150]), np.sort(base[150:])) < 0.2
    # no visible difference: merged
    assert list(merge_invisible(base, np.array([0, 150, 300]))) == [0, 300]
    # level +10 %: kept
    level = np.r_[base[:150], base[150:] * 1.1]
    assert list(merge_invisible(level, np.array([0, 150, 300]))) == [0, 150, 300]
    # same median, spread x 4: kept
    spread = np.r_[base[:150], 100 + (base[150:] - 100) * 4]
    assert list(merge_invisible(spread, np.array([0, 150, 300]))) == [0, 150, 300]
    # a 1 % shift of a tight distribution: KS near 1, kept
    tight = np.r_[rng.normal(100, 0.05, 150), rng.normal(101, 0.05, 150)]
    assert list(merge_invisible(tight, np.array([0, 150, 300]))) == [0, 150, 300]
