"""Synthetic runs with known numbers, written with the real RunWriter and read back.

Every iteration has the steps idle, preprocess, h2d, infer, d2h, sync and postprocess; the
host times of the work steps add up to the latency the test asked for, so the truth of every
table and chart is known:

* ``idle_run``: a no-gap baseline at 5 ms, a 20 ms sleep variant that steps from 5 ms to 9 ms
  after 60 measured iterations (two tiers, one change point), a 20 ms spin variant flat at 5 ms;
  GPU telemetry whose SM clock drops with the step.
* ``batch_run``: eager batches 1..16 with known latencies (per-image time falls, then flattens).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from tracegen.trace import schema as S
from tracegen.trace.reader import read_run
from tracegen.trace.writer import RunWriter, create_run_dir

WARMUP = 10
IDLE_N = 300
STEP_AT = 60  # measured iteration where the sleep variant steps up
FAST_MS, SLOW_MS = 5.0, 9.0
BATCH_MS = {1: 2.0, 2: 2.2, 4: 2.6, 8: 4.0, 16: 7.5}
# share of the latency each host step takes (sums to 1); the GPU times of h2d/infer/d2h
SHARES = {"preprocess": 0.1, "h2d": 0.05, "infer": 0.15, "d2h": 0.05, "sync": 0.55, "postprocess": 0.1}
GPU_SHARES = {"h2d": 0.05, "infer": 0.6, "d2h": 0.03}


def manifest(run_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": S.SCHEMA_VERSION, "run_id": run_id, "tracegen_version": "test",
        "command": ["tracegen", "run", "--model", "builtin:tiny", "--idle-ms", "0,20", "--out", "my runs"],
        "config": {"model": "builtin:tiny", "idle_ms": [0.0, 20.0], "warmup": WARMUP},
        "host": {"hostname": "bench-host", "cpu_model": "Test CPU 3000", "cores_logical": 4, "cores_physical": 2,
                 "os": "Linux-test", "kernel": "6.1.0", "python": "3.11.7"},
        "gpu": {"name": "Test GPU T4", "uuid": "GPU-0000", "driver": "550.1", "cuda": "12.4", "compute_capability": "7.5",
                "memory_total_mb": 15360, "power_limit_w": 70.0, "persistence_mode": 0, "max_sm_clock_mhz": 1590,
                "max_mem_clock_mhz": 5001, "app_sm_clock_mhz": 585},
        "backend": {"name": "tensorrt", "precision": "fp16", "versions": {"tensorrt": "10.0.1"}},
        "model": {"spec": "builtin:tiny", "kind": "onnx", "path": None, "sha256": "ab" * 32,
                  "input": {"name": "input", "shape": ["batch", 3, 224, 224], "dtype": "float32"},
                  "output": {"name": "logits", "shape": ["batch", 10], "dtype": "float32"},
                  "params": 123456, "flops_per_image": 987654321},
        "pipeline": {"steps": list(S.STEP_ORDER), "not_applicable": {}},
        "telemetry": {"cpu_frequency": False, "gpu": True, "interval_ms": 50.0},
        **extra,
    }


def variant(vid: int, *, scenario: str = "idle", batch: int = 1, idle_ms: float = 0.0, pacing: str = "none",
            launch: str = "eager", iterations: int = IDLE_N, completed: int | None = None,
            status: str = "complete", name: str | None = None) -> dict[str, Any]:
    gap = "no-gap" if pacing == "none" else f"{idle_ms:g}ms-{pacing}"
    return {"variant_id": vid, "name": name or f"{scenario} b{batch} {gap} {launch} sync-auto full", "scenario": scenario,
            "batch": batch, "idle_ms": idle_ms, "pacing": pacing, "launch": launch, "sync_mode": "auto",
            "pipeline": "full", "warmup": WARMUP, "iterations": iterations,
            "completed": WARMUP + iterations if completed is None else completed, "status": status}


def steps_frame(vid: int, latency_ms: np.ndarray, idle_ms: float, t0: int) -> tuple[pl.DataFrame, np.ndarray]:
    """Steps of one variant whose work steps add up to ``latency_ms`` per iteration (exactly,
    in ns); returns the frame and each iteration's start time."""
    n = len(latency_ms)
    lat_ns = np.round(latency_ms * 1e6).astype(np.int64)
    host = {s: np.round(lat_ns * f).astype(np.int64) for s, f in SHARES.items()}
    host["postprocess"] = lat_ns - sum(v for s, v in host.items() if s != "postprocess")  # exact sum
    durations = np.stack([np.full(n, int(idle_ms * 1e6), dtype=np.int64)] + [host[s] for s in S.STEP_ORDER[1:]], axis=1)
    flat = durations.ravel()
    starts = t0 + np.concatenate([[0], np.cumsum(flat)[:-1]])
    k = len(S.STEP_ORDER)
    gpu = np.stack([np.round(lat_ns * GPU_SHARES[s]).astype(np.int64) if s in GPU_SHARES else np.full(n, -1)
                    for s in S.STEP_ORDER], axis=1).ravel()
    frame = pl.DataFrame({
        "variant_id": np.full(n * k, vid, dtype=np.int32),
        "iteration": np.repeat(np.arange(n), k).astype(np.int32),
        "warmup": np.repeat(np.arange(n) < WARMUP, k),
        "step": pl.Series(list(S.STEP_ORDER) * n, dtype=S.STEP_DTYPE),
        "host_start_ns": starts, "host_ns": flat, "gpu_ns": gpu,
        "cpu_core": np.zeros(n * k, dtype=np.int16),
    }).with_columns(pl.when(pl.col("gpu_ns") >= 0).then(pl.col("gpu_ns")).alias("gpu_ns"))
    return frame, starts.reshape(n, k)[:, 0]


