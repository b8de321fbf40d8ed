"""Schema of a run directory, version 1.

A run directory holds ``manifest.json``, ``variants.parquet``, ``steps.parquet`` and, where there
was telemetry, ``telemetry.parquet``. All times are integer nanoseconds on one monotonic clock
whose zero is the run's start (``time.perf_counter_ns`` at start), so steps and telemetry samples
line up.

Bump ``SCHEMA_VERSION`` for any incompatible change and add a migration in ``trace.migrate``.
"""

from __future__ import annotations

import polars as pl

SCHEMA_VERSION = 1

MANIFEST = "manifest.json"
VARIANTS = "variants.parquet"
STEPS = "steps.parquet"
TELEMETRY = "telemetry.parquet"
# Parts written during the run; merged into the files above when the run ends.
STEPS_PARTS = "steps.parts"
TELEMETRY_PARTS = "telemetry.parts"

# The steps of one iteration, in order (DESIGN.md "One iteration").
STEP_ORDER = ("idle", "preprocess", "h2d", "infer", "d2h", "sync", "postprocess")
# Steps that make up an inference's latency (the idle gap is the pacing, not the work).
LATENCY_STEPS = STEP_ORDER[1:]

SCENARIOS = ("batch", "idle")
PACINGS = ("none", "sleep", "spin", "keepalive")
LAUNCHES = ("eager", "graph")
SYNC_MODES = ("auto", "spin", "yield", "blocking")
PIPELINES = ("full", "infer")
RUN_STATUSES = ("running", "complete", "interrupted", "failed")
VARIANT_STATUSES = ("planned", "running", "complete", "interrupted", "failed")

STEP_DTYPE = pl.Enum(list(STEP_ORDER))

VARIANTS_SCHEMA: dict[str, pl.DataType] = {
    "variant_id": pl.Int32(),
    "name": pl.String(),  # human label, also the NVTX range name
    "scenario": pl.String(),  # batch | idle
    "batch": pl.Int32(),
    "idle_ms": pl.Float64(),  # requested gap before each iteration
    "pacing": pl.String(),  # none | sleep | spin | keepalive
    "launch": pl.String(),  # eager | graph
    "sync_mode": pl.String(),  # auto | spin | yield | blocking (host wait for the GPU)
    "pipeline": pl.String(),  # full (pre, copies, infer, sync, post) | infer (engine alone)
    "warmup": pl.Int32(),  # warm-up iterations (recorded, flagged)
    "iterations": pl.Int32(),  # measured iterations requested
    "completed": pl.Int32(),  # iterations recorded, warm-up included
    "status": pl.String(),  # planned | running | complete | interrupted | failed
}

STEPS_SCHEMA: dict[str, pl.DataType] = {
    "variant_id": pl.Int32(),
    "iteration": pl.Int32(),  # 0-based, warm-up iterations first
    "warmup": pl.Boolean(),
    "step": STEP_DTYPE,
    "host_start_ns": pl.Int64(),  # since run start
    "host_ns": pl.Int64(),  # host wall time of the step
    "gpu_ns": pl.Int64(),  # device time by CUDA events; null where no device work
    "cpu_core": pl.Int16(),  # core the host thread ran on at the step's end; null if unknown
}

TELEMETRY_SCHEMA: dict[str, pl.DataType] = {
    "t_ns": pl.Int64(),  # since run start
    "variant_id": pl.Int32(),  # variant running when sampled; null between variants
    "source": pl.String(),  # "gpu0", "cpu"
    "sm_clock_mhz": pl.Float64(),
    "mem_clock_mhz": pl.Float64(),
    "power_w": pl.Float64(),
    "temperature_c": pl.Float64(),
    "pstate": pl.Int16(),
    "clock_event_reasons": pl.UInt64(),  # NVML clocks event reasons bitmask
    "gpu_util_pct": pl.Float64(),
    "mem_util_pct": pl.Float64(),
    "cpu_freq_mhz": pl.Float64(),  # mean over cores, where the OS exposes it
    "cpu_freq_core_mhz": pl.Float64(),  # the core the benchmark thread last ran on
    "cpu_util_pct": pl.Float64(),
}

# Optional tables written by `tracegen nsys-import` (tracegen.importers.nsys): the GPU work an
# Nsight Systems report saw, tied to the run's steps through the NVTX ranges. Versioned on their
# own (manifest["nsys_import"]["version"]); steps are strings so imported applications' own
# range names fit too.
NSYS_STEPS = "nsys_steps.parquet"
NSYS_KERNELS = "nsys_kernels.parquet"
NSYS_TABLES_VERSION = 1

NSYS_STEPS_SCHEMA: dict[str, pl.DataType] = {
    "variant_id": pl.Int32(),
    "iteration": pl.Int32(),
    "step": pl.String(),
    "range_start_ns": pl.Int64(),  # NVTX range start, run clock
    "range_ns": pl.Int64(),  # NVTX range duration (host)
    "kernels": pl.Int32(),
    "graphs": pl.Int32(),  # CUDA graph launches nsys traced as a whole (--cuda-graph-trace=graph)
    "memcpys": pl.Int32(),
    "memsets": pl.Int32(),
    "kernel_ns": pl.Int64(),  # summed kernel durations of the work this step launched
    "graph_ns": pl.Int64(),  # summed durations of whole-graph launches
    "memcpy_ns": pl.Int64(),
    "memset_ns": pl.Int64(),
    "busy_ns": pl.Int64(),  # union of all its GPU intervals
    "span_ns": pl.Int64(),  # first GPU start to last GPU end; null without GPU work
    "gap_ns": pl.Int64(),  # span - busy: GPU idle between the step's own operations
    "launch_latency_ns": pl.Int64(),  # first kernel (or graph) start - start of the API call that launched it
    "api_calls": pl.Int32(),  # CUDA runtime/driver calls made in the step
    "api_ns": pl.Int64(),
}

NSYS_KERNELS_SCHEMA: dict[str, pl.DataType] = {
    "variant_id": pl.Int32(),
    "iteration": pl.Int32(),
    "step": pl.String(),  # step whose range held the launching API call
    "kind": pl.String(),  # kernel | memcpy | memset | graph (a graph launch traced as a whole)
    "name": pl.String(),  # kernel short name, "memcpy HtoD", "memset", "graph <id>"
    "start_ns": pl.Int64(),  # run clock
    "duration_ns": pl.Int64(),
    "launch_ns": pl.Int64(),  # start of the launching API call, run clock
    "stream": pl.Int32(),
    "device": pl.Int16(),
    "bytes": pl.Int64(),  # memcpy/memset size; null for kernels
    "graph": pl.Boolean(),  # ran as part of a CUDA graph launch
    "correlation_id": pl.Int64(),
}

TABLE_SCHEMAS = {VARIANTS: VARIANTS_SCHEMA, STEPS: STEPS_SCHEMA, TELEMETRY: TELEMETRY_SCHEMA}
REQUIRED_TABLES = (VARIANTS, STEPS)


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)
