"""Attribution: where the extra time of an idle-delay variant goes, and what the run's own
variants say about why.

For every *paced* variant (idle scenario, gap > 0, pacing sleep/spin/keepalive) against its
baseline:

* **Baseline.** The continuous variant with the same batch, launch, sync mode and pipeline
  (idle scenario, pacing ``none``; else the batch-scenario variant of that batch size, which is
  also back to back). Without one, the lowest-p50 variant of the same batch and pipeline (then of
  the whole run); ``baseline_kind`` says which.
* **Step decomposition** (``decompose``). Means over measured iterations, dropping whole
  iterations above the variant's p99 latency, so the steps still add up to the latency and a
  slow tier holding fewer than half of the iterations is not hidden the way a median would hide
  it. The latency is the sum of the host times of preprocess, h2d, infer, d2h, sync and
  postprocess; the GPU times overlap them and are de-overlapped like this:

  - ``infer_host`` (enqueue): the growth of the infer step's host time.
  - GPU compute that grew on its own: ``max(0, d infer_gpu - max(0, d infer_host))``. When the
    enqueue grew, the GPU waited for the host (its events span the enqueue), so that part of the
    GPU growth is the enqueue's.
  - The growth of the ``sync`` host time is the host waiting for the GPU. The part of it that
    GPU work growth explains (compute above, plus copy GPU time growth) is booked to ``infer_gpu``
    and the copies (``h2d``/``d2h``); the rest is ``sync_wait``: the wait itself got slower (the
    host wakes up late from a blocking/yielding sync).
  - ``preprocess``/``postprocess``: pure host work.

  The components add up to the latency difference; ``dominant_step`` is the largest, with its
  share of the difference. On a host (CPU) backend there are no GPU times and ``infer_host`` is
  the compute itself.
* **Tiers.** When the variant has latency tiers, the same decomposition of its slowest tier
  against its fastest tier (same variant, so only the tier effect differs), with the SM clock,
  CPU frequency and clock-event reasons of each tier.
* **Clocks.** Telemetry samples are joined to iterations by time (``join_asof``, backward, on
  the iteration's begin = start of its idle gap), so every sample belongs to the iteration whose
  gap or work it fell in. ``busy`` samples fell in the work part. Latency vs SM clock: Spearman
  rank correlation over iterations with a busy sample (all samples when fewer than 10 iterations
  have one; None when the clock never moved). Reason
  shares: fraction of sampled measured iterations with each NVML clock-event reason active
  (``reasons``: in any sample of the iteration, gap included; ``reasons_busy``: in samples taken
  while it worked; GpuIdle during a gap is expected and says nothing about the inference).
  Comparing a paced variant with its (gap-less) baseline uses busy samples only: a sample taken
  during the gap reads the idle clock, which says nothing about the clock the inference ran at.
* **Contrasts** at the same gap, batch, launch, sync mode and pipeline: ``spin_vs_sleep`` (host
  wake-up), ``keepalive_vs_sleep`` (GPU idling), ``graph_vs_eager`` (launch overhead). Each has
  the ratio of medians (reference / alternative) and ``removed_fraction`` = 1 - extra(alt) /
  extra(ref), where extra is the (trimmed) mean latency above the variant's own continuous
  baseline: the fraction of the gap's extra time the alternative removes (1 = all of it, 0 =
  none, negative = it made things worse).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from tracegen.analysis.stats import column_ms
from tracegen.units import NS_PER_MS, as_float


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

# Components of the latency difference, in pipeline order.
COMPONENTS = ("preprocess", "h2d", "infer_host", "infer_gpu", "d2h", "sync_wait", "postprocess")
COMPONENT_LABELS = {
    "preprocess": "preprocess (host)",
    "h2d": "host-to-device copy",
    "infer_host": "infer enqueue (host)",
    "infer_gpu": "infer GPU compute",
    "d2h": "device-to-host copy",
    "sync_wait": "sync wait (host waiting for the GPU)",
    "postprocess": "postprocess (host)",
}
HOST_ONLY = ("preprocess", "postprocess")


def component_label(component: str, gpu: bool = True) -> str:
    """Readable name of a component; on a host (CPU) backend the infer step is the compute."""
    if component == "infer_host" and not gpu:
        return "infer (CPU compute)"
    return COMPONENT_LABELS[component]

MIN_CLOCK_SAMPLES = 3  # per side, before comparing clocks of two sets of iterations
MIN_CORR_POINTS = 10


# -- small helpers ---------------------------------------------------------------------------------


def measured(iters: pl.DataFrame, variant_id: int | None = None) -> pl.DataFrame:
    """Measured (non-warm-up) iterations, optionally of one variant, in iteration order."""
    m = iters.filter(~pl.col("warmup"))
    if variant_id is not None:
        m = m.filter(pl.col("variant_id") == variant_id)
    return m.sort("variant_id", "iteration")


def trim(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop whole iterations above the p99 latency (keeps the steps additive)."""
    if frame.height < 20:
        return frame
    cut = frame["latency_ns"].quantile(0.99, "linear")
    return frame.filter(pl.col("latency_ns") <= cut)


