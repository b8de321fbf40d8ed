"""Steady-state rules on continuous variants: enqueue-bound, transfer-bound, unstable GPU time."""

from __future__ import annotations

import polars as pl

from tracegen.analysis.attribution import measured
from tracegen.analysis.facts import Facts, continuous_ids, is_paced, max_sm_clock, name, nsys_hint, row, stat
from tracegen.analysis.mitigations import advise, lock_clocks
from tracegen.analysis.model import Finding
from tracegen.analysis.registry import finding_kind
from tracegen.analysis.stats import column_ms
from tracegen.units import NS_PER_MS, as_float, ms_text

ENQUEUE_RATIO = 0.8  # enqueue-bound: median infer enqueue >= 0.8 x median infer GPU time
TRANSFER_SHARE = 0.5  # transfer-bound: median (h2d + d2h GPU time) >= 0.5 x median infer GPU time
GPU_COV = 0.10  # unstable GPU time: CoV of infer GPU time (1 % trimmed each side) above 0.10 ...
GPU_ROBUST_COV = 0.05  # ... and its robust spread (IQR / 1.349 / median) >= 0.05: the bulk varies, not a few spikes
MIN_COV_POINTS = 20  # ... over at least 20 measured iterations


def _graph_evidence(f: Facts, vid: int) -> tuple[str | None, bool]:
    """Measured effect of a CUDA graph for a continuous eager variant (same batch/sync/pipeline)."""
    r0 = row(f, vid)
    if r0["launch"] != "eager":
        return None, False
    for r in f.variants.iter_rows(named=True):
        if (r["launch"] == "graph" and not is_paced(r) and r["scenario"] == r0["scenario"]
                and all(r[k] == r0[k] for k in ("batch", "sync_mode", "pipeline"))):
            g, e = stat(f, r["variant_id"], "p50_ms"), stat(f, vid, "p50_ms")
            ge, ee = stat(f, r["variant_id"], "infer_host_p50_ms"), stat(f, vid, "infer_host_p50_ms")
            if g and e:
                txt = f"graph p50 {ms_text(g)} vs eager {ms_text(e)} ({e / g:.2f}x)"
                if ge is not None and ee is not None:
                    txt += f"; enqueue {ms_text(ge)} vs {ms_text(ee)}"
                return txt, True
    return None, False


def _cuda_graph(f: Facts, vid: int):
    ev, done = _graph_evidence(f, vid)
    return advise("cuda_graph", on=f, measured=done, evidence=ev)


def _batching(f: Facts):
    g = f.scaling
    if not g or len(g.get("curve", [])) < 2:
        return advise("batching", on=f)
    pts = g["curve"]
    best = max(pts, key=lambda p: p["throughput_ips"])
    return advise("batching", on=f, measured=True, evidence=(
        f"per-image time {ms_text(pts[0]['per_image_ms'])} at batch {pts[0]['batch']} -> "
        f"{ms_text(best['per_image_ms'])} at batch {best['batch']} ({g['group_label']})"))


def _strip_ids(hits: list[dict]) -> list[dict]:
    return [{k: v for k, v in x.items() if k != "variant_id"} for x in hits]


