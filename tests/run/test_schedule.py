"""--schedule: parsing, and the change points it promises."""

import pytest

from tracegen.errors import ConfigError
from tracegen.run.schedule import Segment, parse_schedule


def test_the_issue_example():
    s = parse_schedule("0:200,20:200,0:200")
    assert s.segments == (Segment(0, 200), Segment(20, 200), Segment(0, 200))
    assert s.iterations == 600 and s.max_gap_ms == 20
    assert s.starts(warmup=20) == [20, 220, 420]
    assert s.change_points(warmup=20, pacing="sleep") == [220, 420]
    assert parse_schedule(s.spec) == s


def test_equal_neighbours_are_one_regime_and_pacing_changes_count():
    s = parse_schedule("0:10,0:10,5:10,5:10:spin")
    assert s.change_points(pacing="sleep") == [20, 30]
    assert s.change_points(pacing="spin") == [20]  # the last segment only restates the pacing
    d = s.describe(warmup=3, pacing="sleep")
    assert [seg["pacing"] for seg in d["segments"]] == ["none", "none", "sleep", "spin"]
    assert d["change_points"] == [23, 33] and d["spec"] == "0:10,0:10,5:10,5:10:spin"


@pytest.mark.parametrize("text, words", [
    ("", "empty"), ("0:10,0:10", "no gap"), ("20", "GAP_MS:ITERATIONS"), ("a:10", "not a number"),
    ("20:x", "whole number"), ("20:0", "at least 1"), ("-1:10", "between 0"), ("20:10:nap", "unknown pacing"),
])
def test_bad_schedules_name_the_problem(text, words):
    with pytest.raises(ConfigError, match=words) as err:
        parse_schedule(text)
    assert "--schedule" in str(err.value)
