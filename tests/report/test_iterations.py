"""The report's fast per-iteration frame equals the analysis' general one, on every layout."""

from __future__ import annotations

import json
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


def _streamed(run_dir: Path, rows: int):
    from tracegen.report import iterations as I
    from tracegen.trace import reader

    streamed = reader.read_run_streamed(run_dir, rows=rows)
    assert streamed is not None
    run, batches = streamed
    return run, I._from_batches(batches, S.latency_basis(run.manifest))


@pytest.mark.parametrize("rows", [1, 5, 7, 13, 700])
def test_batches_give_the_same_frame_wherever_they_end(batch_run, rows):
    # batches that end inside an iteration (7 steps), on its end, or hold many
    from tracegen.report import iterations as I

    steps = read_run(batch_run).steps.head(7 * 130)
    batches = (steps.slice(o, rows) for o in range(0, steps.height, rows))
    assert_frame_equal(I._from_batches(batches, "host"), iterations(steps))


@pytest.mark.parametrize("rows", [23, 1000, 1 << 20])
def test_streamed_steps_give_the_same_frame(idle_run, batch_run, rows):
    for run_dir in (idle_run, batch_run, *(EXAMPLES[:2] if rows >= 1000 else ())):  # ~5 ms a batch
        whole = read_run(run_dir)
        run, frame = _streamed(run_dir, rows)
        assert frame is not None
        assert_frame_equal(frame, iterations(whole.steps, S.latency_basis(whole.manifest)))
        assert run.steps.height == 0
        assert_frame_equal(run.variants, whole.variants)
        assert_frame_equal(run.telemetry, whole.telemetry)
        assert run.manifest == whole.manifest


def test_read_iterations_streams_and_falls_back(idle_run, tmp_path, monkeypatch):
    import shutil

    from tracegen.errors import TraceError
    from tracegen.report import iterations as I
    from tracegen.trace import reader

    run, frame = I.read_iterations(idle_run)
    whole = read_run(idle_run)
    assert run.steps.height == 0
    assert_frame_equal(frame, iterations(whole.steps))
    # a layout the reshape does not take (shuffled rows) streams, then falls back to the whole table
    shuffled = tmp_path / "shuffled"
    shutil.copytree(idle_run, shuffled)
    whole.steps.sample(fraction=1.0, shuffle=True, seed=3).write_parquet(shuffled / "steps.parquet")
    assert _streamed(shuffled, 100)[1] is None
    assert_frame_equal(I.read_iterations(shuffled)[1], S.iterations(read_run(shuffled).steps))
    # a running manifest (status settled from the steps) is read whole
    running = tmp_path / "running"
    shutil.copytree(idle_run, running)
    m = json.loads((running / "manifest.json").read_text())
    (running / "manifest.json").write_text(json.dumps({**m, "status": "running"}))
    assert reader.read_run_streamed(running) is None
    assert I.read_iterations(running)[0].status == read_run(running).status
    # a damaged batch: the whole read words the error, with its counts
    bad = tmp_path / "bad"
    shutil.copytree(idle_run, bad)
    whole.steps.with_columns(pl.when(pl.col("iteration") == 7).then(-1).otherwise(pl.col("host_ns")).alias("host_ns")) \
        .write_parquet(bad / "steps.parquet")
    with pytest.raises(TraceError) as streamed_error:
        I.read_iterations(bad)
    with pytest.raises(TraceError) as whole_error:
        read_run(bad)
    assert str(streamed_error.value) == str(whole_error.value)
