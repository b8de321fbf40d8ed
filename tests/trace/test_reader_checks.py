"""The reader's truthfulness: negative durations refused, live runs read as running and dead ones
as interrupted (with no variant left `running`), and a merge never shows a half-moved table."""

import os
import socket
import subprocess
import sys
import threading
import time

import polars as pl
import pytest

from tracegen.errors import TraceError
from tracegen.trace import schema as S
from tracegen.trace.liveness import HEARTBEAT, Heartbeat, process_facts, writer_alive
from tracegen.trace.reader import measured_iterations, read_run, require_measurements, run_state
from tracegen.trace.writer import RunWriter, create_run_dir

from tests.trace.test_files import _steps, _variants


def _run_dir(tmp_path, manifest_extra=None, steps=None, status="running", finish=False):
    run_dir = create_run_dir(tmp_path / "runs" / "r")
    writer = RunWriter(run_dir, {"schema_version": S.SCHEMA_VERSION, "run_id": "r", "status": status,
                                 **(manifest_extra or {})})
    variants = _variants().with_columns(pl.lit("running").alias("status"), pl.lit(0).cast(pl.Int32).alias("completed"))
    writer.write_variants(variants)
    writer.append_steps(steps if steps is not None else _steps(0, range(6)))
    if finish:
        writer.finish("complete")
    return run_dir


@pytest.mark.parametrize("which", ["some", "all"])
def test_negative_durations_are_a_clear_error(tmp_path, which):
    steps = _steps(0, range(6))
    steps = steps.with_columns(
        (pl.when(pl.col("iteration") == 3).then(-2_470_000).otherwise(pl.col("host_ns")) if which == "some"
         else -pl.col("host_ns")).alias("host_ns"))
    run_dir = _run_dir(tmp_path, steps=steps, finish=True)
    with pytest.raises(TraceError, match="negative host_ns.*re-run"):
        read_run(run_dir)


def test_negative_gpu_time_is_refused_too(tmp_path):
    steps = _steps(0, range(4)).with_columns(pl.lit(-5, dtype=pl.Int64).alias("gpu_ns"))
    with pytest.raises(TraceError, match="negative gpu_ns"):
        read_run(_run_dir(tmp_path, steps=steps, finish=True))


def test_a_live_writer_reads_as_running(tmp_path):
    run_dir = _run_dir(tmp_path, {"process": process_facts()})
    run = read_run(run_dir)
    assert run.status == "running"
    assert run_state(run)["complete"] is False and "still running" in run_state(run)["note"]


def test_a_dead_writer_reads_as_interrupted_with_no_variant_left_running(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    facts = {**process_facts(), "pid": child.pid, "create_time": 1.0}
    run = read_run(_run_dir(tmp_path, {"process": facts}))
    assert run.status == "interrupted"
    assert f"pid {child.pid}" in run.manifest["error"]
    assert run.variants["status"].to_list() == ["interrupted"]
    assert run.variants["completed"].to_list() == [6]  # what the steps hold


def test_a_reused_pid_is_not_the_writer(tmp_path):
    facts = {**process_facts(), "create_time": process_facts()["create_time"] - 3600}
    assert writer_alive(tmp_path, facts and {"process": facts}) is False


def test_other_hosts_are_judged_by_the_heartbeat(tmp_path):
    manifest = {"process": {"pid": 1, "hostname": socket.gethostname() + "-elsewhere"}}
    assert writer_alive(tmp_path, manifest) is False  # no heartbeat file
    beat = Heartbeat(tmp_path, interval=0.05).start()
    try:
        assert writer_alive(tmp_path, manifest) is True
        old = time.time() - 3600
        beat.stop(remove=False)
        os.utime(tmp_path / HEARTBEAT, (old, old))
        assert writer_alive(tmp_path, manifest) is False
    finally:
        beat.stop()
    assert not (tmp_path / HEARTBEAT).exists()


def test_reading_during_the_final_merge_never_fails(tmp_path):
    """Readers in a loop while a writer with many parts merges them: every read sees all rows."""
    for attempt in range(3):
        run_dir = create_run_dir(tmp_path / f"m{attempt}")
        writer = RunWriter(run_dir, {"schema_version": S.SCHEMA_VERSION, "run_id": "m", "process": process_facts()})
        writer.write_variants(_variants())
        for i in range(60):
            writer.append_steps(_steps(0, range(i * 2, i * 2 + 2)))
        errors, counts = [], []
        stop = threading.Event()

        def read():
            while not stop.is_set():
                try:
                    counts.append(read_run(run_dir).steps.height)
                except Exception as exc:  # noqa: BLE001 - the test reports it
                    errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(2)]
        for t in readers:
            t.start()
        time.sleep(0.05)
        writer.finish("complete")
        time.sleep(0.05)
        stop.set()
        for t in readers:
            t.join()
        assert not errors, errors[:1]
        assert counts and set(counts) == {60 * 2 * 4}


def test_zero_measured_iterations_is_an_error(tmp_path):
    run = read_run(_run_dir(tmp_path, steps=_steps(0, range(2)), finish=True))  # both are warm-up
    with pytest.raises(TraceError, match="no measured iterations"):
        require_measurements(run)


def test_measured_iterations_from_the_streamed_frame_equal_those_from_the_steps(tmp_path):
    from tracegen.report.iterations import read_iterations

    d = _run_dir(tmp_path, steps=_steps(0, range(6)), finish=True)
    run = read_run(d)
    streamed, iters = read_iterations(d)
    assert streamed.steps.height == 0  # analyze and report never hold the steps whole
    assert measured_iterations(streamed, iters) == measured_iterations(run) > 0
    assert run_state(streamed, iters) == run_state(run)
    warm_only = read_iterations(_run_dir(tmp_path / "w", steps=_steps(0, range(2)), finish=True))
    with pytest.raises(TraceError, match=r"no measured iterations \(2 warm-up"):
        require_measurements(*warm_only)
