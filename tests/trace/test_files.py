"""Schema round trip, incremental writing, and the reader's refusals."""

import json

import polars as pl
import pytest

from tracegen.errors import ConfigError, TraceError
from tracegen.trace import schema as S
from tracegen.trace.reader import find_runs, read_run
from tracegen.trace.writer import RunWriter, create_run_dir, merge_parts


def _steps(variant_id: int, iterations: range) -> pl.DataFrame:
    rows = []
    for it in iterations:
        for k, step in enumerate(("idle", "preprocess", "infer", "postprocess")):
            rows.append(dict(variant_id=variant_id, iteration=it, warmup=it < 2, step=step,
                             host_start_ns=it * 1000 + k * 100, host_ns=50 + k, gpu_ns=None, cpu_core=k % 2))
    return pl.DataFrame(rows, schema=S.STEPS_SCHEMA)


def _variants() -> pl.DataFrame:
    return pl.DataFrame([dict(variant_id=0, name="idle b1 no-gap", scenario="idle", batch=1, idle_ms=0.0,
                              pacing="none", launch="eager", sync_mode="auto", pipeline="full", warmup=2,
                              iterations=8, completed=10, status="complete")], schema=S.VARIANTS_SCHEMA)


def _write(tmp_path, finish=True):
    run_dir = create_run_dir(tmp_path / "runs" / "r1")
    writer = RunWriter(run_dir, {"schema_version": S.SCHEMA_VERSION, "run_id": "r1"})
    writer.write_variants(_variants())
    writer.append_steps(_steps(0, range(0, 4)))
    writer.append_steps(_steps(0, range(4, 10)))
    writer.append_telemetry([{"t_ns": 5, "source": "cpu", "cpu_freq_mhz": 2000.0, "variant_id": 0}])
    if finish:
        writer.finish("complete")
    return run_dir


def test_round_trip_keeps_every_row_and_type(tmp_path):
    run = read_run(_write(tmp_path))
    assert run.status == "complete"
    assert run.steps.schema == pl.Schema(S.STEPS_SCHEMA)
    assert run.steps.equals(pl.concat([_steps(0, range(0, 4)), _steps(0, range(4, 10))]))
    assert run.variants.equals(_variants())
    assert run.telemetry["cpu_freq_mhz"].to_list() == [2000.0]
    assert not (run.path / S.STEPS_PARTS).exists()


def test_unfinished_run_is_readable_from_its_parts(tmp_path):
    run_dir = _write(tmp_path, finish=False)  # as if killed with SIGKILL
    run = read_run(run_dir)
    assert run.steps.height == 40
    assert run.status == "interrupted"
    # The reader reports, it does not repair: the files on disk are untouched.
    assert json.loads((run_dir / S.MANIFEST).read_text())["status"] == "running"


def test_merge_is_idempotent(tmp_path):
    run_dir = _write(tmp_path)
    merge_parts(run_dir, S.STEPS_PARTS, S.STEPS, S.STEPS_SCHEMA)
    assert read_run(run_dir).steps.height == 40


def test_existing_run_directory_is_never_reused(tmp_path):
    run_dir = _write(tmp_path)
    before = (run_dir / S.STEPS).read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        create_run_dir(run_dir)
    assert (run_dir / S.STEPS).read_bytes() == before


def test_output_path_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        create_run_dir(tmp_path / "afile" / "r1")


def test_truncated_parquet_is_a_clear_error(tmp_path):
    run_dir = _write(tmp_path)
    data = (run_dir / S.STEPS).read_bytes()
    (run_dir / S.STEPS).write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="unreadable or truncated"):
        read_run(run_dir)


def test_garbage_parquet_is_a_clear_error(tmp_path):
    run_dir = _write(tmp_path)
    (run_dir / S.VARIANTS).write_bytes(b"not parquet at all")
    with pytest.raises(TraceError, match="variants.parquet"):
        read_run(run_dir)


def test_missing_column_is_a_clear_error(tmp_path):
    run_dir = _write(tmp_path)
    pl.read_parquet(run_dir / S.STEPS).drop("gpu_ns").write_parquet(run_dir / S.STEPS)
    with pytest.raises(TraceError, match="lacks columns gpu_ns"):
        read_run(run_dir)


def test_newer_schema_is_refused(tmp_path):
    run_dir = _write(tmp_path)
    manifest = json.loads((run_dir / S.MANIFEST).read_text())
    manifest["schema_version"] = S.SCHEMA_VERSION + 1
    (run_dir / S.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(TraceError, match="newer than the 1 this tracegen reads.*upgrade"):
        read_run(run_dir)


def test_broken_manifest(tmp_path):
    run_dir = _write(tmp_path)
    (run_dir / S.MANIFEST).write_text("{ not json")
    with pytest.raises(TraceError, match="not valid JSON"):
        read_run(run_dir)


def test_find_runs(tmp_path):
    run_dir = _write(tmp_path)
    assert find_runs([tmp_path / "runs"]) == [run_dir]
    assert find_runs([run_dir]) == [run_dir]
    with pytest.raises(TraceError, match="does not exist"):
        find_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(TraceError, match="holds no tracegen runs"):
        find_runs([tmp_path / "empty"])
