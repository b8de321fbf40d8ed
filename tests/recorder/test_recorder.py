"""tracegen.Recorder on the CPU: a small loop recorded into a run that reads back and reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

import tracegen
from tracegen.errors import ConfigError
from tracegen.trace.reader import read_run

ROOT = Path(__file__).resolve().parents[2]


def _loop(rec, gaps=(0.0, 2.0), n=30, warmup=3):
    for gap in gaps:
        with rec.variant(idle_ms=gap, warmup=warmup):
            for _ in range(n):
                with rec.iteration():
                    with rec.step("idle"):
                        time.sleep(gap / 1000)
                    with rec.step("preprocess"):
                        sum(range(2000))
                    with rec.step("infer"):
                        sum(range(20000))
                    with rec.step("postprocess"):
                        sorted(range(100))


def test_records_a_small_loop(tmp_path):
    rec = tracegen.Recorder(out=tmp_path, run_id="loop", model="toy", flush_every=7)
    t0 = time.perf_counter_ns()
    with rec:
        _loop(rec)
    wall = time.perf_counter_ns() - t0
    run = read_run(tmp_path / "loop")
    assert run.status == "complete" and run.manifest["origin"]["kind"] == "recorder"
    assert run.variants["idle_ms"].to_list() == [0.0, 2.0] and run.variants["pacing"].to_list() == ["none", "sleep"]
    assert run.variants["completed"].to_list() == [30, 30] and run.variants["warmup"].to_list() == [3, 3]
    s = run.steps
    assert s.height == 2 * 30 * 4
    assert s.filter(pl.col("warmup")).select("variant_id", "iteration").n_unique() == 6
    assert run.manifest["pipeline"]["steps"] == ["idle", "preprocess", "infer", "postprocess"]
    # host times are real: steps follow one another and fit in the loop's wall time
    s = s.sort("host_start_ns")
    ends = (s["host_start_ns"] + s["host_ns"]).to_list()
    assert all(b >= a for a, b in zip(ends, s["host_start_ns"].to_list()[1:]))
    assert 0 <= s["host_start_ns"].min() and max(ends) <= wall + (s["host_start_ns"].min())
    idle = s.filter((pl.col("step") == "idle") & (pl.col("variant_id") == 1))["host_ns"].median() / 1e6
    assert idle >= 2.0
    assert s["gpu_ns"].null_count() == s.height  # no stream given


def test_report_and_analyze_treat_it_like_a_run(tmp_path):
    from tracegen.analysis.findings import analyze
    from tracegen.report.site import build_site

    with tracegen.Recorder(out=tmp_path / "runs", run_id="r") as rec:
        _loop(rec, n=20)
    run = read_run(tmp_path / "runs" / "r")
    analyze(run)
    build_site([run.path], tmp_path / "site")
    html = (tmp_path / "site" / "runs" / "r" / "index.html").read_text()
    assert 'data-origin="recorder"' in html
    stats = json.loads((tmp_path / "site" / "runs" / "r" / "stats.json").read_text())["variants"]
    assert [v["n"] for v in stats] == [17, 17]


def test_misuse_is_a_clear_error(tmp_path):
    rec = tracegen.Recorder(out=tmp_path, run_id="bad")
    with pytest.raises(ConfigError, match="outside an iteration"):
        rec.step("infer")
    with rec.iteration():
        with pytest.raises(ConfigError, match="unknown step 'nms'"):
            rec.step("nms")
        with rec.step("infer"):
            with pytest.raises(ConfigError, match="do not nest"):
                rec.step("sync")
        with pytest.raises(ConfigError, match="not a CUDA stream|cannot time GPU work"):
            rec.step("infer", stream=object())
    with pytest.raises(ConfigError, match="unknown pacing"):
        rec.variant(pacing="nap")
    rec.close()
    assert read_run(tmp_path / "bad").status == "complete"


def test_a_killed_program_keeps_flushed_iterations(tmp_path):
    script = textwrap.dedent(f"""
        import os, time, tracegen
        rec = tracegen.Recorder(out={str(tmp_path)!r}, run_id="killed", flush_every=5)
        rec.variant(idle_ms=0)
        for i in range(1000):
            with rec.iteration():
                with rec.step("infer"):
                    sum(range(1000))
            if i == 23:
                os._exit(9)   # no close(), no atexit: like SIGKILL
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    run = read_run(tmp_path / "killed")
    assert run.status == "interrupted"
    assert run.steps["iteration"].max() == 19  # four flushes of five iterations


def test_program_ending_without_close_is_interrupted(tmp_path):
    script = textwrap.dedent(f"""
        import tracegen
        rec = tracegen.Recorder(out={str(tmp_path)!r}, run_id="noclose", flush_every=100)
        for i in range(12):
            with rec.iteration():
                with rec.step("infer"):
                    pass
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    run = read_run(tmp_path / "noclose")
    assert run.status == "interrupted" and "without Recorder.close()" in run.manifest["error"]
    assert run.steps.height == 12


class _FakeEvent:
    """Stands in for a CUDA event: 'completes' when queried after its stream's work."""

    clock = 0.0

    def __init__(self, enable_timing=True):
        self.t = None

    def record(self, stream):
        _FakeEvent.clock += 1.5
        self.t = _FakeEvent.clock

    def query(self):
        return True

    def synchronize(self):
        pass

    def elapsed_time(self, other):
        return other.t - self.t


def test_stream_events_are_read_late_and_stored(tmp_path, monkeypatch):
    """With a (stand-in) torch stream, each step gets its event time; pairs are reused."""
    import types

    import tracegen.recorder_events as ev

    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(Event=_FakeEvent))
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    Stream = type("Stream", (), {"__module__": "torch.cuda.streams"})
    stream = Stream()
    made = []
    real_make = ev.make_pair
    monkeypatch.setattr("tracegen.recorder.make_pair", lambda s: made.append(1) or real_make(s))
    with tracegen.Recorder(out=tmp_path, run_id="gpu") as rec:
        for _ in range(10):
            with rec.iteration():
                with rec.step("infer", stream=stream):
                    pass
                with rec.step("sync"):
                    pass
    run = read_run(tmp_path / "gpu")
    infer = run.steps.filter(pl.col("step") == "infer")
    assert infer["gpu_ns"].to_list() == [1_500_000] * 10
    assert run.steps.filter(pl.col("step") == "sync")["gpu_ns"].null_count() == 10
    assert len(made) <= 2  # one pair in flight, one being read: reused, not made per step