def has_gpu_times(iters: pl.DataFrame) -> bool:
    return "infer_gpu_ns" in iters.columns and iters["infer_gpu_ns"].null_count() < iters.height


# -- step decomposition --------------------------------------------------------------------------------
def step_means(frame: pl.DataFrame) -> dict[str, float | None]:
    """Mean ms of every raw step column and of the latency (no trimming here)."""
    out: dict[str, float | None] = {"latency": column_ms(frame, "latency_ns", "mean")}
    for step in ("preprocess", "h2d", "infer", "d2h", "sync", "postprocess"):
        for kind in ("host", "gpu"):
            out[f"{step}_{kind}"] = column_ms(frame, f"{step}_{kind}_ns", "mean")
    return out


def decompose(slow: pl.DataFrame, ref: pl.DataFrame) -> dict[str, Any]:
    """Where the latency difference between two sets of iterations goes (see module doc)."""
    a, b = step_means(trim(slow)), step_means(trim(ref))

    def d(key: str) -> float:
        x, y = a.get(key), b.get(key)
        return (x - y) if x is not None and y is not None else 0.0

    d_lat = d("latency")
    d_enq, d_gpu = d("infer_host"), d("infer_gpu")
    gpu_present = a.get("infer_gpu") is not None and b.get("infer_gpu") is not None
    gpu_own = max(0.0, d_gpu - max(0.0, d_enq)) if gpu_present else 0.0
    h2d_gpu, d2h_gpu = max(0.0, d("h2d_gpu")), max(0.0, d("d2h_gpu"))
    d_sync = d("sync_host")
    explained = gpu_own + h2d_gpu + d2h_gpu
    gpu_part = min(max(0.0, d_sync), explained)
    scale = gpu_part / explained if explained > 0 else 0.0
    comps = {
        "preprocess": d("preprocess_host"),
        "h2d": d("h2d_host") + h2d_gpu * scale,
        "infer_host": d_enq,
        "infer_gpu": gpu_own * scale,
        "d2h": d("d2h_host") + d2h_gpu * scale,
        "sync_wait": d_sync - gpu_part,
        "postprocess": d("postprocess_host"),
    }
    present = {k: v for k, v in comps.items() if _component_present(k, a, b)}
    dominant = max(present, key=lambda k: present[k]) if present else None
    positive = sum(v for v in present.values() if v > 0)
    def gpu_total(m: dict) -> float | None:
        parts = [m.get(k) for k in ("h2d_gpu", "infer_gpu", "d2h_gpu")]
        return sum(p for p in parts if p is not None) if any(p is not None for p in parts) else None

    return {
        "latency_ms": a["latency"],
        "reference_ms": b["latency"],
        "gpu_ms": gpu_total(a),
        "reference_gpu_ms": gpu_total(b),
        "extra_ms": d_lat,
        "components_ms": present,
        "shares": {k: (v / d_lat if d_lat > 0 else None) for k, v in present.items()},
        "dominant_step": dominant if dominant and present[dominant] > 0 else None,
        "dominant_share": (present[dominant] / d_lat) if dominant and d_lat > 0 and present[dominant] > 0 else None,
        "host_only_extra_ms": sum(present.get(k, 0.0) for k in HOST_ONLY),
        "gpu_extra_ms": gpu_part,
        "raw_delta_ms": {k: (a[k] - b[k]) if a.get(k) is not None and b.get(k) is not None else None
                         for k in a if k != "latency"},
        "positive_extra_ms": positive,
    }


def _component_present(comp: str, a: dict, b: dict) -> bool:
    key = {"infer_gpu": "infer_gpu", "sync_wait": "sync_host", "infer_host": "infer_host"}.get(comp, f"{comp}_host")
    return a.get(key) is not None and b.get(key) is not None


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


# -- baselines and contrasts ------------------------------------------------------------------------
_MATCH = ("batch", "launch", "sync_mode", "pipeline")


