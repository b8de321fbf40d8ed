"""The report's fast per-iteration frame equals the analysis' general one, on every layout."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tracegen.analysis import stats as S
from tracegen.report.iterations import _regular, iterations
from tracegen.trace.reader import read_run

EXAMPLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "examples").iterdir() if (p / "manifest.json").is_file())


@pytest.mark.parametrize("run_dir", EXAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("basis", ["host", "gpu"])
def test_real_runs_take_the_fast_path_and_match(run_dir, basis):
    steps = read_run(run_dir).steps
    fast = _regular(steps, basis)
    assert fast is not None
    assert_frame_equal(fast, S.iterations(steps, basis))


def test_other_layouts_fall_back_to_the_general_frame(idle_run, batch_run):
    steps = pl.concat([read_run(batch_run).steps, read_run(idle_run).steps.with_columns(pl.col("variant_id") + 10)])
    assert_frame_equal(iterations(steps), S.iterations(steps))
    shuffled = steps.sample(fraction=1.0, shuffle=True, seed=1)
    assert _regular(shuffled) is None
    assert_frame_equal(iterations(shuffled), S.iterations(shuffled))
    gapped = steps.filter(~((pl.col("iteration") == 3) & (pl.col("step") == "h2d")))  # one step missing
    assert _regular(gapped) is None
    assert_frame_equal(iterations(gapped), S.iterations(gapped))
    assert iterations(steps.clear()).height == 0
