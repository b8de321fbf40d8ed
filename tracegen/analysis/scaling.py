"""Batch scaling: latency, per-image time, throughput and efficiency against batch size; the knee;
a saturation class; the largest batch within a latency budget; clocks and power per batch.

Definitions (batch-scenario variants, grouped by pacing/launch/sync mode/pipeline; each batch
size runs back to back):

* ``per_image_ms`` = p50 latency / batch; ``throughput_ips`` = batch * 1000 / p50 latency
  (images per second; the median, so a few outliers in a short batch variant do not move it).
* ``efficiency`` against linear scaling = throughput(b) / ((b / b0) * throughput(b0)), where b0 is
  the smallest batch measured (normally 1); equal to latency(b0) / latency(b).
* ``throughput_gain`` = highest throughput / throughput(b0).
* **Knee**: the smallest batch whose throughput reaches ``KNEE_FRACTION`` (90 %) of the highest
  throughput measured: past it, batching costs latency for at most 10 % more images per second.
* **Saturation class** (needs a largest batch >= ``MIN_SPAN`` x b0, else ``undetermined``):

  - ``saturated at batch 1``: throughput_gain < ``SATURATED_GAIN`` (1.5): one input already
    fills the device, batching buys little (the seed's Xavier: 11.23 -> 8.98 ms per image from
    batch 1 to 32, a 1.25x gain).
  - ``launch-bound``: gain >= 1.5 and the latency barely grows at the second batch size
    (efficiency there >= ``LAUNCH_EFFICIENCY``, 0.8: per-image time falls nearly as 1/b) and,
    where GPU times exist, the infer enqueue at b0 is >= ``LAUNCH_ENQUEUE_RATIO`` (0.8) x its GPU
    time (the GPU waits for the host). On a host backend the latency criterion alone means
    per-call overhead dominates.
  - ``scaling`` otherwise: batching uses more of the device.
* **Budget**: the largest batch whose p99 latency (p50 where p99 is missing) fits
  ``budget_ms``. p99 because a budget is a deadline every frame must meet.
* Clocks and power per batch: medians of the GPU telemetry samples tagged with the variant.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from tracegen.units import as_float

KNEE_FRACTION = 0.9
SATURATED_GAIN = 1.5
LAUNCH_EFFICIENCY = 0.8
LAUNCH_ENQUEUE_RATIO = 0.8
MIN_SPAN = 4

SATURATED = "saturated at batch 1"
LAUNCH_BOUND = "launch-bound"
SCALING = "scaling"
UNDETERMINED = "undetermined"

_GROUP = ("pacing", "launch", "sync_mode", "pipeline")




def telemetry_per_variant(telemetry: pl.DataFrame | None) -> dict[int, dict[str, float | None]]:
    """Median SM clock, power and temperature of the GPU samples of each variant."""
    if telemetry is None or telemetry.height == 0 or "sm_clock_mhz" not in telemetry.columns:
        return {}
    gpu = telemetry.filter(pl.col("variant_id").is_not_null() & pl.col("sm_clock_mhz").is_not_null())
    if gpu.height == 0:
        return {}
    agg = gpu.group_by("variant_id").agg(
        pl.col("sm_clock_mhz").median(), pl.col("power_w").median(), pl.col("temperature_c").median(),
        pl.len().alias("n_samples"))
    return {r["variant_id"]: {"sm_clock_mhz": as_float(r["sm_clock_mhz"]), "power_w": as_float(r["power_w"]),
                              "temperature_c": as_float(r["temperature_c"]), "n_samples": int(r["n_samples"])}
            for r in agg.iter_rows(named=True)}


def curve(rows: list[dict], tel: dict[int, dict]) -> list[dict[str, Any]]:
    """Per batch size: latency, per-image time, throughput, efficiency, infer host/GPU time,
    clocks and power. ``rows`` are variant_stats rows of one group, any order."""
    rows = sorted((r for r in rows if r.get("p50_ms")), key=lambda r: r["batch"])
    if not rows:
        return []
    b0, lat0 = rows[0]["batch"], rows[0]["p50_ms"]
    thr0 = b0 * 1000.0 / lat0
    out = []
    for r in rows:
        thr = r["batch"] * 1000.0 / r["p50_ms"]
        t = tel.get(r["variant_id"], {})
        out.append({
            "batch": int(r["batch"]), "variant_id": int(r["variant_id"]),
            "p50_ms": as_float(r["p50_ms"]), "p99_ms": as_float(r.get("p99_ms")),
            "per_image_ms": r["p50_ms"] / r["batch"], "throughput_ips": thr,
            "efficiency": thr / ((r["batch"] / b0) * thr0),
            "infer_host_ms": as_float(r.get("infer_host_p50_ms")), "infer_gpu_ms": as_float(r.get("infer_gpu_p50_ms")),
            "sm_clock_mhz": t.get("sm_clock_mhz"), "power_w": t.get("power_w"), "temperature_c": t.get("temperature_c"),
        })
    return out


def knee(points: list[dict]) -> int | None:
    """Smallest batch reaching KNEE_FRACTION of the highest throughput."""
    if not points:
        return None
    top = max(p["throughput_ips"] for p in points)
    return next(p["batch"] for p in points if p["throughput_ips"] >= KNEE_FRACTION * top)


def classify(points: list[dict]) -> tuple[str, str]:
    """(saturation class, one-line reason); see module doc for the thresholds."""
    if len(points) < 2:
        return UNDETERMINED, "fewer than two batch sizes measured"
    b0, bmax = points[0]["batch"], points[-1]["batch"]
    if bmax < MIN_SPAN * b0:
        return UNDETERMINED, f"largest batch {bmax} is less than {MIN_SPAN}x the smallest ({b0}); measure larger batches"
    gain = max(p["throughput_ips"] for p in points) / points[0]["throughput_ips"]
    if gain < SATURATED_GAIN:
        return SATURATED, (f"throughput grows only {gain:.2f}x from batch {b0} to the best batch "
                           f"(< {SATURATED_GAIN}x): one input already keeps the device busy")
    eff2 = points[1]["efficiency"]
    enq, gpu = points[0].get("infer_host_ms"), points[0].get("infer_gpu_ms")
    latency_flat = eff2 >= LAUNCH_EFFICIENCY
    if gpu:
        enqueue_bound = enq is not None and enq >= LAUNCH_ENQUEUE_RATIO * gpu
        if latency_flat and enqueue_bound:
            return LAUNCH_BOUND, (f"latency barely grows from batch {b0} to {points[1]['batch']} (efficiency {eff2:.2f}) "
                                  f"and the infer enqueue takes {enq:.3g} ms against {gpu:.3g} ms of GPU time: "
                                  "the GPU waits for the host to launch work")
    elif latency_flat:
        return LAUNCH_BOUND, (f"latency barely grows from batch {b0} to {points[1]['batch']} (efficiency {eff2:.2f}): "
                              "per-call overhead dominates at small batch")
    return SCALING, f"throughput grows {gain:.2f}x from batch {b0}; batching uses more of the device"


def within_budget(points: list[dict], budget_ms: float) -> dict[str, Any]:
    """Largest batch whose p99 (else p50) latency fits the budget."""
    fits = [p for p in points if (p["p99_ms"] if p["p99_ms"] is not None else p["p50_ms"]) <= budget_ms]
    if not fits:
        return {"budget_ms": budget_ms, "budget_stat": "p99", "largest_batch_within_budget": None,
                "budget_note": f"no batch size meets {budget_ms:g} ms at p99 (batch {points[0]['batch']}: "
                               f"{(points[0]['p99_ms'] or points[0]['p50_ms']):.3g} ms)"}
    best = max(fits, key=lambda p: p["batch"])
    return {"budget_ms": budget_ms, "budget_stat": "p99", "largest_batch_within_budget": best["batch"],
            "budget_throughput_ips": best["throughput_ips"], "budget_p99_ms": best["p99_ms"] or best["p50_ms"]}


def _group_summary(key: tuple, rows: list[dict], tel: dict, budget_ms: float | None) -> dict[str, Any] | None:
    pts = curve(rows, tel)
    if not pts:
        return None
    cls, reason = classify(pts)
    best = max(pts, key=lambda p: p["throughput_ips"])
    out: dict[str, Any] = {
        "group": dict(zip(_GROUP, key)),
        "group_label": f"{key[1]}, sync-{key[2]}, {key[3]}",
        "batches": ", ".join(str(p["batch"]) for p in pts),
        "reference_batch": pts[0]["batch"],
        "saturation_class": cls,
        "class_reason": reason,
        "knee_batch": knee(pts),
        "knee_rule": f"smallest batch reaching {KNEE_FRACTION:.0%} of the highest throughput",
        "best_batch": best["batch"],
        "max_throughput_ips": best["throughput_ips"],
        "throughput_gain": best["throughput_ips"] / pts[0]["throughput_ips"],
        "per_image_ms_reference": pts[0]["per_image_ms"],
        "per_image_ms_best": best["per_image_ms"],
    }
    if budget_ms is not None:
        out.update(within_budget(pts, budget_ms))
    clocks = [p["sm_clock_mhz"] for p in pts if p["sm_clock_mhz"] is not None]
    if clocks:
        out["sm_clock_mhz_range"] = f"{min(clocks):.0f}-{max(clocks):.0f}"
    powers = [p["power_w"] for p in pts if p["power_w"] is not None]
    if powers:
        out["power_w_range"] = f"{min(powers):.0f}-{max(powers):.0f}"
    out["curve"] = pts
    return out


def batch_scaling(stats: pl.DataFrame, telemetry: pl.DataFrame | None = None, *,
                  budget_ms: float | None = None) -> dict[str, Any] | None:
    """Scaling summary of the batch scenario, or None without batch variants.

    Top-level keys describe the primary group (most batch sizes, then highest throughput); every
    group is under ``groups``. ``stats`` is ``stats.variant_stats``."""
    batch = stats.filter((pl.col("scenario") == "batch") & (pl.col("n") > 0) & pl.col("p50_ms").is_not_null())
    if batch.height == 0:
        return None
    tel = telemetry_per_variant(telemetry)
    groups: dict[tuple, list[dict]] = {}
    for r in batch.iter_rows(named=True):
        groups.setdefault(tuple(r[k] for k in _GROUP), []).append(r)
    summaries = []
    for key, rows in groups.items():
        by_batch: dict[int, dict] = {}
        for r in sorted(rows, key=lambda r: r["variant_id"]):
            by_batch.setdefault(r["batch"], r)
        s = _group_summary(key, list(by_batch.values()), tel, budget_ms)
        if s:
            summaries.append(s)
    if not summaries:
        return None
    summaries.sort(key=lambda s: (-len(s["curve"]), -s["max_throughput_ips"]))
    primary = dict(summaries[0])
    primary["groups"] = summaries
    return primary
