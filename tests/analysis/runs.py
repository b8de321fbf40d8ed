"""Synthetic runs with known truth, written with the real ``RunWriter`` and read back with
``read_run``, for the scaling, attribution, rules and findings tests.

A variant is a ``Spec``: its parameters plus, per step, a host time and (for GPU steps) a GPU
time in ms, each a number or a function of the iteration index (warm-up included) returning
an array. The sync step's host time is the GPU work still running when the host starts
waiting (``h2d + infer + d2h`` GPU time minus the host enqueue times after the h2d starts, at
least ``sync_floor_ms``) plus ``sync_extra_ms``. Noise is multiplicative lognormal with a fixed
seed. Telemetry samples every ``tel_ms`` of the variant's time line take their values from
``clock`` / ``reasons`` / ``power`` / ``temperature`` / ``cpu_freq`` functions of
(iteration index, busy) where busy means the sample fell in the work part of the iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tracegen.trace import schema as S
from tracegen.trace.reader import Run, read_run
from tracegen.trace.writer import RunWriter, create_run_dir

Value = float | Callable[[np.ndarray], np.ndarray]


@dataclass
class Spec:
    scenario: str = "idle"
    batch: int = 1
    idle_ms: float = 0.0
    pacing: str = "none"
    launch: str = "graph"
    sync_mode: str = "auto"
    pipeline: str = "full"
    warmup: int = 5
    iterations: int = 200
    gpu: bool = True  # GPU device: copies, GPU times and a sync step
    pre_ms: Value = 0.3
    h2d_host_ms: Value = 0.02
    h2d_gpu_ms: Value = 0.1
    infer_host_ms: Value = 0.05
    infer_gpu_ms: Value = 1.0
    d2h_host_ms: Value = 0.02
    d2h_gpu_ms: Value = 0.03
    sync_extra_ms: Value = 0.0
    sync_floor_ms: float = 0.01
    post_ms: Value = 0.05
    noise: float = 0.02
    seed: int = 0
    # telemetry: functions of (iteration index array, busy bool array); None = no such column
    clock: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    reasons: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    power: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    temperature: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    cpu_freq: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    tel_ms: float = 2.0

    @property
    def name(self) -> str:
        gap = f"{self.idle_ms:g}ms-{self.pacing}" if self.pacing != "none" else "no-gap"
        return f"{self.scenario} b{self.batch} {gap} {self.launch} sync-{self.sync_mode} {self.pipeline}"


def _val(v: Value, i: np.ndarray) -> np.ndarray:
    return np.asarray(v(i), dtype=float) if callable(v) else np.full(i.size, float(v))


def step_at(start: int, extra: float, base: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    """``base`` before iteration index ``start`` (warm-up included), ``base + extra`` from it on."""
    return lambda i: base + extra * (i >= start)


def ramp(start: int, end: int, lo: float, hi: float) -> Callable[[np.ndarray], np.ndarray]:
    """The seed's shape: ``lo`` until ``start``, linear to ``hi`` at ``end``, then ``hi``."""
    return lambda i: lo + (hi - lo) * np.clip((i - start) / max(1, end - start), 0, 1)