def _rows(variants: pl.DataFrame) -> dict[int, dict]:
    return {r["variant_id"]: r for r in variants.iter_rows(named=True)}


def is_paced(row: dict) -> bool:
    return row["pacing"] != "none" and (row["idle_ms"] or 0) > 0


def find_baseline(variants: pl.DataFrame, stats: pl.DataFrame, variant_id: int) -> tuple[int | None, str | None]:
    """(baseline variant id, kind): kind ``continuous`` (same batch/launch/sync/pipeline, no
    gap; idle scenario first, then batch scenario) or ``lowest-latency`` (fallback)."""
    rows = _rows(variants)
    me = rows[variant_id]
    has_data = {r["variant_id"] for r in stats.filter(pl.col("n") > 0).iter_rows(named=True)}
    cands = [r for r in rows.values() if r["variant_id"] != variant_id and r["variant_id"] in has_data
             and not is_paced(r) and all(r[k] == me[k] for k in _MATCH)]
    if cands:
        cands.sort(key=lambda r: (r["scenario"] != "idle", r["variant_id"]))
        return cands[0]["variant_id"], "continuous"
    p50 = {r["variant_id"]: r["p50_ms"] for r in stats.iter_rows(named=True) if r["p50_ms"] is not None}
    for pool in ([r for r in rows.values() if r["batch"] == me["batch"] and r["pipeline"] == me["pipeline"]],
                 list(rows.values())):
        pool = [r for r in pool if r["variant_id"] != variant_id and r["variant_id"] in p50]
        if pool:
            best = min(pool, key=lambda r: p50[r["variant_id"]])
            return best["variant_id"], "lowest-latency"
    return None, None


def _trimmed_mean_ms(iters: pl.DataFrame, vid: int) -> float | None:
    return column_ms(trim(measured(iters, vid)), "latency_ns", "mean")


def _p50(stats: pl.DataFrame, vid: int) -> float | None:
    s = stats.filter(pl.col("variant_id") == vid)
    return as_float(s["p50_ms"][0]) if s.height else None


def contrast(iters: pl.DataFrame, stats: pl.DataFrame, ref_id: int, alt_id: int,
             ref_base: int | None, alt_base: int | None) -> dict[str, Any]:
    """Ratio of medians (ref / alt) and the fraction of ref's extra time (over its baseline)
    that alt removes (see module doc)."""
    ref_p50, alt_p50 = _p50(stats, ref_id), _p50(stats, alt_id)
    ref_m, alt_m = _trimmed_mean_ms(iters, ref_id), _trimmed_mean_ms(iters, alt_id)
    ref_bm = _trimmed_mean_ms(iters, ref_base) if ref_base is not None else None
    alt_bm = _trimmed_mean_ms(iters, alt_base) if alt_base is not None else None
    extra_ref = (ref_m - ref_bm) if ref_m is not None and ref_bm is not None else None
    extra_alt = (alt_m - alt_bm) if alt_m is not None and alt_bm is not None else None
    removed = None
    if extra_ref is not None and extra_alt is not None and extra_ref > 0:
        removed = 1.0 - extra_alt / extra_ref
    return {
        "ref_variant": ref_id, "alt_variant": alt_id,
        "ref_p50_ms": ref_p50, "alt_p50_ms": alt_p50,
        "ratio_of_medians": (ref_p50 / alt_p50) if ref_p50 and alt_p50 else None,
        "ref_mean_ms": ref_m, "alt_mean_ms": alt_m,
        "ref_extra_ms": extra_ref, "alt_extra_ms": extra_alt,
        "removed_fraction": removed,
    }


def find_sibling(variants: pl.DataFrame, variant_id: int, **change: Any) -> int | None:
    """The variant equal to ``variant_id`` in every parameter except those in ``change``."""
    rows = _rows(variants)
    me = rows[variant_id]
    keys = ("scenario", "batch", "idle_ms", "pacing", "launch", "sync_mode", "pipeline")
    want = {k: change.get(k, me[k]) for k in keys}
    for r in rows.values():
        if all(r[k] == want[k] for k in keys) and r["variant_id"] != variant_id:
            return r["variant_id"]
    return None


