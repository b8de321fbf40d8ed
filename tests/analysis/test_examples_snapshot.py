"""The analysis of every run under examples/ (and of the synthetic runs in ``snapshot.py``) is
what was recorded: the same findings, numbers and finding text. A deliberate change records the
snapshot again (``PYTHONPATH=. python -m tests.analysis.snapshot --write``) and says why."""

import json

import pytest

from tests.analysis import snapshot as S

pytest.importorskip("jinja2")


@pytest.fixture(scope="module")
def current():
    return S.analyses()


def test_every_example_run_is_in_the_snapshot(current):
    data, _ = current
    assert {d.name for d in S.example_dirs()} <= set(data)


def test_analysis_matches_the_snapshot(current):
    data, _ = current
    diff = S.differences(json.loads(S.SNAPSHOT.read_text(encoding="utf-8")), data)
    assert not diff, "\n".join(diff[:30])


def test_finding_text_matches_the_snapshot(current):
    _, pages = current
    diff = S.differences(json.loads(S.PAGES.read_text(encoding="utf-8")), pages)
    assert not diff, "\n".join(diff[:30])
