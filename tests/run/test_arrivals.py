"""Arrival patterns: the gaps they plan and the waits they perform."""

import time

import numpy as np
import pytest
from scipy import stats

from tracegen.errors import ConfigError
from tracegen.run.arrivals import (Arrival, FramePacer, GapPacer, make_arrival_pacer, parse_arrival, parse_fps,
                                   plan_gaps)
from tracegen.run.schedule import parse_schedule

from tests.run.timing import needs_timing


@pytest.mark.parametrize("text", ["fixed", "poisson", "burst:4"])
def test_arrival_spec_round_trips(text):
    assert parse_arrival(text).spec == text
    assert parse_arrival(parse_arrival(text).spec) == parse_arrival(text)


@pytest.mark.parametrize("text, words", [
    ("uniform", "unknown arrival pattern"), ("burst", "burst length"), ("burst:0", "at least 1"),
    ("poisson:3", "takes no argument"), ("fps", "--fps 30"),
])
def test_bad_arrivals_name_the_fix(text, words):
    with pytest.raises(ConfigError, match=words):
        parse_arrival(text)


def test_fps_parsing():
    assert parse_fps("30, 60,30") == (30.0, 60.0)
    for bad in ("0", "fast", ""):
        with pytest.raises(ConfigError, match="--fps"):
            parse_fps(bad)


def test_poisson_gaps_are_exponential_with_the_mean():
    gaps = Arrival("poisson").gaps_ms(20.0, 2000, np.random.default_rng(3))
    assert stats.kstest(gaps, "expon", args=(0, 20.0)).pvalue > 0.01
    assert abs(gaps.mean() - 20.0) < 2.0
    # The same test rejects fixed gaps: it can fail.
    fixed = Arrival("fixed").gaps_ms(20.0, 2000)
    assert stats.kstest(fixed, "expon", args=(0, 20.0)).pvalue < 1e-6


def test_burst_waits_once_per_burst():
    gaps = Arrival("burst", 4).gaps_ms(10.0, 12)
    assert gaps.tolist() == [10, 0, 0, 0] * 3
    # The phase carries over segments of a schedule.
    assert Arrival("burst", 4).gaps_ms(10.0, 4, first_index=2).tolist() == [0, 0, 10, 0]


def test_plan_follows_the_schedule_after_warmup():
    sched = parse_schedule("0:5,20:3:spin,0:2")
    gaps, pacings = plan_gaps(Arrival(), 20.0, "sleep", warmup=2, iterations=sched.iterations, schedule=sched)
    assert gaps.tolist() == [0, 0] + [0] * 5 + [20] * 3 + [0] * 2
    assert pacings == ["sleep"] * 7 + ["spin"] * 3 + ["sleep"] * 2
    assert sched.change_points(warmup=2, pacing="sleep") == [7, 10]


def test_seeded_poisson_plans_repeat():
    a, _ = plan_gaps(Arrival("poisson"), 5.0, "sleep", warmup=0, iterations=50, seed=7)
    b, _ = plan_gaps(Arrival("poisson"), 5.0, "sleep", warmup=0, iterations=50, seed=7)
    c, _ = plan_gaps(Arrival("poisson"), 5.0, "sleep", warmup=0, iterations=50, seed=8)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_gap_pacer_waits_the_planned_gaps_with_the_planned_wait():
    calls = []
    pacer = GapPacer([0.0, 0.01, 0.02], [lambda s: calls.append(("a", s)), lambda s: calls.append(("b", s)),
                                         lambda s: calls.append(("c", s))])
    for _ in range(4):
        pacer()
    assert calls == [("b", 0.01), ("c", 0.02), ("c", 0.02)]  # no wait for 0, last gap repeats


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_frame_pacer_waits_what_remains_of_the_interval():
    clock, waited = _Clock(), []

    def wait(s):
        waited.append(round(s, 6))
        clock.t += s

    pacer = FramePacer(0.010, wait, clock)
    for work in (0.003, 0.004, 0.012, 0.001, 0.025, 0.002, 0.0):
        pacer()
        clock.t += work
    # frame 0 at once; then 10 ms minus the work; a late frame (12 ms of work) starts at once and
    # the next one catches up on the grid; 25 ms of work (over a whole interval) moves the grid.
    assert waited == [0.007, 0.006, 0.007, 0.008]
    assert pacer.late == 2


def test_frame_pacer_holds_the_frame_interval_in_real_time():
    needs_timing()
    pacer = FramePacer(0.020, time.sleep)
    starts = []
    for i in range(30):
        pacer()
        starts.append(time.perf_counter())
        time.sleep(0.002 + 0.006 * (i % 2))  # work of 2 or 8 ms: the gap makes up the rest
    intervals = np.diff(starts) * 1000
    # Deadlines sit on the grid, so sleep's overshoot does not add up (shared machines: loose bounds).
    assert abs(np.median(intervals) - 20.0) < 1.0
    assert abs(np.mean(intervals) - 20.0) < 1.5


def test_make_pacer_chooses_by_pattern():
    seen = []
    wait_for = lambda p: (lambda s: seen.append((p, round(s, 6))))  # noqa: E731
    make_arrival_pacer(Arrival(), 0.0, "none", wait_for, warmup=1, iterations=2)()
    assert seen == []
    pacer = make_arrival_pacer(Arrival("burst", 2), 5.0, "spin", wait_for, warmup=1, iterations=3)
    for _ in range(4):
        pacer()
    assert seen == [("spin", 0.005), ("spin", 0.005)]
    assert isinstance(make_arrival_pacer(Arrival("fps"), 33.3, "sleep", wait_for, warmup=0, iterations=1), FramePacer)
    with pytest.raises(ConfigError, match="frame-rate"):
        make_arrival_pacer(Arrival("fps"), 33.3, "sleep", wait_for, warmup=0, iterations=4,
                           schedule=parse_schedule("0:2,10:2"))
