"""Change points on real CPU traces recorded with changes at known iterations, and the scores."""

from __future__ import annotations

import pytest

from tests.analysis.cp_real import FIXTURES, cover_single, covering, f_measure, held_out, load_recorded
from tracegen.analysis import detect_changepoints

RECORDED = load_recorded(FIXTURES / "cpu")


def test_f_measure_follows_the_tcpd_definition():
    # Worked examples of the TCPD paper's definition (0 is in every set; precision against the
    # union of the annotators, recall averaged over them).
    assert f_measure([[10, 20], [11, 20], [10], [0, 5]], [10, 20]) == pytest.approx(1.0)
    assert f_measure([[], [10], [50]], [10]) == pytest.approx(0.9090909090909091)
    assert f_measure([[], [10], [50]], []) == pytest.approx(0.8)
    assert f_measure([[100]], [103]) == 1.0 and f_measure([[100]], [106]) == 0.5


def test_covering_follows_the_tcpd_definition():
    assert covering([[10, 20], [10], [0, 5]], [10, 20], 45) == pytest.approx(0.7962962962962963)
    assert covering([[], [10], [40]], [10], 45) == pytest.approx(0.7954144620811286)
    assert covering([[], [10], [40]], [], 45) == pytest.approx(0.8189300411522634)
    assert cover_single([50], [50], 100) == 1.0


def test_recorded_traces_are_whole():
    assert len(RECORDED) >= 12
    for s in RECORDED:
        (truth,) = s.annotations
        assert len(truth) >= 3 and 0 < min(truth) and max(truth) < s.values.size
        assert (s.values > 0).all()
    dev, held = held_out(RECORDED)
    assert len(dev) + len(held) == len(RECORDED) and not {s.name for s in dev} & {s.name for s in held}


@pytest.mark.parametrize("series", RECORDED, ids=lambda s: s.name)
def test_every_recorded_trace_segments(series):
    # A change in the last chunks of a trace longer than 1024 points once put a grid point
    # past the end (IndexError); recorded trace mixed4 found it.
    cps = detect_changepoints(series.values)
    assert cps == sorted(set(cps)) and all(0 < c < series.values.size for c in cps)
