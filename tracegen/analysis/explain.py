"""Idle slowdowns and their explanation: which paced variants are slower than their baseline
(tiers or a uniform gap penalty), what the run's own contrasts and clocks say about why, and the
mitigations that fit.

Contrasts (``attribution``): ``removed_fraction`` = the fraction of a sleep variant's extra time
over the baseline that busy-waiting (``spin``), keep-alive or a CUDA graph removes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from tracegen.analysis import mitigations as M
from tracegen.analysis.attribution import component_label, has_gpu_times, measured
from tracegen.analysis.facts import (
    Facts,
    iteration_numbers,
    name,
    nsys_hint,
    paced_ids,
    ranges,
    row,
    stat,
)
from tracegen.analysis.model import Finding, Mitigation
from tracegen.units import NS_PER_MS, as_float, ms_text, pct_text

# -- thresholds ----------------------------------------------------------------------------------
TIER_RATIO = 1.15  # tiers: slowest level >= 1.15 x fastest level (and x the continuous baseline)
MIN_TIER_SHARE = 0.05  # tiers: slower tiers hold >= 5 % of the measured iterations ...
MIN_TIER_ITERS = 5  # ... and at least 5 iterations
GAP_RATIO = 1.05  # slow after gap: the p10 latency of a paced variant >= 1.05 x the baseline p50 ...
GAP_MIN_MS = 0.05  # ... and >= 0.05 ms above it (below that, timer and scheduling noise)
CLOCK_DROP = 0.05  # clock explanation: SM clock >= 5 % lower in the slow iterations ...
CLOCK_EXPLAINS = 0.25  # ... and the drop accounts for >= 25 % of the extra time (GPU time x f_fast/f_slow)
REMOVES_MOST = 0.5  # a contrast (spin / keepalive vs sleep) that removes >= 50 % of the extra time explains it
RULED_OUT = 0.2  # ... one that removes < 20 % rules its mechanism out
HOST_SHARE = 0.6  # without a spin variant: >= 60 % of the extra time in host steps (pre/post, sync wait)
GPU_SHARE = 0.6  # without a keepalive variant: >= 60 % of the extra time in GPU compute, clocks steady


# -- which paced variants are slow -----------------------------------------------------------------
def tier_facts(f: Facts, vid: int) -> dict[str, Any] | None:
    """The tiers of a paced variant when they pass the thresholds (TIER_RATIO between slowest
    and fastest level, and between slowest level and the continuous baseline; slower tiers
    holding >= MIN_TIER_SHARE and >= MIN_TIER_ITERS iterations). Slow tiers only at the start,
    ending in the fastest tier, are a warm-up and left to ``warmup-too-short``. Onset and settle come from
    ``tiers.tier_summary`` (as iteration numbers); without a summary, onset is the first of
    >= 3 consecutive iterations in a slower tier and settle the first iteration in the slowest
    tier from which >= 90 % of the remaining iterations are in it."""
    t = f.tiers.get(vid)
    if t is None:
        return None
    levels = [float(x) for x in (getattr(t, "levels", None) if getattr(t, "levels", None) is not None else [])]
    labels = getattr(t, "labels", None)
    if len(levels) < 2 or labels is None:
        return None
    labels = np.asarray(labels).astype(int)
    numbers = iteration_numbers(f, vid)
    if labels.size != numbers.size or labels.size == 0:
        return None
    low, high = levels[0], levels[-1]
    if not low or high < TIER_RATIO * low:
        return None
    slower = labels > 0
    top = labels == len(levels) - 1
    if slower.sum() < MIN_TIER_ITERS or slower.mean() < MIN_TIER_SHARE:
        return None
    a = f.attribution.get(vid, {})
    base = a.get("baseline_p50_ms") if a.get("baseline_kind") == "continuous" else None
    if base and high < TIER_RATIO * base:
        return None
    summary = f.tier_summaries.get(vid) or {}
    start, final = summary.get("start_tier"), summary.get("final_tier")
    if start is None:
        tail = labels[-10:][labels[-10:] >= 0]
        start, final = int(labels[0]), (int(np.bincount(tail).argmax()) if tail.size else 0)
    if start is not None and final is not None and start > 0 and final == 0:
        return None  # slow first, fast afterwards: a warm-up (``warmup-too-short``), not an idle effect
    if "onset" in summary:  # the tier module's definitions, so the finding and the tier table agree
        onset_idx, settle_idx = summary.get("onset"), summary.get("settle")
    else:
        onset_idx = int(np.flatnonzero(slower)[0])
        run = np.convolve(slower.astype(int), np.ones(3, dtype=int), mode="valid")
        hit = np.flatnonzero(run == 3)
        if hit.size:
            onset_idx = int(hit[0])
        suffix_top = np.cumsum(top[::-1])[::-1] / np.arange(top.size, 0, -1)
        cand = np.flatnonzero(top & (suffix_top >= 0.9))
        settle_idx = int(cand[0]) if cand.size else None
    return {
        "variant_id": vid, "levels_ms": levels,
        "shares": [float(np.mean(labels == k)) for k in range(len(levels))],
        "slower_share": float(slower.mean()), "low_ms": low, "high_ms": high, "baseline_ms": base,
        "ratio_high_low": high / low, "ratio_to_baseline": (high / base) if base else None,
        "onset_iteration": int(numbers[onset_idx]) if onset_idx is not None else None,
        "settle_iteration": int(numbers[settle_idx]) if settle_idx is not None else None,
        "switch_rate": float(np.mean(labels[1:] != labels[:-1])) if labels.size > 1 else 0.0,
        "slow_ranges": ranges(numbers, slower),
        "n": int(labels.size),
    }


def gap_penalty(f: Facts, vid: int) -> dict[str, Any] | None:
    """A paced variant in which (nearly) every iteration is slower than the continuous
    baseline: its p10 latency >= GAP_RATIO (1.05) x and >= GAP_MIN_MS above the baseline p50.
    (The p10, not a tier level: a tier's mean can include part of a ramp.)"""
    a = f.attribution.get(vid, {})
    base = a.get("baseline_p50_ms")
    if a.get("baseline_kind") != "continuous" or not base:
        return None
    m = measured(f.iters, vid)
    if m.height == 0:
        return None
    p10 = as_float(m["latency_ns"].cast(pl.Float64).quantile(0.10, "linear") / NS_PER_MS)
    if p10 is None or p10 < GAP_RATIO * base or p10 - base < GAP_MIN_MS:
        return None
    return {"variant_id": vid, "level_ms": p10, "baseline_ms": base, "extra_ms": p10 - base, "ratio": p10 / base,
            "p50_ms": stat(f, vid, "p50_ms"), "tiered": tier_facts(f, vid) is not None}


def case_of(f: Facts, vid: int, *, tiers: dict | None, gap: dict | None, use_tiers: bool) -> dict[str, Any] | None:
    """One slowdown to explain: the decomposition and clock comparison that fit it (slowest vs
    fastest tier for tiers, variant vs baseline for a uniform penalty) and the contrasts."""
    a = f.attribution.get(vid, {})
    if use_tiers and a.get("tiers"):
        dec, clock, kind = a["tiers"]["decomposition"], a["tiers"]["clock"], "tiers"
    else:
        dec, clock, kind = a.get("vs_baseline"), a.get("clock_vs_baseline"), "gap"
    if dec is None:
        return None
    return {"variant_id": vid, "row": row(f, vid), "tiers": tiers, "gap": gap, "kind": kind,
            "decomposition": dec, "clock": clock, "attribution": a, "contrasts": a.get("contrasts", {}),
            "gpu": has_gpu_times(f.iters)}


def cases(f: Facts) -> list[dict[str, Any]]:
    """Every paced variant with a slowdown (tiers and/or a gap penalty)."""
    out = []
    for vid in paced_ids(f):
        tf, gp = tier_facts(f, vid), gap_penalty(f, vid)
        if tf is None and gp is None:
            continue
        c = case_of(f, vid, tiers=tf, gap=gp, use_tiers=tf is not None)
        if c is not None:
            out.append(c)
    return out


def extra(case: dict) -> float:
    return case["decomposition"].get("extra_ms") or 0.0


# -- mechanisms --------------------------------------------------------------------------------------
def explain_clock(case: dict) -> dict[str, Any] | None:
    """The SM clock explains the slowdown: >= CLOCK_DROP (5 %) lower in the slow iterations
    (busy samples; for tiers, samples of the same variant's gap allowed) and the GPU time that
    drop implies (reference GPU time x (f_fast / f_slow - 1)) covers >= CLOCK_EXPLAINS (25 %)
    of the extra time. Flat clocks never pass."""
    c = case["clock"]
    if not c or c.get("sm_clock_drop") is None or c["sm_clock_drop"] < CLOCK_DROP:
        return None
    ex = extra(case)
    if ex <= 0:
        return None
    fast, slow = c["fast"]["sm_clock_mhz"], c["slow"]["sm_clock_mhz"]
    dec = case["decomposition"]
    basis = dec.get("reference_gpu_ms") or dec.get("reference_ms")
    implied = basis * (fast / slow - 1.0) if basis and slow else None
    share = min(1.0, implied / ex) if implied is not None else None
    if share is None or share < CLOCK_EXPLAINS:
        return None
    return {"fast_mhz": fast, "slow_mhz": slow, "drop": c["sm_clock_drop"], "implied_extra_ms": implied,
            "explained_share": share, "busy_only": c["busy_only"], "n_slow": c["slow"]["n_clock_samples"],
            "n_fast": c["fast"]["n_clock_samples"],
            # reasons while the GPU worked when the clocks are from busy samples (GpuIdle in a gap says nothing)
            "reasons_slow": c["slow"]["reasons_busy"] if c["busy_only"] else c["slow"]["reasons"],
            "reasons_fast": c["fast"]["reasons_busy"] if c["busy_only"] else c["fast"]["reasons"],
            "corr": case["attribution"].get("clock", {}).get("corr_latency_sm_clock")}


def explain_host(case: dict) -> dict[str, Any] | None:
    """Host wake-up explains the slowdown (sleep pacing only): the busy-wait (spin) variant
    removes >= REMOVES_MOST (50 %) of the extra time; without a spin variant, >= HOST_SHARE
    (60 %) of the extra time sits in host-only steps (preprocess, postprocess) and the sync
    wait. A spin variant that removes < 50 % rules it out."""
    if case["row"]["pacing"] != "sleep":
        return None
    c = case["contrasts"].get("spin_vs_sleep")
    comps = case["decomposition"].get("components_ms", {})
    host = sum(max(0.0, comps.get(k, 0.0)) for k in ("preprocess", "postprocess", "sync_wait"))
    ex = extra(case)
    base = {"host_extra_ms": host, "extra_ms": ex, "cpu_freq_drop": (case["clock"] or {}).get("cpu_freq_drop"),
            "sync_wait_ms": comps.get("sync_wait")}
    if c is not None and c.get("removed_fraction") is not None:
        return {"measured": True, "contrast": c, **base} if c["removed_fraction"] >= REMOVES_MOST else None
    if ex > 0 and host >= HOST_SHARE * ex:
        return {"measured": False, "contrast": None, **base}
    return None


def explain_gpu_idle(case: dict) -> dict[str, Any] | None:
    """GPU idling explains the slowdown: the keep-alive variant removes >= REMOVES_MOST (50 %)
    of the extra time; without one, >= GPU_SHARE (60 %) of the extra time sits in GPU compute
    (and copies) while the SM clock stayed within CLOCK_DROP (measured, not assumed). A
    keep-alive variant that removes < 50 % rules it out."""
    c = case["contrasts"].get("keepalive_vs_sleep")
    ex = extra(case)
    gpu = case["decomposition"].get("gpu_extra_ms") or 0.0
    clock = case["clock"]
    if c is not None and c.get("removed_fraction") is not None:
        if c["removed_fraction"] >= REMOVES_MOST:
            return {"measured": True, "contrast": c, "gpu_extra_ms": gpu, "extra_ms": ex}
        return None
    if case["row"]["pacing"] == "keepalive":
        return None  # the GPU was kept busy: idling cannot be the cause
    steady = clock is not None and clock.get("sm_clock_drop") is not None and abs(clock["sm_clock_drop"]) < CLOCK_DROP
    if ex > 0 and gpu >= GPU_SHARE * ex and steady:
        return {"measured": False, "contrast": None, "gpu_extra_ms": gpu, "extra_ms": ex,
                "sm_clock_mhz": clock["slow"]["sm_clock_mhz"], "baseline_sm_clock_mhz": clock["fast"]["sm_clock_mhz"]}
    return None


def ruled_out(case: dict) -> list[str]:
    out = []
    for key, what in (("spin_vs_sleep", "busy-waiting (CPU wake-up)"), ("keepalive_vs_sleep", "keep-alive (GPU idling)"),
                      ("graph_vs_eager", "a CUDA graph (launch overhead)")):
        c = case["contrasts"].get(key)
        if c and c.get("removed_fraction") is not None and c["removed_fraction"] < RULED_OUT:
            r = c["removed_fraction"]
            out.append(f"{what} does not remove it ({pct_text(r)})" if r < 0.05 else f"{what} removes only {pct_text(r)} of it")
    return out


def explained(case: dict) -> bool:
    return bool(explain_clock(case) or explain_host(case) or explain_gpu_idle(case))


def diagnosis(case: dict) -> str:
    """One paragraph: where the extra time sits, which mechanisms explain it and which this run
    rules out."""
    parts = []
    if explain_clock(case):
        parts.append("the SM clock dropped")
    if explain_host(case):
        parts.append("the host wakes up late")
    if explain_gpu_idle(case):
        parts.append("the GPU idles between frames")
    dec = case["decomposition"]
    dom = dec.get("dominant_step")
    text = ""
    if dom:
        text = f"The extra time sits mostly in {component_label(dom, case.get('gpu', True))} ({pct_text(dec.get('dominant_share'))})."
    if parts:
        text += " Explained by: " + "; ".join(parts) + " (see the findings below)."
    ruled = ruled_out(case)
    if ruled:
        text += " Ruled out by this run: " + "; ".join(ruled) + "."
        if dom == "infer_host" and case.get("gpu", True) and any("busy-waiting" in r for r in ruled):
            text += (" With the CPU kept awake the enqueue is still slow, so the submission path (driver and GPU "
                     "front end coming out of idle) is the likely cause.")
    if not parts and not ruled:
        text += " This run has no variant that isolates the mechanism."
    return text.strip()


# -- what to do ----------------------------------------------------------------------------------------
def contrast_mitigations(case: dict, *, clock: bool, max_clock: tuple[float | None, str] | None = None) -> list[Mitigation]:
    """Mitigations for an idle slowdown: measured ones that helped first, untested ones after;
    measured ones that did not help are left out (they are in the diagnosis)."""
    cs = case["contrasts"]
    gpu = case.get("gpu", True)
    helped, untested = [], []
    for key, make in (("spin_vs_sleep", M.busy_wait), ("keepalive_vs_sleep", M.keepalive)):
        if key == "keepalive_vs_sleep" and not gpu:
            continue  # nothing to keep busy on a host backend
        c = cs.get(key)
        if c is None or c.get("removed_fraction") is None:
            if case["row"]["pacing"] == "sleep":
                untested.append(make(None))
        elif c["removed_fraction"] >= RULED_OUT:
            helped.append((c["removed_fraction"], make(c)))
    g = cs.get("graph_vs_eager")
    if g is not None and g.get("removed_fraction") is not None:
        if g["removed_fraction"] >= RULED_OUT:
            helped.append((g["removed_fraction"], M.advise("cuda_graph", measured=True, evidence=(
                f"graph {ms_text(g['alt_p50_ms'])} vs eager {ms_text(g['ref_p50_ms'])} p50 at the same gap; removes "
                f"{pct_text(g['removed_fraction'])} of the gap's extra time"))))
    elif gpu and case["row"]["launch"] == "eager" and case["decomposition"].get("dominant_step") == "infer_host":
        untested.append(M.advise("cuda_graph"))
    out = [m for _, m in sorted(helped, key=lambda x: -x[0])]
    if clock:
        out.insert(0, M.lock_clocks(max_clock))
    if any(r >= REMOVES_MOST for r, _ in helped):
        untested = []  # a measured fix exists: do not pad the list with guesses
    return out + untested + ([M.advise("pipelining")] if gpu else [])


def measure_flags(f: Facts) -> str | None:
    """Flags for the variants that would isolate the mechanism and this run lacks (keep-alive
    and CUDA graphs only on GPU runs)."""
    gpu = has_gpu_times(f.iters)
    pac = set(f.variants["pacing"].to_list())
    launch = set(f.variants["launch"].to_list())
    want = {"sleep", "spin", "keepalive"} if gpu else {"sleep", "spin"}
    need = []
    if not want <= pac:
        need.append("--pacing " + ",".join(sorted(want)))
    if gpu and "graph" not in launch:
        need.append("--launch eager,graph")
    return " ".join(need) or None


_STEP_OF = {"preprocess": "preprocess", "h2d": "h2d", "infer_host": "infer", "infer_gpu": "infer", "d2h": "d2h",
            "sync_wait": "sync", "postprocess": "postprocess"}


def focus_steps(case: dict | None, default: tuple[str, ...] = ("infer", "sync")) -> tuple[str, ...]:
    """NVTX step categories to open: the step carrying the extra time first."""
    dom = ((case or {}).get("decomposition") or {}).get("dominant_step")
    if not dom:
        return default
    first = _STEP_OF[dom]
    return (first,) + tuple(s for s in default if s != first)


# -- the explained-* findings share their shape ----------------------------------------------------------
def hits(f: Facts, explain: Callable[[dict], dict | None]) -> list[tuple[dict, dict]]:
    """(case, explanation) of every slowdown ``explain`` accounts for, sleep-paced and largest first."""
    out = [(c, e) for c in cases(f) for e in [explain(c)] if e is not None]
    out.sort(key=lambda h: (h[0]["row"]["pacing"] != "sleep", -extra(h[0]), h[0]["variant_id"]))
    return out


def explained_finding(f: Facts, fid: str, found: list[tuple[dict, dict]], title: Callable[[dict, dict], str],
                      summary: Callable[[dict, dict], str], evidence: Callable[[dict, dict], dict],
                      mitigations: Callable[[dict, dict], list[Mitigation]], steps: tuple[str, ...],
                      chart: str, per_variant: Callable[[dict, dict], dict]) -> Finding:
    """The finding of an explanation (``fid``): the first of ``found`` as headline, the others
    in ``per_variant``."""
    case, ex = found[0]
    vid = case["variant_id"]
    tf = case["tiers"]
    its = tf["slow_ranges"] if tf else ()
    s = summary(case, ex)
    if len(found) > 1:
        s += f" The same holds in {len(found) - 1} more paced variant{'s' if len(found) > 2 else ''}."
    ev = evidence(case, ex)
    ev["per_variant"] = [per_variant(c, e) for c, e in found]
    base = case["attribution"].get("baseline_id")
    variants = [c["variant_id"] for c, _ in found]
    if base is not None:
        variants.insert(1, base)
    return Finding(
        id=fid, severity="warning", title=title(case, ex), summary=s, evidence=ev,
        variants=tuple(dict.fromkeys(variants)), iterations=its, mitigations=tuple(mitigations(case, ex)),
        nsys_hint=nsys_hint(f, vid, its[:2], steps,
                            compare=f'the range "{name(f, base)}" (no gap)' if base is not None else None),
        chart=chart)

