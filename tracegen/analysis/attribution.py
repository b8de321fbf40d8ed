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
* **Clocks**: ``analysis.clocks`` (telemetry joined to iterations, clock comparisons).
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

from tracegen.analysis.clocks import (  # noqa: F401  (REASON_*, samples/iteration telemetry: re-exported)
    MIN_CORR_POINTS,
    REASON_BITS,
    REASON_LABELS,
    clock_summary,
    compare_clocks,
    iteration_telemetry,
    samples_to_iterations,
    spearman,
)
from tracegen.units import NS_PER_MS, as_float


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


# -- small helpers ---------------------------------------------------------------------------------


def measured(iters: pl.DataFrame, variant_id: int | None = None) -> pl.DataFrame:
    """Measured (non-warm-up) iterations, optionally of one variant, in iteration order.

    The per-iteration frame is sorted by variant and iteration, so these rows are usually one
    block of it: then the block itself (a zero-copy slice; the rules ask for the same variant
    many times, and a copy of 5 x 10^5 rows each time is what a big run's analysis spent its
    time and memory on), else a filtered, sorted copy."""
    keep = ~pl.col("warmup") if variant_id is None else ~pl.col("warmup") & (pl.col("variant_id") == variant_id)
    mask = iters.select(keep.alias("keep")).to_series()
    n = int(mask.sum())
    if n:
        first = int(mask.arg_max())
        block = iters.slice(first, n)
        if mask.slice(first, n).all() and _in_order(block, variant_id):
            return block
    return iters.filter(mask).sort("variant_id", "iteration")


def _in_order(frame: pl.DataFrame, variant_id: int | None) -> bool:
    """Sorted by (variant_id, iteration)."""
    if variant_id is not None:  # one variant (the mask held on every row): its iterations in order
        return frame["iteration"].is_sorted()
    step = pl.col("variant_id").diff()
    return bool(frame.select(((step > 0) | ((step == 0) & (pl.col("iteration").diff() >= 0))).all()).item())


def trim(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop whole iterations above the p99 latency (keeps the steps additive)."""
    return _trimmed(frame).collect()


def _trimmed(frame: pl.DataFrame) -> pl.LazyFrame:
    """``trim`` as a query: the means below read the kept rows without a copy of the frame."""
    if frame.height < 20:
        return frame.lazy()
    cut = frame["latency_ns"].quantile(0.99, "linear")
    return frame.lazy().filter(pl.col("latency_ns") <= cut)


def has_gpu_times(iters: pl.DataFrame) -> bool:
    return "infer_gpu_ns" in iters.columns and iters["infer_gpu_ns"].null_count() < iters.height


# -- step decomposition --------------------------------------------------------------------------------
_MEANS = {"latency": "latency_ns", **{f"{step}_{kind}": f"{step}_{kind}_ns"
                                      for step in ("preprocess", "h2d", "infer", "d2h", "sync", "postprocess")
                                      for kind in ("host", "gpu")}}


def step_means(frame: pl.DataFrame | pl.LazyFrame) -> dict[str, float | None]:
    """Mean ms of every raw step column and of the latency (no trimming here; a LazyFrame,
    e.g. ``_trimmed``, is read in one query). None where a column is absent or has no values."""
    lf = frame.lazy()
    have = {k: c for k, c in _MEANS.items() if c in lf.collect_schema()}
    row = lf.select([pl.col(c).cast(pl.Float64).mean().alias(k) for k, c in have.items()]).collect().row(0, named=True)
    return {k: (as_float(row[k] / NS_PER_MS) if row.get(k) is not None else None) for k in _MEANS}


def decompose(slow: pl.DataFrame, ref: pl.DataFrame) -> dict[str, Any]:
    """Where the latency difference between two sets of iterations goes (see module doc)."""
    a, b = step_means(_trimmed(slow)), step_means(_trimmed(ref))

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
    mean = _trimmed(measured(iters, vid)).select(pl.col("latency_ns").cast(pl.Float64).mean()).collect().item()
    return as_float(mean / NS_PER_MS) if mean is not None else None


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