def write_run(root: Path, run_id: str, variants: list[dict[str, Any]], latencies: dict[int, np.ndarray], *,
              status: str = "complete", error: str | None = None,
              clock: Callable[[int, int], float] | None = None, **extra: Any) -> Path:
    """A run directory; ``clock(variant_id, iteration)`` gives the SM clock sampled during it."""
    run_dir = create_run_dir(Path(root) / run_id)
    writer = RunWriter(run_dir, manifest(run_id, **extra))
    t0 = 1_000_000
    for v in variants:
        frame, begins = steps_frame(v["variant_id"], latencies[v["variant_id"]], v["idle_ms"], t0)
        writer.append_steps(frame)
        if clock is not None:
            writer.append_telemetry([
                {"t_ns": int(b) + 1000, "variant_id": v["variant_id"], "source": "gpu0", "power_w": 40.0,
                 "sm_clock_mhz": clock(v["variant_id"], i), "temperature_c": 50.0}
                for i, b in enumerate(begins)])
        t0 = int(frame["host_start_ns"].max() + frame["host_ns"][-1]) + 50_000_000
    writer.write_variants(pl.DataFrame(variants, schema=S.VARIANTS_SCHEMA, strict=False))
    writer.finish(status, error)
    return run_dir


def noisy(level: np.ndarray, seed: int) -> np.ndarray:
    return level * np.random.default_rng(seed).lognormal(0.0, 0.01, len(level))


def idle_latencies(n_measured: int = IDLE_N) -> dict[int, np.ndarray]:
    n = WARMUP + n_measured
    i = np.arange(n)
    stepped = np.where(i >= WARMUP + STEP_AT, SLOW_MS, FAST_MS)
    return {0: noisy(np.full(n, FAST_MS), 1), 1: noisy(stepped, 2), 2: noisy(np.full(n, FAST_MS), 3)}


def idle_variants(**last: Any) -> list[dict[str, Any]]:
    return [variant(0), variant(1, idle_ms=20.0, pacing="sleep"), variant(2, idle_ms=20.0, pacing="spin", **last)]


def idle_clock(vid: int, i: int) -> float:
    return 1200.0 if vid == 1 and i >= WARMUP + STEP_AT else 1590.0


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("report-runs")


@pytest.fixture(scope="session")
def idle_run(runs_root) -> Path:
    return write_run(runs_root, "idle-run", idle_variants(), idle_latencies(), clock=idle_clock)


@pytest.fixture(scope="session")
def batch_run(runs_root) -> Path:
    variants, lat = [], {}
    for vid, (b, ms) in enumerate(BATCH_MS.items()):
        variants.append(variant(vid, scenario="batch", batch=b, iterations=40, name=f"batch b{b} no-gap eager sync-auto full"))
        lat[vid] = noisy(np.full(WARMUP + 40, ms), 10 + vid)
    return write_run(runs_root, "batch-run", variants, lat, started_utc="2026-01-02T03:04:05.000Z")


@pytest.fixture(scope="session")
def interrupted_run(runs_root) -> Path:
    """The idle run stopped by Ctrl-C in its last variant after 50 measured iterations."""
    lat = idle_latencies()
    lat[2] = lat[2][: WARMUP + 50]
    variants = idle_variants(completed=WARMUP + 50, status="interrupted")
    return write_run(runs_root, "interrupted-run", variants, lat, status="interrupted",
                     error="stopped by SIGINT (Ctrl-C)", gpu=None)

