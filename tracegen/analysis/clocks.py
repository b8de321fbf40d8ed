"""Clocks: NVML and CPU-frequency telemetry joined to iterations, and clock comparisons.

Telemetry samples are joined to iterations by time (``join_asof``, backward, on
the iteration's begin = start of its idle gap), so every sample belongs to the iteration whose
gap or work it fell in. ``busy`` samples fell in the work part. Latency vs SM clock: Spearman
rank correlation over iterations with a busy sample (all samples when fewer than 10 iterations
have one; None when the clock never moved). Reason
shares: fraction of sampled measured iterations with each NVML clock-event reason active
(``reasons``: in any sample of the iteration, gap included; ``reasons_busy``: in samples taken
while it worked; GpuIdle during a gap is expected and says nothing about the inference).
Comparing a paced variant with its (gap-less) baseline uses busy samples only: a sample taken
during the gap reads the idle clock, which says nothing about the clock the inference ran at.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from tracegen.units import as_float

# NVML clock event (throttle) reasons, as in nvidia-ml-py's ``nvmlClocksEventReason*`` and
# ``nvmlClocksThrottleReason*`` constants (the last two exist only under the throttle names).
REASON_BITS: dict[str, int] = {
    "gpu_idle": 0x1,
    "applications_clocks": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock": 0x100,
    "board_limit": 0x200,
    "reliability": 0x400,
}

# Their names as nvidia-smi and NVML's documentation spell them.
REASON_LABELS = {
    "gpu_idle": "GpuIdle", "applications_clocks": "ApplicationsClocksSetting", "sw_power_cap": "SwPowerCap",
    "hw_slowdown": "HwSlowdown", "sync_boost": "SyncBoost", "sw_thermal_slowdown": "SwThermalSlowdown",
    "hw_thermal_slowdown": "HwThermalSlowdown", "hw_power_brake_slowdown": "HwPowerBrakeSlowdown",
    "display_clock": "DisplayClockSetting", "board_limit": "BoardLimit", "reliability": "Reliability",
}

MIN_CLOCK_SAMPLES = 3  # per side, before comparing clocks of two sets of iterations
MIN_CORR_POINTS = 10


# -- telemetry joined to iterations ------------------------------------------------------------
def samples_to_iterations(iters: pl.DataFrame, telemetry: pl.DataFrame) -> pl.DataFrame:
    """Each telemetry sample with the iteration it fell in (gap or work) and a ``busy`` flag
    (the sample fell in the work part). Samples outside any iteration are dropped."""
    cols = ["t_ns", "sm_clock_mhz", "power_w", "temperature_c", "clock_event_reasons", "cpu_freq_mhz"]
    if telemetry is None or telemetry.height == 0 or iters.height == 0:
        return pl.DataFrame(schema={"variant_id": pl.Int32, "iteration": pl.Int32, "warmup": pl.Boolean,
                                    "busy": pl.Boolean, **{c: pl.Float64 for c in cols}})
    it = (iters.select("variant_id", "iteration", "warmup", "start_ns", "idle_ns", "latency_ns")
          .drop_nulls("start_ns")
          .with_columns((pl.col("start_ns") - pl.col("idle_ns").fill_null(0)).alias("begin_ns"),
                        (pl.col("start_ns") + pl.col("latency_ns")).alias("end_ns"))
          .sort("begin_ns"))
    floats = [c for c in cols[1:] if c in telemetry.columns and telemetry.schema[c].is_float()]
    tel = (telemetry.select("t_ns", pl.col("variant_id").alias("tel_variant_id"),
                            *[c for c in cols[1:] if c in telemetry.columns])
           .with_columns([pl.col(c).fill_nan(None) for c in floats]).sort("t_ns"))
    j = tel.join_asof(it, left_on="t_ns", right_on="begin_ns", strategy="backward")
    j = j.filter(pl.col("iteration").is_not_null() & (pl.col("t_ns") <= pl.col("end_ns"))
                 & (pl.col("tel_variant_id").is_null() | (pl.col("tel_variant_id") == pl.col("variant_id"))))
    return j.with_columns((pl.col("t_ns") >= pl.col("start_ns")).alias("busy")).drop("tel_variant_id")


def iteration_telemetry(samples: pl.DataFrame) -> pl.DataFrame:
    """Per iteration with samples: median SM clock (all samples, and busy samples only), power,
    temperature, CPU frequency, number of GPU samples and the OR of the clock-event reasons."""
    if samples.height == 0:
        return pl.DataFrame(schema={"variant_id": pl.Int32, "iteration": pl.Int32, "warmup": pl.Boolean,
                                    "sm_clock_mhz": pl.Float64, "sm_clock_busy_mhz": pl.Float64,
                                    "power_w": pl.Float64, "temperature_c": pl.Float64, "cpu_freq_mhz": pl.Float64,
                                    "n_gpu_samples": pl.UInt32, "reasons": pl.UInt64, "reasons_busy": pl.UInt64})
    aggs = [pl.col("warmup").first()]
    for c in ("sm_clock_mhz", "power_w", "temperature_c", "cpu_freq_mhz"):
        aggs.append(pl.col(c).median().alias(c) if c in samples.columns else pl.lit(None, pl.Float64).alias(c))
    if "sm_clock_mhz" in samples.columns:
        aggs.append(pl.col("sm_clock_mhz").filter(pl.col("busy")).median().alias("sm_clock_busy_mhz"))
        aggs.append(pl.col("sm_clock_mhz").is_not_null().sum().alias("n_gpu_samples"))
    if "clock_event_reasons" in samples.columns:
        r = pl.col("clock_event_reasons")
        for name, busy in (("reasons", None), ("reasons_busy", True)):
            sel = r if busy is None else r.filter(pl.col("busy"))
            bits = [((sel & bit) != 0).any().cast(pl.UInt64) * bit for bit in REASON_BITS.values()]
            aggs.append(pl.sum_horizontal(bits).cast(pl.UInt64).alias(name))
            aggs.append(sel.is_not_null().any().alias(f"_has_{name}"))
    out = samples.group_by("variant_id", "iteration").agg(aggs)
    for name in ("reasons", "reasons_busy"):
        if f"_has_{name}" in out.columns:
            out = out.with_columns(pl.when(pl.col(f"_has_{name}")).then(pl.col(name)).otherwise(None).alias(name)
                                   ).drop(f"_has_{name}")
    return out.sort("variant_id", "iteration")


def reason_shares(per_iter: pl.DataFrame, column: str = "reasons") -> dict[str, float]:
    """Fraction of iterations (with a reasons sample) in which each reason was active; only
    reasons seen at least once. ``column``: ``reasons`` (any sample of the iteration, gap
    included) or ``reasons_busy`` (samples taken while it worked)."""
    if per_iter.height == 0 or column not in per_iter.columns:
        return {}
    r = per_iter[column].drop_nulls()
    if r.len() == 0:
        return {}
    arr = r.to_numpy().astype(np.uint64)
    out = {}
    for name, bit in REASON_BITS.items():
        share = float(np.mean((arr & np.uint64(bit)) != 0))
        if share > 0:
            out[name] = share
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Rank correlation; None with too few points or a constant series (e.g. a flat clock)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if x.size < MIN_CORR_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    rx = pl.Series(x).rank("average").to_numpy()
    ry = pl.Series(y).rank("average").to_numpy()
    c = np.corrcoef(rx, ry)[0, 1]
    return as_float(c)


def clock_summary(iter_rows: pl.DataFrame, per_iter_tel: pl.DataFrame, *, busy_only: bool = False) -> dict[str, Any]:
    """SM clock, CPU frequency and reasons over a set of iterations (``iter_rows`` has
    variant_id, iteration, latency_ns)."""
    t = iter_rows.select("variant_id", "iteration", "latency_ns").join(per_iter_tel, on=["variant_id", "iteration"], how="inner")
    col = "sm_clock_busy_mhz" if busy_only else "sm_clock_mhz"
    clk = t[col].drop_nulls() if col in t.columns else pl.Series([], dtype=pl.Float64)
    cpu = t["cpu_freq_mhz"].drop_nulls() if "cpu_freq_mhz" in t.columns else pl.Series([], dtype=pl.Float64)
    return {
        "sm_clock_mhz": as_float(clk.median()) if clk.len() else None,
        "n_clock_samples": int(clk.len()),
        "cpu_freq_mhz": as_float(cpu.median()) if cpu.len() else None,
        "reasons": reason_shares(t),
        "reasons_busy": reason_shares(t, "reasons_busy"),
        "busy_only": busy_only,
    }


def compare_clocks(slow_rows: pl.DataFrame, fast_rows: pl.DataFrame, per_iter_tel: pl.DataFrame,
                   *, allow_gap_samples: bool) -> dict[str, Any] | None:
    """SM clock of two sets of iterations, busy samples preferred. ``allow_gap_samples``: fall
    back to all samples (only fair when both sets have the same gap structure, e.g. two tiers of
    one variant). None when either side has fewer than MIN_CLOCK_SAMPLES samples."""
    for busy in (True, False):
        if not busy and not allow_gap_samples:
            break
        s = clock_summary(slow_rows, per_iter_tel, busy_only=busy)
        f = clock_summary(fast_rows, per_iter_tel, busy_only=busy)
        if s["n_clock_samples"] >= MIN_CLOCK_SAMPLES and f["n_clock_samples"] >= MIN_CLOCK_SAMPLES:
            drop = None
            if s["sm_clock_mhz"] is not None and f["sm_clock_mhz"]:
                drop = 1.0 - s["sm_clock_mhz"] / f["sm_clock_mhz"]
            cpu_drop = None
            if s["cpu_freq_mhz"] is not None and f["cpu_freq_mhz"]:
                cpu_drop = 1.0 - s["cpu_freq_mhz"] / f["cpu_freq_mhz"]
            return {"slow": s, "fast": f, "sm_clock_drop": drop, "cpu_freq_drop": cpu_drop, "busy_only": busy}
    return None
