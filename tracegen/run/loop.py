"""The timed loop of one variant: read the clock around each step, store integers.

Nothing here allocates per iteration, opens files or knows about variants: the loop takes the
steps to run, a factory of device timers and a ``flush`` callback, and can be tested alone with
plain Python callables. Rows live in a preallocated chunk of at most ``flush_every`` iterations;
the chunk is handed to ``flush`` every ``flush_every`` iterations or ``flush_seconds``, whichever
comes first, and then reused, so memory does not grow with the iteration count and a killed
process loses at most one chunk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import polars as pl

from tracegen.backends.base import StepTimer
from tracegen.trace import schema as S

_STEP_CODE = {name: i for i, name in enumerate(S.STEP_ORDER)}


@dataclass
class Step:
    name: str
    work: Callable[[], Any]
    timer: StepTimer | None  # device timer around the work, if it runs on the device


class Chunk:
    """Rows of up to ``capacity`` iterations: host timestamps, device times, cores."""

    def __init__(self, steps: list[Step], capacity: int):
        n = len(steps)
        self.codes = np.array([_STEP_CODE[s.name] for s in steps], dtype=np.int8)
        self.marks = np.zeros((capacity, 2 * n), dtype=np.int64)  # start, end per step
        self.gpu = np.full((capacity, n), -1, dtype=np.int64)
        self.core = np.full((capacity, n), -1, dtype=np.int16)
        self.iteration = np.zeros(capacity, dtype=np.int32)

    @staticmethod
    def bytes_per_iteration(n_steps: int) -> int:
        return 2 * n_steps * 8 + n_steps * 8 + n_steps * 2 + 4

    def reset(self, rows: int) -> None:
        self.gpu[:rows] = -1
        self.core[:rows] = -1

    def work_ns(self, rows: int) -> np.ndarray:
        """Per-iteration time of every step but the idle gap, for the progress line."""
        n = len(self.codes)
        m = self.marks[:rows].reshape(rows, n, 2)
        keep = self.codes != _STEP_CODE["idle"]
        return (m[:, keep, 1] - m[:, keep, 0]).sum(axis=1)

    def frame(self, rows: int, variant_id: int, warmup: int, t0_ns: int) -> pl.DataFrame:
        """Long-format rows of the first ``rows`` iterations (schema: trace.schema.STEPS_SCHEMA)."""
        n = len(self.codes)
        marks = self.marks[:rows].reshape(rows, n, 2)
        iteration = np.repeat(self.iteration[:rows], n)
        names = pl.Series(list(S.STEP_ORDER), dtype=S.STEP_DTYPE)
        return pl.DataFrame({
            "variant_id": np.full(rows * n, variant_id, dtype=np.int32),
            "iteration": iteration,
            "warmup": iteration < warmup,
            "step": names.gather(np.tile(self.codes, rows).astype(np.uint32)),
            "host_start_ns": marks[:, :, 0].ravel() - t0_ns,
            "host_ns": (marks[:, :, 1] - marks[:, :, 0]).ravel(),
            # Copies: polars may share numpy memory, and the chunk is reused after the flush.
            "gpu_ns": self.gpu[:rows].ravel().copy(),
            "cpu_core": self.core[:rows].ravel().copy(),
        }).with_columns(  # -1 marks "none" in the arrays
            pl.when(pl.col("gpu_ns") >= 0).then(pl.col("gpu_ns")).alias("gpu_ns"),
            pl.when(pl.col("cpu_core") >= 0).then(pl.col("cpu_core")).alias("cpu_core"),
        )


class _NoRanges:
    def push_variant(self, name): pass
    def push_iteration(self, i): pass
    def push_step(self, name): pass
    def pop(self): pass


def _no_core() -> int:
    return -1


class TimedLoop:
    """Runs ``total`` iterations of ``steps``. ``flush(chunk, rows)`` receives every filled chunk
    (and what is left when the loop stops, also on Ctrl-C or an error, before re-raising);
    ``done`` says how many iterations completed. ``progress(done, chunk_row)`` is called about
    100 times per loop (``chunk_row`` is -1 when the chunk was just handed over)."""

    def __init__(self, steps: list[Step], new_timer: Callable[[], StepTimer], *,
                 flush: Callable[[Chunk, int], None], flush_every: int = 500, flush_seconds: float = 2.0,
                 ranges=None, current_core: Callable[[], int] | None = None,
                 progress: Callable[[int, int], None] | None = None):
        self.steps = steps
        self.new_timer = new_timer
        self.flush = flush
        self.flush_every = max(1, int(flush_every))
        self.flush_ns = int(flush_seconds * 1e9)
        self.ranges = ranges or _NoRanges()
        self.current_core = current_core or _no_core
        self.progress = progress
        self.done = 0
        self.work_ns: np.ndarray | None = None  # per measured-or-not iteration, filled at each flush
        self.chunk: Chunk | None = None

    def recent_work_s(self, row: int, n: int) -> float | None:
        """Mean seconds per iteration from the end of the idle gap to the end of the last step,
        over the last ``n`` iterations still in the chunk up to ``row`` (None if there are none)."""
        if self.chunk is None or row < 0:
            return None
        marks = self.chunk.marks[max(0, row - n + 1):row + 1]
        return float((marks[:, -1] - marks[:, 1]).mean()) / 1e9

    def run(self, total: int) -> int:
        steps = self.steps
        chunk = self.chunk = Chunk(steps, max(1, min(total, self.flush_every)))
        self.work_ns = np.zeros(total, dtype=np.int64)
        marks, gpu, core, iteration = chunk.marks, chunk.gpu, chunk.core, chunk.iteration
        now = time.perf_counter_ns
        getcpu = self.current_core
        ranges = self.ranges
        # Two timers per device step, alternating by iteration: the previous iteration's times are
        # read just before this iteration's sync, while the GPU still works, instead of after the
        # sync, when every microsecond spent reading would add to the iteration's wall time.
        pairs = {k: (s.timer, self.new_timer()) for k, s in enumerate(steps) if s.timer is not None}
        timed = list(pairs.items())
        plan = [(2 * k, s.name, s.work, pairs.get(k)) for k, s in enumerate(steps)]
        pending = -1  # chunk row whose device times are still to be read
        pending_parity = 0

        def read_device_times(row: int, parity: int) -> None:
            for k, pair in timed:
                ns = pair[parity].elapsed_ns()
                gpu[row, k] = -1 if ns is None else ns

        capacity = len(iteration)
        flush_every, flush_ns = min(self.flush_every, capacity), self.flush_ns
        stride = max(1, total // 100)  # report progress about 100 times per loop
        flushed = self.done = 0
        last_flush = now()

        def hand_over(upto: int) -> None:
            nonlocal flushed, last_flush
            rows = upto - flushed
            try:
                if rows > 0:
                    self.work_ns[flushed:upto] = chunk.work_ns(rows)
                    self.flush(chunk, rows)
            finally:  # also when a signal held during the write is raised at its end
                flushed = upto
                chunk.reset(max(rows, 0))
                last_flush = now()

        try:
            for it in range(total):
                ranges.push_iteration(it)
                parity = it & 1
                row = it - flushed
                for col, name, work, pair in plan:
                    if pending >= 0 and name == "sync":
                        read_device_times(pending, pending_parity)  # synchronised one iteration ago
                        pending = -1
                    ranges.push_step(name)
                    a = now()
                    if pair is None:
                        work()
                    else:
                        timer = pair[parity]
                        timer.start()
                        work()
                        timer.stop()
                    b = now()
                    ranges.pop()
                    marks[row, col] = a
                    marks[row, col + 1] = b
                    core[row, col >> 1] = getcpu()
                if timed:
                    pending, pending_parity = row, parity
                ranges.pop()
                iteration[row] = it
                self.done = done = it + 1
                if done - flushed >= flush_every or b - last_flush >= flush_ns:
                    if pending >= 0:
                        read_device_times(pending, pending_parity)
                        pending = -1
                    hand_over(done)
                if self.progress is not None and done % stride == 0:
                    self.progress(done, done - flushed - 1)  # the chunk row of this iteration, -1 if flushed
        except BaseException:
            if pending >= 0:
                try:
                    read_device_times(pending, pending_parity)
                except Exception:  # noqa: BLE001 - a failed device keeps its rows, without GPU times
                    pass
            hand_over(self.done)
            raise
        if pending >= 0:
            read_device_times(pending, pending_parity)
        hand_over(self.done)
        return self.done
