"""Per-iteration frame of a run's steps, fast for the layout the writer produces.

``analysis.stats.iterations`` is general (group-by plus pivot) and takes seconds on 10^6
iterations. Runs written by tracegen (runner, recorder, importers) store every iteration as one
block of consecutive rows with the same steps in the same order, sorted by (variant, iteration).
For that layout the pivot is a reshape of each column into (iterations, steps), which numpy does
without hashing: 0.9 s instead of 6.8 s for 7 x 10^6 step rows on 2 cores. Anything else falls
back to the general function, so the result is the same frame either way (a test compares them).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl

from tracegen.analysis import stats as S
from tracegen.trace.reader import Run, StepsNeedWholeRead, read_run, read_run_streamed
from tracegen.trace.schema import LATENCY_STEPS, STEP_ORDER


def iterations(steps: pl.DataFrame, basis: str = "host") -> pl.DataFrame:
    """The same frame as ``analysis.stats.iterations(steps, basis)``."""
    fast = _regular(steps, basis)
    return fast if fast is not None else S.iterations(steps, basis)


def read_iterations(run_dir: Path) -> tuple[Run, pl.DataFrame]:
    """The run (its ``steps`` frame empty) and its per-iteration frame. The steps table is
    streamed in batches (``reader.read_run_streamed``: never whole in memory; 7 x 10^6 rows are
    about 270 MB) when the reader allows it and the layout is regular; otherwise it is read
    whole (``read_run``, which also words any error) and dropped once the frame is built."""
    streamed = read_run_streamed(run_dir)
    if streamed is not None:
        run, batches = streamed
        try:
            frame = _from_batches(batches, S.latency_basis(run.manifest))
        except StepsNeedWholeRead:
            frame = None
        if frame is not None:
            return run, frame
    run = read_run(run_dir)
    frame = iterations(run.steps, S.latency_basis(run.manifest))
    return dataclasses.replace(run, steps=run.steps.clear()), frame


def _from_batches(batches, basis: str) -> pl.DataFrame | None:
    """``_regular`` of the concatenated batches, one batch at a time (an iteration's rows may
    span two batches: the last iteration of each waits for the rows of the next that continue
    it, and goes as a part of its own, so no batch is copied). None when some part is not
    regular, the parts differ in their steps, or the iterations are out of order."""
    parts: list[pl.DataFrame] = []
    last = None  # key of the last iteration taken

    def take(rows: pl.DataFrame, key: np.ndarray) -> bool:
        nonlocal last
        part = _reshape(rows, key, basis)
        if part is None or (parts and part.schema != parts[0].schema) or (last is not None and key[0] <= last):
            return False
        parts.append(part)
        last = key[-1]
        return True

    carry, carry_key = None, None  # the rows of the last iteration so far: it may continue
    for batch in batches:
        key = _keys(batch)
        if key is None:
            return None
        if carry is not None:
            other = np.flatnonzero(key != carry_key[0])
            same = int(other[0]) if other.size else key.size  # leading rows of the carried iteration
            carry, carry_key = pl.concat([carry, batch[:same]]), np.concatenate([carry_key, key[:same]])
            if same == key.size:
                continue
            if not take(carry, carry_key):
                return None
            batch, key = batch[same:], key[same:]
        differs = np.flatnonzero(key != key[-1])
        cut = int(differs[-1]) + 1 if differs.size else 0
        if cut and not take(batch[:cut], key[:cut]):
            return None
        carry, carry_key = batch[cut:], key[cut:]
    if carry is not None and carry.height and not take(carry, carry_key):
        return None
    return pl.concat(parts, rechunk=False) if parts else None


def _keys(steps: pl.DataFrame) -> np.ndarray | None:
    """(variant, iteration) of every row as one int64, or None when either has nulls."""
    if steps.height == 0 or steps["variant_id"].null_count() or steps["iteration"].null_count():
        return None
    vid = steps["variant_id"].to_numpy()
    it = steps["iteration"].to_numpy()
    return (vid.astype(np.int64) << 32) | (it.astype(np.int64) & 0xFFFFFFFF)


def _regular(steps: pl.DataFrame, basis: str = "host") -> pl.DataFrame | None:
    key = _keys(steps)
    return _reshape(steps, key, basis) if key is not None else None


def _reshape(steps: pl.DataFrame, key: np.ndarray, basis: str = "host") -> pl.DataFrame | None:
    n_rows = steps.height
    if steps["step"].null_count():
        return None
    first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    k = n_rows // first.size
    if k * first.size != n_rows or np.any(np.diff(first) != k) or np.any(np.diff(key[first]) <= 0):
        return None  # iterations of unequal length, interleaved or unsorted
    step = steps["step"]
    if step.dtype != pl.Enum(list(STEP_ORDER)):  # the reader gives the schema's enum; others are cast
        step = step.cast(pl.String).cast(pl.Enum(list(STEP_ORDER)))
    code = step.to_physical().to_numpy()
    blocks = code.reshape(first.size, k)
    pattern = blocks[0]
    if len(set(pattern.tolist())) != k or not (blocks == pattern).all():
        return None  # a repeated step, or iterations with different steps
    names = [STEP_ORDER[c] for c in pattern]
    order = sorted(range(k), key=lambda j: pattern[j])  # columns in STEP_ORDER, as the pivot writes them
    work = [j for j, nm in enumerate(names) if nm in LATENCY_STEPS]
    idle = [j for j, nm in enumerate(names) if nm == "idle"]
    if not work or steps["host_ns"].null_count() or steps["host_start_ns"].null_count():
        return None

    def at(column: str, j: int, dtype: pl.DataType = pl.Int64) -> pl.Expr:  # step j of every iteration
        return pl.col(column).gather_every(k, offset=j).cast(dtype)

    # every step's columns gathered once, then the sums over them (a gather inside each sum
    # would gather the same rows again)
    wide = steps.select(at("variant_id", 0, pl.Int32).alias("variant_id"), at("iteration", 0, pl.Int32).alias("iteration"),
                        at("warmup", 0, pl.Boolean).alias("warmup"),
                        pl.min_horizontal([at("host_start_ns", j) for j in work]).alias("start_ns"),
                        *(at(c, j).alias(f"{names[j]}_{c}") for j in order for c in ("host_ns", "gpu_ns")))
    latency = "gpu_ns" if basis == "gpu" else "host_ns"  # trtexec imports: the work steps' device time (nulls count 0)
    return wide.select(
        "variant_id", "iteration", "warmup", "start_ns",
        (pl.sum_horizontal([pl.col(f"{names[j]}_host_ns") for j in idle]) if idle else pl.lit(0, pl.Int64)).alias("idle_ns"),
        pl.sum_horizontal([pl.col(f"{names[j]}_{latency}").fill_null(0) for j in work]).alias("latency_ns"),
        *(pl.col(f"{names[j]}_{c}") for j in order for c in ("host_ns", "gpu_ns")))