def const(x: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda i, busy: np.full(i.size, x, dtype=float)


def _variant_frames(vid: int, spec: Spec, t0: int, rng: np.random.Generator):
    n = spec.warmup + spec.iterations
    i = np.arange(n)

    def noisy(v: Value) -> np.ndarray:
        x = _val(v, i)
        return np.maximum(x * rng.lognormal(0.0, spec.noise, n), 0.0) if spec.noise else x

    idle = np.full(n, spec.idle_ms) * (1 + 0.001 * rng.random(n)) if spec.idle_ms > 0 else np.zeros(n)
    steps: list[tuple[str, np.ndarray, np.ndarray | None]] = [("idle", idle, None)]
    full = spec.pipeline == "full"
    if full:
        steps.append(("preprocess", noisy(spec.pre_ms), None))
    if spec.gpu:
        h2d_h, h2d_g = (noisy(spec.h2d_host_ms), noisy(spec.h2d_gpu_ms)) if full else (np.zeros(n), np.zeros(n))
        inf_h, inf_g = noisy(spec.infer_host_ms), noisy(spec.infer_gpu_ms)
        d2h_h, d2h_g = (noisy(spec.d2h_host_ms), noisy(spec.d2h_gpu_ms)) if full else (np.zeros(n), np.zeros(n))
        if full:
            steps.append(("h2d", h2d_h, h2d_g))
        steps.append(("infer", inf_h, inf_g))
        if full:
            steps.append(("d2h", d2h_h, d2h_g))
        wait = np.maximum(h2d_g + inf_g + d2h_g - (h2d_h + inf_h + d2h_h), spec.sync_floor_ms) + _val(spec.sync_extra_ms, i)
        steps.append(("sync", wait, None))
    else:
        steps.append(("infer", noisy(spec.infer_host_ms), None))
    if full:
        steps.append(("postprocess", noisy(spec.post_ms), None))

    host = np.stack([s[1] for s in steps], axis=1)  # ms, (n, steps)
    host_ns = np.round(host * 1e6).astype(np.int64)
    flat = host_ns.ravel()
    starts = t0 + np.concatenate([[0], np.cumsum(flat)[:-1]])
    k = len(steps)
    gpu = np.full((n, k), -1, dtype=np.int64)
    for j, s in enumerate(steps):
        if s[2] is not None:
            gpu[:, j] = np.round(s[2] * 1e6).astype(np.int64)
    frame = pl.DataFrame({
        "variant_id": np.full(n * k, vid, dtype=np.int32),
        "iteration": np.repeat(i, k).astype(np.int32),
        "warmup": np.repeat(i < spec.warmup, k),
        "step": pl.Series([s[0] for s in steps] * n, dtype=S.STEP_DTYPE),
        "host_start_ns": starts,
        "host_ns": flat,
        "gpu_ns": gpu.ravel(),
        "cpu_core": pl.Series(np.zeros(n * k, dtype=np.int16)),
    }).with_columns(pl.when(pl.col("gpu_ns") >= 0).then(pl.col("gpu_ns")).alias("gpu_ns"))
    end = int(starts[-1] + flat[-1])

    tel = []
    if any(x is not None for x in (spec.clock, spec.reasons, spec.power, spec.temperature, spec.cpu_freq)):
        it_begin = starts.reshape(n, k)[:, 0]
        work_begin = starts.reshape(n, k)[:, 1]
        t = np.arange(t0 + 1, end, int(spec.tel_ms * 1e6), dtype=np.int64)
        idx = np.clip(np.searchsorted(it_begin, t, side="right") - 1, 0, n - 1)
        busy = t >= work_begin[idx]
        cols: dict[str, Any] = {"t_ns": t, "variant_id": np.full(t.size, vid, dtype=np.int32),
                                "source": ["gpu0"] * t.size}
        for col, fn in (("sm_clock_mhz", spec.clock), ("power_w", spec.power), ("temperature_c", spec.temperature),
                        ("cpu_freq_mhz", spec.cpu_freq)):
            cols[col] = (pl.Series(col, np.asarray(fn(idx, busy), dtype=float), nan_to_null=True) if fn is not None
                         else [None] * t.size)
        cols["clock_event_reasons"] = (np.asarray(spec.reasons(idx, busy), dtype=np.uint64) if spec.reasons is not None
                                       else [None] * t.size)
        tel = pl.DataFrame(cols).to_dicts()
    return frame, tel, end


def make_run(root: Path, specs: list[Spec], *, run_id: str = "synthetic", manifest: dict | None = None,
             gap_between_variants_ms: float = 50.0) -> Run:
    """Write a complete run directory under ``root`` and read it back."""
    run_dir = create_run_dir(Path(root) / run_id)
    writer = RunWriter(run_dir, {"schema_version": S.SCHEMA_VERSION, "run_id": run_id, "tracegen_version": "test",
                                 "command": ["tracegen", "run", "(synthetic)"], **(manifest or {})})
    rows = []
    t0 = 1_000_000
    for vid, spec in enumerate(specs):
        rows.append({"variant_id": vid, "name": spec.name, "scenario": spec.scenario, "batch": spec.batch,
                     "idle_ms": spec.idle_ms, "pacing": spec.pacing, "launch": spec.launch, "sync_mode": spec.sync_mode,
                     "pipeline": spec.pipeline, "warmup": spec.warmup, "iterations": spec.iterations,
                     "completed": spec.warmup + spec.iterations, "status": "complete"})
        frame, tel, end = _variant_frames(vid, spec, t0, np.random.default_rng(spec.seed + 1000 * vid))
        writer.append_steps(frame)
        writer.append_telemetry(tel)
        t0 = end + int(gap_between_variants_ms * 1e6)
    writer.write_variants(pl.DataFrame(rows, schema=S.VARIANTS_SCHEMA, strict=False))
    writer.finish("complete")
    return read_run(run_dir)


# -- ready-made variants -----------------------------------------------------------------------------
def baseline(**kw: Any) -> Spec:
    """Continuous idle-scenario baseline (0 ms gap, pacing none)."""
    return Spec(**{"idle_ms": 0.0, "pacing": "none", **kw})


def paced(pacing: str = "sleep", idle_ms: float = 20.0, **kw: Any) -> Spec:
    return Spec(**{"idle_ms": idle_ms, "pacing": pacing, **kw})


def batch_series(latency_ms: dict[int, float], *, enqueue_ms: dict[int, float] | None = None,
                 gpu_ms: dict[int, float] | None = None, launch: str = "eager", iterations: int = 20,
                 **kw: Any) -> list[Spec]:
    """Batch-scenario variants whose latency (pipeline ``infer``: infer + sync) is ``latency_ms[b]``:
    the infer GPU time is the latency (or ``gpu_ms[b]``), the enqueue ``enqueue_ms[b]``."""
    out = []
    for b, lat in sorted(latency_ms.items()):
        g = (gpu_ms or {}).get(b, lat)
        e = (enqueue_ms or {}).get(b, 0.05)
        out.append(Spec(scenario="batch", batch=b, launch=launch, pipeline="infer", iterations=iterations, warmup=3,
                        infer_host_ms=e, infer_gpu_ms=g, sync_floor_ms=max(0.001, lat - max(g, e)), noise=0.01, **kw))
    return out


# Known shapes.
XAVIER_PER_IMAGE = {1: 11.23, 2: 10.6, 4: 9.9, 8: 9.4, 16: 9.1, 32: 8.98}  # seed: saturated at batch 1
EAGER_H100 = {1: 4.2, 2: 4.2, 4: 4.25, 8: 4.3, 16: 4.35, 32: 4.4, 64: 7.0, 128: 13.8, 256: 27.0}  # launch-bound


def with_(spec: Spec, **kw: Any) -> Spec:
    return replace(spec, **kw)


__all__ = [
    "EAGER_H100",
    "XAVIER_PER_IMAGE",
    "Spec",
    "baseline",
    "batch_series",
    "const",
    "make_run",
    "paced",
    "ramp",
    "step_at",
    "with_",
]
