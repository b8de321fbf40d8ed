"""Per-iteration and per-variant statistics (polars).

An iteration's *latency* is the host wall time of its work steps (preprocess through
postprocess; the idle gap is pacing, not work). For pipeline ``infer`` that is infer + sync.
Warm-up iterations are kept in the traces and excluded here unless asked for.

A run whose manifest says ``"latency": {"basis": "gpu"}`` (trtexec imports: trtexec defines
latency as H2D + compute + D2H on the GPU) sums the work steps' GPU times instead.
"""

from __future__ import annotations

import polars as pl

from tracegen.trace.schema import LATENCY_STEPS, STEP_ORDER
from tracegen.units import NS_PER_MS, as_float



def latency_basis(manifest: dict | None) -> str:
    """``host`` (wall time of the work steps, the default) or ``gpu`` (their device times)."""
    latency = (manifest or {}).get("latency")
    return "gpu" if isinstance(latency, dict) and latency.get("basis") == "gpu" else "host"


def iterations(steps: pl.DataFrame, basis: str = "host") -> pl.DataFrame:
    """One row per (variant_id, iteration): warm-up flag, start, idle and latency in ns, and
    ``<step>_host_ns`` / ``<step>_gpu_ns`` for every step that occurred. ``basis`` is
    ``latency_basis(run.manifest)``."""
    if steps.height == 0:
        return pl.DataFrame(
            schema={"variant_id": pl.Int32, "iteration": pl.Int32, "warmup": pl.Boolean,
                    "start_ns": pl.Int64, "idle_ns": pl.Int64, "latency_ns": pl.Int64}
        )
    work = pl.col("step").cast(pl.String).is_in(list(LATENCY_STEPS))
    base = steps.group_by("variant_id", "iteration", maintain_order=True).agg(
        pl.col("warmup").first(),
        pl.col("host_start_ns").filter(work).min().alias("start_ns"),
        pl.col("host_ns").filter(pl.col("step") == "idle").sum().alias("idle_ns"),
        pl.col("gpu_ns" if basis == "gpu" else "host_ns").filter(work).sum().alias("latency_ns"),
    )
    present = [s for s in STEP_ORDER if s in set(steps["step"].cast(pl.String).unique().to_list())]
    wide = steps.with_columns(pl.col("step").cast(pl.String)).pivot(
        on="step", index=["variant_id", "iteration"], values=["host_ns", "gpu_ns"], aggregate_function="first"
    )
    rename = {}
    for s in present:
        rename[f"host_ns_{s}"] = f"{s}_host_ns"
        rename[f"gpu_ns_{s}"] = f"{s}_gpu_ns"
    wide = wide.rename({k: v for k, v in rename.items() if k in wide.columns})
    ordered = [c for s in present for c in (f"{s}_host_ns", f"{s}_gpu_ns") if c in wide.columns]
    return base.join(wide.select("variant_id", "iteration", *ordered), on=["variant_id", "iteration"], how="left").sort(
        "variant_id", "iteration"
    )


def column_ms(frame: pl.DataFrame, col: str, how: str = "median") -> float | None:
    """The median (or ``how="mean"``) of a nanosecond column in ms; None when it has no values."""
    if col not in frame.columns or frame.height == 0 or frame[col].null_count() == frame.height:
        return None
    values = frame[col].cast(pl.Float64)
    return as_float((values.mean() if how == "mean" else values.median()) / NS_PER_MS)


def _ms(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Float64) / NS_PER_MS


def variant_stats(variants: pl.DataFrame, iters: pl.DataFrame) -> pl.DataFrame:
    """Per variant over measured iterations: count, p50/p90/p99, mean, CoV (std/mean) of latency
    in ms, per-image p50, throughput (images/s at the p50 latency, back to back, as the batch
    scaling analysis uses), and medians of
    the infer step's host (enqueue) and GPU time."""
    measured = iters.filter(~pl.col("warmup"))
    aggs = [
        pl.len().alias("n"),
        _ms("latency_ns").quantile(0.5, "linear").alias("p50_ms"),
        _ms("latency_ns").quantile(0.9, "linear").alias("p90_ms"),
        _ms("latency_ns").quantile(0.99, "linear").alias("p99_ms"),
        _ms("latency_ns").mean().alias("mean_ms"),
        (_ms("latency_ns").std() / _ms("latency_ns").mean()).alias("cov"),
        _ms("idle_ns").median().alias("idle_p50_ms"),
    ]
    for col in ("infer_host_ns", "infer_gpu_ns"):
        if col in measured.columns:
            aggs.append(_ms(col).median().alias(col.replace("_ns", "_p50_ms")))
        else:
            aggs.append(pl.lit(None, pl.Float64).alias(col.replace("_ns", "_p50_ms")))
    per = measured.group_by("variant_id").agg(aggs)
    out = variants.join(per, on="variant_id", how="left").with_columns(
        (pl.col("p50_ms") / pl.col("batch")).alias("per_image_ms"),
        (pl.col("batch") * 1000.0 / pl.col("p50_ms")).alias("throughput_ips"),
    )
    return out.with_columns(pl.col("n").fill_null(0)).sort("variant_id")


def step_medians(iters: pl.DataFrame) -> pl.DataFrame:
    """Median host and GPU time per step and variant (measured iterations), long format, sorted
    by variant and step (host before gpu)."""
    cols = [(step, kind) for step in STEP_ORDER for kind in ("host", "gpu") if f"{step}_{kind}_ns" in iters.columns]
    if not cols:
        return pl.DataFrame(schema={"variant_id": pl.Int32, "median_ms": pl.Float64, "step": pl.String, "clock": pl.String})
    # one pass over the measured rows for every column (not one filtered copy and group-by per column)
    wide = iters.lazy().filter(~pl.col("warmup")).group_by("variant_id").agg(
        _ms(f"{step}_{kind}_ns").median().alias(f"{step}|{kind}") for step, kind in cols).collect()
    rows = [wide.select("variant_id", pl.col(f"{step}|{kind}").alias("median_ms"), pl.lit(step).alias("step"),
                        pl.lit(kind).alias("clock")) for step, kind in cols]
    return pl.concat(rows).drop_nulls("median_ms").sort("variant_id", "step", maintain_order=True)
