"""Batch scaling rules: saturation at batch 1 and the batch size for a latency budget."""

from __future__ import annotations

from tracegen.analysis.attribution import has_gpu_times
from tracegen.analysis.facts import Facts, name, nsys_hint
from tracegen.analysis.mitigations import advise
from tracegen.analysis.model import Finding
from tracegen.analysis.registry import finding_kind
from tracegen.analysis.scaling import SATURATED, SATURATED_GAIN
from tracegen.units import ms_text

# batch saturated at batch 1: scaling.SATURATED_GAIN (throughput gain < 1.5x over a >= 4x span of batch sizes)


def _scaling_groups(f: Facts) -> list[dict]:
    if not f.scaling:
        return []
    return list(f.scaling.get("groups") or [f.scaling])


@finding_kind("batch-saturated-at-batch-1", severities=("info",))
def rule_batch_saturated(f: Facts) -> Finding | None:
    """``batch-saturated-at-batch-1``: a batch group whose throughput grows less than
    SATURATED_GAIN (1.5x) from batch 1 to its best batch, over at least a 4x span of batch sizes
    (``scaling.classify``)."""
    sat = [g for g in _scaling_groups(f) if g["saturation_class"] == SATURATED]
    if not sat:
        return None
    g = max(sat, key=lambda g: len(g["curve"]))
    pts = g["curve"]
    b0 = pts[0]
    best = max(pts, key=lambda p: p["throughput_ips"])
    last = pts[-1]
    evidence = {
        "group": g["group_label"], "batches": g["batches"],
        "per_image_ms_batch1": b0["per_image_ms"], "per_image_ms_best": best["per_image_ms"],
        "best_batch": best["batch"], "throughput_gain": g["throughput_gain"],
        "knee_batch": g["knee_batch"], "latency_ms_largest_batch": last["p50_ms"], "largest_batch": last["batch"],
        "threshold": f"throughput gain < {SATURATED_GAIN}x from batch {b0['batch']} to the best batch",
    }
    evidence["device"] = "gpu" if has_gpu_times(f.iters) else "cpu"
    if b0.get("infer_gpu_ms") is not None:
        evidence["infer_gpu_ms_batch1"] = b0["infer_gpu_ms"]
    if g.get("sm_clock_mhz_range"):
        evidence["sm_clock_mhz_range"] = g["sm_clock_mhz_range"]
    return Finding(
        id="batch-saturated-at-batch-1", severity="info",
        title=f"Batching barely helps: the device is saturated at batch {b0['batch']}",
        summary=(f"Per-image time goes only from {ms_text(b0['per_image_ms'])} at batch {b0['batch']} to "
                 f"{ms_text(best['per_image_ms'])} at batch {best['batch']} ({g['throughput_gain']:.2f}x throughput), "
                 f"while latency grows to {ms_text(last['p50_ms'])} at batch {last['batch']}. One input already keeps "
                 f"the device busy ({g['group_label']}); batching trades latency for almost no throughput. "
                 f"The knee (90 % of the best throughput) is batch {g['knee_batch']}."),
        evidence=evidence, variants=tuple(p["variant_id"] for p in pts),
        mitigations=(advise("reduce_work", on=f, knee=g["knee_batch"] or 1),),
        nsys_hint=nsys_hint(f, b0["variant_id"], (), ("infer",),
                            compare=f'"{name(f, last["variant_id"])}": '
                                    + ("the kernels take proportionally longer, the gaps between them do not shrink"
                                       if evidence["device"] == "gpu" else "the infer step takes proportionally longer")),
        chart="batch_scaling")


@finding_kind("batch-budget", severities=("info", "warning"))
def rule_batch_budget(f: Facts) -> Finding | None:
    """``batch-budget``: with ``--budget-ms``, the largest batch whose p99 latency fits it
    (info), or that none does (warning)."""
    if f.budget_ms is None or not f.scaling:
        return None
    g = f.scaling
    pts = g["curve"]
    b = g.get("largest_batch_within_budget")
    if b is None:
        first = pts[0]
        return Finding(
            id="batch-budget", severity="warning",
            title=f"No batch size meets the {f.budget_ms:g} ms latency budget",
            summary=(f"Even batch {first['batch']} takes {ms_text(first['p99_ms'] or first['p50_ms'])} at p99 "
                     f"({g['group_label']}), above the {f.budget_ms:g} ms budget."),
            evidence={"budget_ms": f.budget_ms, "budget_stat": "p99", "smallest_batch": first["batch"],
                      "p99_ms_smallest_batch": first["p99_ms"] or first["p50_ms"], "group": g["group_label"]},
            variants=(first["variant_id"],),
            mitigations=(advise("reduce_work", on=f, knee=1),) + ((advise("cuda_graph", on=f),) if has_gpu_times(f.iters) else ()),
            nsys_hint=nsys_hint(f, first["variant_id"], (), ("infer", "sync")), chart="batch_scaling")
    p = next(p for p in pts if p["batch"] == b)
    return Finding(
        id="batch-budget", severity="info",
        title=f"Batch {b} is the largest that fits {f.budget_ms:g} ms at p99",
        summary=(f"At batch {b}, p99 latency is {ms_text(p['p99_ms'] or p['p50_ms'])} and throughput "
                 f"{p['throughput_ips']:.0f} images/s ({g['group_label']}); the knee is batch {g['knee_batch']} and "
                 f"the best throughput {g['max_throughput_ips']:.0f} images/s at batch {g['best_batch']}."),
        evidence={"budget_ms": f.budget_ms, "budget_stat": "p99", "recommended_batch": b,
                  "p99_ms": p["p99_ms"] or p["p50_ms"], "throughput_ips": p["throughput_ips"],
                  "knee_batch": g["knee_batch"], "best_batch": g["best_batch"], "group": g["group_label"]},
        variants=(p["variant_id"],), mitigations=(), nsys_hint="", chart="batch_scaling")
