"""Scheduled gaps (``--schedule``): what each gap costs every variant against the variant's own
back-to-back (0 ms) segments, and what busy-waiting, keep-alive and a CUDA graph change about it.

A scheduled variant has no continuous sibling to be compared with (its back-to-back stretches
are inside it), so ``slow-after-gap`` and the verdicts, which need one, stay silent on it; and
``idle-delay-tiers`` speaks only of variants whose latency falls into separate tiers, which a
broad eager-launch distribution does not, even at twice the back-to-back latency.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tracegen.analysis import explain as X
from tracegen.analysis import mitigations as M
from tracegen.analysis.attribution import has_gpu_times, measured
from tracegen.analysis.facts import Facts, fmt_ranges, iteration_numbers, nsys_hint, paced_ids, row, schedule_of
from tracegen.analysis.model import Finding
from tracegen.analysis.registry import finding_kind
from tracegen.units import NS_PER_MS, ms_text, pct_text

GAP_COST = 1.05  # a scheduled gap costs time: its median >= 1.05x the variant's 0 ms segments ...
WARNING = 1.25  # ... warning from 1.25x (as slow-after-gap), info below
#: the contrasts, each as (pacing or launch that changes, the one it is compared with, mechanism, advice key)
CONTRASTS = (("spin", "sleep", "host wake-up", "busy_wait"), ("keepalive", "sleep", "GPU idling", "keepalive"),
             ("graph", "eager", "launch path", "cuda_graph"))


def _series(f: Facts, vid: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Iteration numbers of a variant's measured iterations and, per iteration, its latency, its
    GPU compute (every step's GPU time but the gap's; NaN without GPU times) and the median SM
    clock of the telemetry samples in it (NaN without samples), in ms and MHz."""
    m = measured(f.iters, vid)
    numbers = m["iteration"].to_numpy()
    gpu_cols = [c for c in m.columns if c.endswith("_gpu_ns") and c != "idle_gpu_ns"]
    gpu = (m.select(pl.sum_horizontal(gpu_cols)).to_series().to_numpy().astype(float) / NS_PER_MS
           if gpu_cols and has_gpu_times(f.iters) else np.full(numbers.size, np.nan))
    clock = np.full(numbers.size, np.nan)
    t = f.iter_telemetry
    if t is not None and t.height and "sm_clock_mhz" in t.columns:
        t = t.filter(pl.col("variant_id") == vid).drop_nulls("sm_clock_mhz")
        at = {int(i): float(c) for i, c in zip(t["iteration"].to_list(), t["sm_clock_mhz"].to_list())}
        clock = np.array([at.get(int(i), np.nan) for i in numbers])
    return numbers, {"latency": m["latency_ns"].to_numpy() / NS_PER_MS, "gpu": gpu, "clock": clock}