@finding_kind("enqueue-bound", severities=("warning",))
def rule_enqueue_bound(f: Facts) -> Finding | None:
    """``enqueue-bound``: in a continuous variant, the median infer enqueue (host) time is
    >= ENQUEUE_RATIO (0.8) x the median infer GPU time: the GPU waits for the host to launch."""
    hits = []
    for vid in continuous_ids(f):
        enq, gpu = stat(f, vid, "infer_host_p50_ms"), stat(f, vid, "infer_gpu_p50_ms")
        if enq is not None and gpu and enq >= ENQUEUE_RATIO * gpu:
            hits.append({"variant": name(f, vid), "variant_id": vid, "enqueue_ms": enq, "gpu_ms": gpu,
                         "ratio": enq / gpu, "p50_ms": stat(f, vid, "p50_ms")})
    if not hits:
        return None
    hits.sort(key=lambda h: (-h["ratio"], h["variant_id"]))
    h = hits[0]
    vid = h["variant_id"]
    mitigations = [_cuda_graph(f, vid)] if row(f, vid)["launch"] == "eager" else []
    mitigations.append(_batching(f))
    cls = f.scaling.get("saturation_class") if f.scaling else None
    summary = (f"In {h['variant']}, enqueueing the network takes {ms_text(h['enqueue_ms'])} on the host against "
               f"{ms_text(h['gpu_ms'])} of GPU time ({h['ratio']:.2f}x): the GPU waits for Python and the launch "
               f"path, not for its own compute.")
    if len(hits) > 1:
        summary += f" {len(hits)} continuous variants cross the threshold."
    if cls == "launch-bound":
        summary += " Batch scaling agrees: latency barely grows at small batch sizes."
    return Finding(
        id="enqueue-bound", severity="warning", title=f"Enqueue-bound: host launch time ≈ GPU time ({h['ratio']:.2f}x)",
        summary=summary,
        evidence={"enqueue_ms": h["enqueue_ms"], "gpu_ms": h["gpu_ms"], "ratio": h["ratio"],
                  "threshold": f"median infer enqueue >= {ENQUEUE_RATIO} x median infer GPU time",
                  "per_variant": _strip_ids(hits)},
        variants=tuple(x["variant_id"] for x in hits), mitigations=tuple(mitigations),
        nsys_hint=nsys_hint(f, vid, (), ("infer",),
                            compare="the gaps between kernels on the GPU row: they are the host launching the next one"),
        chart="step_breakdown")


@finding_kind("transfer-bound", severities=("warning",))
def rule_transfer_bound(f: Facts) -> Finding | None:
    """``transfer-bound``: in a continuous full-pipeline variant, the median of h2d + d2h GPU
    time per iteration is >= TRANSFER_SHARE (0.5) x the median infer GPU time."""
    hits = []
    for vid in continuous_ids(f):
        m = measured(f.iters, vid)
        if not all(c in m.columns for c in ("h2d_gpu_ns", "infer_gpu_ns")):
            continue
        copies = m.select((pl.col("h2d_gpu_ns").fill_null(0) + (pl.col("d2h_gpu_ns").fill_null(0)
                                                                 if "d2h_gpu_ns" in m.columns else pl.lit(0)))
                          .alias("c"))["c"]
        if m["h2d_gpu_ns"].null_count() == m.height:
            continue
        cp, gpu = as_float(copies.median() / NS_PER_MS), column_ms(m, "infer_gpu_ns")
        if cp is not None and gpu and cp >= TRANSFER_SHARE * gpu:
            hits.append({"variant": name(f, vid), "variant_id": vid, "copies_ms": cp, "h2d_ms": column_ms(m, "h2d_gpu_ns"),
                         "d2h_ms": column_ms(m, "d2h_gpu_ns"), "infer_gpu_ms": gpu, "ratio": cp / gpu})
    if not hits:
        return None
    hits.sort(key=lambda h: (-h["ratio"], h["variant_id"]))
    h = hits[0]
    return Finding(
        id="transfer-bound", severity="warning",
        title=f"Transfer-bound: copies take {h['ratio']:.2f}x the inference's GPU time",
        summary=(f"In {h['variant']}, host-to-device and device-to-host copies take {ms_text(h['copies_ms'])} on the GPU "
                 f"(h2d {ms_text(h['h2d_ms'])}, d2h {ms_text(h['d2h_ms'])}) against {ms_text(h['infer_gpu_ms'])} of "
                 f"inference: PCIe traffic, not compute, limits every frame."),
        evidence={"copies_ms": h["copies_ms"], "infer_gpu_ms": h["infer_gpu_ms"], "ratio": h["ratio"],
                  "threshold": f"median (h2d + d2h GPU time) >= {TRANSFER_SHARE} x median infer GPU time",
                  "per_variant": _strip_ids(hits)},
        variants=tuple(x["variant_id"] for x in hits), mitigations=(advise("transfers", on=f), advise("pipelining", on=f)),
        nsys_hint=nsys_hint(f, h["variant_id"], (), ("h2d", "d2h"),
                            compare='the "infer" step: the memcpy rows are longer than the kernels'),
        chart="step_breakdown")


