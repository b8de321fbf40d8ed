"""The timed loop alone: plain callables as steps, no backend, no files."""

import time

import numpy as np
import polars as pl
import pytest

from tracegen.backends.base import NullTimer, StepTimer
from tracegen.run.loop import Step, TimedLoop


def _collect():
    frames = []

    def flush(chunk, rows):
        if rows:
            frames.append(chunk.frame(rows, variant_id=7, warmup=2, t0_ns=0))

    return frames, flush


def test_every_iteration_is_handed_over_once_in_order():
    frames, flush = _collect()
    steps = [Step("idle", lambda: None, None), Step("infer", lambda: sum(range(50)), None)]
    loop = TimedLoop(steps, NullTimer, flush=flush, flush_every=4, flush_seconds=60)
    assert loop.run(10) == 10
    assert [f.height for f in frames] == [8, 8, 4]  # 4 + 4 + 2 iterations, two steps each
    rows = pl.concat(frames)
    assert rows["iteration"].unique(maintain_order=True).to_list() == list(range(10))
    assert rows.filter(pl.col("warmup"))["iteration"].unique().sort().to_list() == [0, 1]
    assert (rows["host_ns"] >= 0).all() and rows["variant_id"].unique().to_list() == [7]
    assert loop.work_ns.shape == (10,) and (loop.work_ns > 0).all()


def test_flushes_by_time_when_iterations_are_slow():
    frames, flush = _collect()
    steps = [Step("idle", lambda: time.sleep(0.004), None)]
    TimedLoop(steps, NullTimer, flush=flush, flush_every=1000, flush_seconds=0.01).run(20)
    assert sum(f.height for f in frames) == 20
    assert len(frames) >= 5  # about every 3 iterations instead of once at the end
    assert max(f.height for f in frames) <= 4


def test_a_stop_hands_over_what_was_measured_then_raises():
    frames, flush = _collect()
    count = {"n": 0}

    def work():
        count["n"] += 1
        if count["n"] == 13:
            raise KeyboardInterrupt

    loop = TimedLoop([Step("infer", work, None)], NullTimer, flush=flush, flush_every=5, flush_seconds=60)
    with pytest.raises(KeyboardInterrupt):
        loop.run(100)
    assert loop.done == 12
    assert pl.concat(frames)["iteration"].to_list() == list(range(12))


class _CountingTimer(StepTimer):
    """Reports as its device time how many times it was started (so rows say which timer ran)."""

    def __init__(self):
        self.starts = 0

    def start(self):
        self.starts += 1

    def stop(self):
        pass

    def elapsed_ns(self):
        return 1000 + self.starts


def test_device_times_are_read_one_iteration_late_from_alternating_timers():
    frames, flush = _collect()
    first = _CountingTimer()
    steps = [Step("h2d", lambda: None, first), Step("sync", lambda: None, None)]
    TimedLoop(steps, _CountingTimer, flush=flush, flush_every=3, flush_seconds=60).run(8)
    gpu = pl.concat(frames).filter(pl.col("step") == "h2d")["gpu_ns"].to_list()
    # Iteration i used timer i % 2, started (i // 2 + 1) times by then.
    assert gpu == [1000 + i // 2 + 1 for i in range(8)]
    assert np.all(pl.concat(frames).filter(pl.col("step") == "sync")["gpu_ns"].is_null().to_numpy())