def contrasts_for(variants: pl.DataFrame, iters: pl.DataFrame, stats: pl.DataFrame, variant_id: int) -> dict[str, dict]:
    """The causal contrasts this run can make for one paced variant (as the reference)."""
    rows = _rows(variants)
    me = rows[variant_id]
    have = set(stats.filter(pl.col("n") > 0)["variant_id"].to_list())
    out: dict[str, dict] = {}
    base = find_baseline(variants, stats, variant_id)
    if me["pacing"] == "sleep":
        for name, pacing in (("spin_vs_sleep", "spin"), ("keepalive_vs_sleep", "keepalive")):
            alt = find_sibling(variants, variant_id, pacing=pacing)
            if alt is not None and alt in have and base[1] == "continuous":
                out[name] = contrast(iters, stats, variant_id, alt, base[0], base[0])
    if me["launch"] == "eager":
        alt = find_sibling(variants, variant_id, launch="graph")
        if alt is not None and alt in have:
            alt_base = find_baseline(variants, stats, alt)
            out["graph_vs_eager"] = contrast(iters, stats, variant_id, alt, base[0] if base[1] == "continuous" else None,
                                             alt_base[0] if alt_base[1] == "continuous" else None)
    return out


# -- per variant -----------------------------------------------------------------------------------
def _tier_rows(m: pl.DataFrame, tiers: Any) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    levels = list(getattr(tiers, "levels", []) or [])
    labels = getattr(tiers, "labels", None)
    if len(levels) < 2 or labels is None or len(labels) != m.height:
        return None
    labels = np.asarray(labels)
    slow = m.filter(pl.Series(labels == len(levels) - 1))
    fast = m.filter(pl.Series(labels == 0))
    if slow.height == 0 or fast.height == 0:
        return None
    return slow, fast


def attribute_variant(variants: pl.DataFrame, iters: pl.DataFrame, stats: pl.DataFrame,
                      per_iter_tel: pl.DataFrame, variant_id: int, tiers: Any = None) -> dict[str, Any]:
    m = measured(iters, variant_id)
    base_id, base_kind = find_baseline(variants, stats, variant_id)
    out: dict[str, Any] = {"variant_id": variant_id, "baseline_id": base_id, "baseline_kind": base_kind,
                           "p50_ms": _p50(stats, variant_id)}
    b = measured(iters, base_id) if base_id is not None else None
    if b is not None and b.height and m.height:
        out["baseline_p50_ms"] = _p50(stats, base_id)
        out["ratio"] = (out["p50_ms"] / out["baseline_p50_ms"]) if out["p50_ms"] and out["baseline_p50_ms"] else None
        out["vs_baseline"] = decompose(m, b)
        out["clock_vs_baseline"] = compare_clocks(m, b, per_iter_tel, allow_gap_samples=False)
    # Clocks of the variant itself.
    t = m.select("variant_id", "iteration", "latency_ns").join(per_iter_tel, on=["variant_id", "iteration"], how="inner")
    corr, corr_on = None, None
    for col in ("sm_clock_busy_mhz", "sm_clock_mhz"):  # the clock while it worked, when sampled often enough
        if t.height and col in t.columns:
            t2 = t.drop_nulls(col)
            if t2.height >= MIN_CORR_POINTS:
                corr, corr_on = spearman(t2["latency_ns"].to_numpy(), t2[col].to_numpy()), col
                break
    out["clock"] = {**clock_summary(m, per_iter_tel), "corr_latency_sm_clock": corr,
                    "corr_clock": "busy samples" if corr_on == "sm_clock_busy_mhz" else "all samples" if corr_on else None}
    # Tiers: slowest against fastest tier of this variant.
    if tiers is not None and m.height:
        split = _tier_rows(m, tiers)
        if split is not None:
            slow, fast = split
            out["tiers"] = {
                "slow_iterations": int(slow.height), "fast_iterations": int(fast.height),
                "decomposition": decompose(slow, fast),
                "clock": compare_clocks(slow, fast, per_iter_tel, allow_gap_samples=True),
            }
    out["contrasts"] = contrasts_for(variants, iters, stats, variant_id)
    return out


def attribute(variants: pl.DataFrame, iters: pl.DataFrame, stats: pl.DataFrame, telemetry: pl.DataFrame | None,
              tiers: dict[int, Any] | None = None, per_iter_tel: pl.DataFrame | None = None) -> dict[int, dict]:
    """Attribution of every paced variant with measured iterations (see module doc)."""
    if per_iter_tel is None:
        per_iter_tel = iteration_telemetry(samples_to_iterations(iters, telemetry))
    have = set(stats.filter(pl.col("n") > 0)["variant_id"].to_list())
    out: dict[int, dict] = {}
    for row in variants.sort("variant_id").iter_rows(named=True):
        vid = row["variant_id"]
        if is_paced(row) and vid in have:
            out[vid] = attribute_variant(variants, iters, stats, per_iter_tel, vid, (tiers or {}).get(vid))
    return out