def _clock_cov(f: Facts, m: pl.DataFrame) -> float | None:
    """CoV of the SM clock over the iterations of ``m`` (None with fewer than 3 samples)."""
    if f.iter_telemetry is None or not f.iter_telemetry.height:
        return None
    c = m.select("variant_id", "iteration").join(f.iter_telemetry, on=["variant_id", "iteration"])
    c = c["sm_clock_mhz"].drop_nulls() if "sm_clock_mhz" in c.columns else pl.Series([], dtype=pl.Float64)
    return as_float(c.std() / c.mean()) if c.len() >= 3 and c.mean() else None


@finding_kind("unstable-gpu-time", severities=("warning",))
def rule_unstable_gpu_time(f: Facts) -> Finding | None:
    """``unstable-gpu-time``: in a continuous variant with >= MIN_COV_POINTS measured
    iterations, the CoV (std / mean) of the infer GPU time, after dropping the top and bottom
    1 %, is above GPU_COV (0.10), and the robust spread (IQR / 1.349 / median) is at least
    GPU_ROBUST_COV (0.05), so a handful of spikes in a steady series does not count."""
    hits = []
    for vid in continuous_ids(f):
        m = measured(f.iters, vid)
        if "infer_gpu_ns" not in m.columns:
            continue
        g = m["infer_gpu_ns"].drop_nulls().cast(pl.Float64)
        if g.len() < MIN_COV_POINTS:
            continue
        lo, hi = g.quantile(0.01, "linear"), g.quantile(0.99, "linear")
        t = g.filter((g >= lo) & (g <= hi))
        mean = t.mean()
        cov = as_float(t.std() / mean) if mean else None
        med = g.median()
        robust = as_float((g.quantile(0.75, "linear") - g.quantile(0.25, "linear")) / 1.349 / med) if med else None
        if cov is not None and cov > GPU_COV and robust is not None and robust >= GPU_ROBUST_COV:
            enq, gmed = stat(f, vid, "infer_host_p50_ms"), stat(f, vid, "infer_gpu_p50_ms")
            hits.append({"variant": name(f, vid), "variant_id": vid, "cov": cov, "robust_cov": robust,
                         "p50_ms": as_float(g.median() / NS_PER_MS),
                         "p99_ms": as_float(g.quantile(0.99, "linear") / NS_PER_MS),
                         "launch_bound": bool(enq is not None and gmed and enq >= ENQUEUE_RATIO * gmed),
                         "sm_clock_cov": _clock_cov(f, m)})
    if not hits:
        return None
    hits.sort(key=lambda h: (-h["cov"], h["variant_id"]))
    h = hits[0]
    summary = (f"In {h['variant']}, the inference's GPU time varies with a CoV of {h['cov']:.2f} "
               f"(p50 {ms_text(h['p50_ms'])}, p99 {ms_text(h['p99_ms'])}) with no gap between inferences.")
    mitigations = [advise("isolate_gpu", on=f)]
    if h["launch_bound"]:
        summary += (" The GPU time follows the host enqueue here (launch-bound), so the jitter comes from the host "
                    "launching kernels, not from the GPU.")
        mitigations.insert(0, _cuda_graph(f, h["variant_id"]))
    if h["sm_clock_cov"] is not None and h["sm_clock_cov"] > 0.02:
        summary += f" The SM clock moved too (CoV {h['sm_clock_cov']:.2f})."
        mitigations.insert(0, lock_clocks(max_sm_clock(f)))
    return Finding(
        id="unstable-gpu-time", severity="warning", title=f"Unstable GPU time (CoV {h['cov']:.2f})",
        summary=summary,
        evidence={"cov": h["cov"], "p50_ms": h["p50_ms"], "p99_ms": h["p99_ms"],
                  "robust_cov": h["robust_cov"],
                  "threshold": f"CoV of infer GPU time (1 % trimmed) > {GPU_COV} and IQR/1.349/median >= {GPU_ROBUST_COV}",
                  "per_variant": _strip_ids(hits)},
        variants=tuple(x["variant_id"] for x in hits), mitigations=tuple(mitigations),
        nsys_hint=nsys_hint(f, h["variant_id"], (), ("infer",), compare="the slowest and fastest iterations side by side"),
        chart="latency_trace")