def _median(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else None


def gap_rows(f: Facts) -> list[dict]:
    """One row per scheduled variant, gap and pacing of its segments: median latency, GPU compute
    and SM clock there against the medians of the variant's own 0 ms segments."""
    out = []
    for vid in paced_ids(f):
        schedule = schedule_of(f, vid)
        if not schedule:
            continue
        numbers, series = _series(f, vid)
        where: dict[tuple[float, str], np.ndarray] = {}
        for seg in schedule["segments"]:
            lo = int(seg["start_iteration"])
            gap = float(seg["gap_ms"])
            key = (gap, "none" if gap == 0 else str(seg.get("pacing")))
            inside = (numbers >= lo) & (numbers < lo + int(seg["iterations"]))
            where[key] = where[key] | inside if key in where else inside
        where = {k: w for k, w in where.items() if w.any()}
        back = where.pop((0.0, "none"), None)
        if back is None or not where:
            continue
        base = {k: _median(v[back]) for k, v in series.items()}
        r = row(f, vid)
        for (gap, pacing), w in sorted(where.items()):
            med = {k: _median(v[w]) for k, v in series.items()}
            lat, b = med["latency"], base["latency"]
            out.append({"variant_id": vid, "variant": r["name"], "gap_ms": gap, "pacing": pacing,
                        "launch": r.get("launch"), "sync_mode": r.get("sync_mode"), "median_ms": lat,
                        "back_to_back_ms": b, "extra_ms": lat - b, "ratio": lat / b if b else None,
                        "gpu_ms": med["gpu"], "back_to_back_gpu_ms": base["gpu"],
                        "sm_clock_mhz": med["clock"], "back_to_back_sm_clock_mhz": base["clock"],
                        "iterations": int(w.sum())})
    return out


def _segments(f: Facts, vid: int, gap: float) -> tuple[tuple[int, int], ...]:
    """The (first, last) iteration numbers of the variant's scheduled segments with this gap."""
    return tuple((int(s["start_iteration"]), int(s["start_iteration"]) + int(s["iterations"]) - 1)
                 for s in schedule_of(f, vid)["segments"] if float(s["gap_ms"]) == gap)


def _costs(r: dict) -> bool:
    return r["ratio"] is not None and r["ratio"] >= GAP_COST and r["extra_ms"] >= X.GAP_MIN_MS


def _label(r: dict) -> str:
    return f"{r['pacing']} {r['launch']}" if r.get("launch") else r["pacing"]


def contrasts_at(rows: list[dict], worst: dict, gpu: bool) -> list[dict]:
    """At ``worst``'s gap, the share of the extra time each contrast removes, between rows that
    differ in that one setting (pacing or launch) alone. Without GPU times (a CPU run) only
    busy-waiting: keep-alive and CUDA graphs speak of a GPU."""
    def same(**change):
        want = {k: change.get(k, worst[k]) for k in ("gap_ms", "pacing", "launch", "sync_mode")}
        return next((x for x in rows if all(x[k] == v for k, v in want.items())), None)

    out = []
    for alt, ref, mechanism, key in CONTRASTS if gpu else CONTRASTS[:1]:
        field = "launch" if alt == "graph" else "pacing"
        a, b = same(**{field: alt}), same(**{field: ref})
        if a is None or b is None or b["extra_ms"] < X.GAP_MIN_MS:
            continue
        out.append({"contrast": f"{alt} vs {ref}", "mechanism": mechanism, "advice": key,
                    "ref_extra_ms": b["extra_ms"], "alt_extra_ms": a["extra_ms"],
                    "removed_fraction": (b["extra_ms"] - a["extra_ms"]) / b["extra_ms"]})
    return out


def _sentence(c: dict) -> str:
    """One contrast in words, with both variants' extra time."""
    alt, ref = c["contrast"].split(" vs ")
    what = {"spin": "Busy-waiting", "keepalive": "Keep-alive", "graph": "A CUDA graph"}[alt]
    both = f"+{ms_text(c['alt_extra_ms'])} with {alt} against +{ms_text(c['ref_extra_ms'])} with {ref}"
    whose = "the eager variant's" if alt == "graph" else "the"
    if c["removed_fraction"] >= X.REMOVES_MOST:
        return (f"{what} removes {pct_text(c['removed_fraction'])} of {whose} extra time ({both}): "
                f"the {c['mechanism']} pays for most of it.")
    if c["removed_fraction"] < X.RULED_OUT:
        return f"{what} does not help ({both}): not the {c['mechanism']}."
    return (f"{what} removes {pct_text(c['removed_fraction'])} of {whose} extra time ({both}): "
            f"the {c['mechanism']} explains part of it.")


def _gpu_extra(r: dict) -> float | None:
    return None if r["gpu_ms"] is None or r["back_to_back_gpu_ms"] is None else r["gpu_ms"] - r["back_to_back_gpu_ms"]


def _where(r: dict) -> str:
    """Where the headline's extra time sits (its GPU compute or not) and what the SM clock did."""
    out = ""
    g = _gpu_extra(r)
    if g is not None and r["extra_ms"] > 0:
        out += (f" Its GPU compute grows by {ms_text(g)} of the {ms_text(r['extra_ms'])} "
                f"({pct_text(min(max(g / r['extra_ms'], 0.0), 1.0))}): "
                + ("the GPU's own work takes longer after the gap." if g >= X.GPU_SHARE * r["extra_ms"]
                   else "most of the extra time is outside the GPU's work (host, launch, synchronisation)."))
    c, cb = r["sm_clock_mhz"], r["back_to_back_sm_clock_mhz"]
    if c is not None and cb:
        out += (f" SM clock unchanged ({c:.0f} MHz against {cb:.0f} MHz back to back)." if abs(c - cb) < X.CLOCK_DROP * cb
                else f" The SM clock is {pct_text(abs(cb - c) / cb)} {'lower' if c < cb else 'higher'} under the gap "
                     f"({c:.0f} MHz against {cb:.0f} MHz back to back).")
    return out


@finding_kind("scheduled-gap-cost", severities=("info", "warning"))
def rule_scheduled_gap_cost(f: Facts) -> Finding | None:
    """``scheduled-gap-cost``: in a run of ``--schedule`` variants with back-to-back (0 ms)
    segments, a scheduled gap whose segments have a median latency >= GAP_COST (1.05x) and >=
    GAP_MIN_MS (0.05 ms) above the same variant's 0 ms segments (``gap_rows``); at the costliest
    gap, the share of the extra time that busy-waiting, keep-alive and a CUDA graph remove
    (``contrasts_at``). Warning from WARNING (1.25x), info below."""
    rows = gap_rows(f)
    costly = [r for r in rows if _costs(r)]
    if not costly:
        return None
    # headline: the costliest row of a sleep-paced segment (what applications do), else the costliest
    worst = max(costly, key=lambda r: (r["pacing"] == "sleep", r["ratio"], -r["variant_id"]))
    gap = worst["gap_ms"]
    at_gap = sorted((r for r in rows if r["gap_ms"] == gap), key=lambda r: (-r["ratio"], r["variant_id"]))
    gpu = has_gpu_times(f.iters)
    cs = contrasts_at(rows, worst, gpu)
    summary = (f"Against each variant's own back-to-back segments, the scheduled {gap:g} ms gaps cost: "
               + ", ".join(f"{_label(r)} {r['ratio']:.2f}x ({'+' if r['extra_ms'] >= 0 else ''}{ms_text(r['extra_ms'])})"
                           for r in at_gap)
               + f". The costliest {'sleep-paced one' if worst['pacing'] == 'sleep' else 'one'} is {_label(worst)}: "
               f"{ms_text(worst['median_ms'])} median against {ms_text(worst['back_to_back_ms'])} back to back."
               + _where(worst)
               + "".join(" " + _sentence(c) for c in cs)
               + f" {len({r['variant_id'] for r in costly})} of {len({r['variant_id'] for r in rows})} scheduled "
               "variants are slower under some gap; the evidence has every gap and variant.")
    helps = [c for c in cs if c["removed_fraction"] >= X.REMOVES_MOST]
    mitigations = [M.advise(c["advice"], on=f, measured=True,
                            evidence=f"{c['contrast']} at {gap:g} ms: removes {pct_text(c['removed_fraction'])} of the "
                                     f"{ms_text(c['ref_extra_ms'])} the gap adds")
                   for c in helps] or ([M.advise("pipelining", on=f)] if gpu else [])
    numbers = iteration_numbers(f, worst["variant_id"])
    its, back_its = _segments(f, worst["variant_id"], gap), _segments(f, worst["variant_id"], 0.0)
    hint = nsys_hint(f, worst["variant_id"], its[:2], ("idle", "infer", "sync"),
                     compare=f"iterations {fmt_ranges(back_its[:2])} of the same range (back to back)")
    return Finding(
        id="scheduled-gap-cost", severity="warning" if worst["ratio"] >= WARNING else "info",
        title=f"Scheduled {gap:g} ms gaps cost {worst['ratio']:.2f}x over back to back ({_label(worst)})",
        summary=summary,
        evidence={"gap_ms": gap, "pacing": worst["pacing"], "launch": worst["launch"], "median_ms": worst["median_ms"],
                  "back_to_back_ms": worst["back_to_back_ms"], "extra_ms": worst["extra_ms"], "ratio": worst["ratio"],
                  "gpu_extra_ms": _gpu_extra(worst), "sm_clock_mhz": worst["sm_clock_mhz"],
                  "back_to_back_sm_clock_mhz": worst["back_to_back_sm_clock_mhz"],
                  "threshold": f"median >= {GAP_COST}x and >= {X.GAP_MIN_MS} ms above the variant's 0 ms segments",
                  "contrasts": [{k: c[k] for k in ("contrast", "mechanism", "ref_extra_ms", "alt_extra_ms",
                                                   "removed_fraction")} for c in cs],
                  "per_variant": [{k: r[k] for k in ("variant", "gap_ms", "pacing", "median_ms", "back_to_back_ms",
                                                     "extra_ms", "ratio", "gpu_ms", "back_to_back_gpu_ms")}
                                  for r in rows]},
        variants=tuple(dict.fromkeys([worst["variant_id"]] + [r["variant_id"] for r in costly])),
        iterations=its if numbers.size else (), mitigations=tuple(mitigations), nsys_hint=hint,
        chart="latency_trace")
