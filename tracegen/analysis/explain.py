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

from tracegen.analysis.attribution import contrast, find_sibling, has_gpu_times, measured
from tracegen.analysis.facts import (
    Facts,
    iteration_numbers,
    name,
    nsys_hint,
    paced_ids,
    per_variant,
    ranges,
    row,
    schedule_of,
    stat,
)
from tracegen.analysis.model import Finding, Mitigation
from tracegen.units import NS_PER_MS, as_float

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
@per_variant
def tier_facts(f: Facts, vid: int) -> dict[str, Any] | None:
    """The tiers of a paced variant when they pass the thresholds (TIER_RATIO between slowest
    and fastest level, and between slowest level and the continuous baseline; slower tiers
    holding >= MIN_TIER_SHARE and >= MIN_TIER_ITERS iterations), and the slowest level >=
    TIER_RATIO x the slowest level of the baseline's own tiers when it has some (a no-gap
    baseline with the same levels means the gap did not cause them). Slow tiers only at the start,
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
    own = baseline_levels(f, a.get("baseline_id")) if base else []
    if len(own) >= 2 and high < TIER_RATIO * own[-1]:
        return None  # the no-gap baseline has these levels too: the tiers are not the gap's
    summary = f.tier_summaries.get(vid) or {}
    start, final = summary.get("start_tier"), summary.get("final_tier")
    if start is None:
        tail = labels[-10:][labels[-10:] >= 0]
        start, final = int(labels[0]), (int(np.bincount(tail).argmax()) if tail.size else 0)
    if start is not None and final is not None and start > 0 and final == 0 and not _slow_after_first_segment(
            f, vid, labels, numbers):
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


def _slow_after_first_segment(f: Facts, vid: int, labels: np.ndarray, numbers: np.ndarray) -> bool:
    """For a scheduled variant (``--schedule``): whether the slower tiers hold at least
    MIN_TIER_ITERS and MIN_TIER_SHARE of the iterations after its first scheduled change. A
    warm-up ends inside the first segment (as ``warmup-too-short`` judges it), so a schedule
    that starts with gaps and ends without them is slow first and fast last by design, not
    warming up. False for a variant without a schedule."""
    schedule = schedule_of(f, vid)
    if not schedule or not schedule.get("change_points"):
        return False
    first = int(np.searchsorted(numbers, int(schedule["change_points"][0])))
    later = int((labels[first:] > 0).sum())
    return later >= MIN_TIER_ITERS and later >= MIN_TIER_SHARE * labels.size


def baseline_levels(f: Facts, vid: int | None) -> list[float]:
    """The tier levels of a continuous variant that hold >= MIN_TIER_SHARE of its iterations."""
    t = f.tiers.get(vid) if vid is not None else None
    summary = f.tier_summaries.get(vid) or {}
    levels = [] if t is None or getattr(t, "levels", None) is None else list(t.levels)
    shares = summary.get("shares") or []
    return [float(x) for x, s in zip(levels, shares) if s >= MIN_TIER_SHARE]


@per_variant
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
    r = row(f, vid)
    keep = find_sibling(f.variants, vid, pacing="keepalive") if r["pacing"] != "keepalive" else None
    keep_dec = (f.attribution.get(keep, {}).get("vs_baseline") or {}) if keep is not None else {}
    contrasts = dict(a.get("contrasts", {}))
    if keep_dec and "keepalive_vs_sleep" not in contrasts and a.get("baseline_kind") == "continuous":
        base = a["baseline_id"]  # a spin variant against its keep-alive sibling, like sleep's contrast
        contrasts["keepalive_vs_sleep"] = contrast(f.iters, f.stats, vid, keep, base, base)
    return {"variant_id": vid, "row": r, "tiers": tiers, "gap": gap, "kind": kind,
            "decomposition": dec, "clock": clock, "attribution": a, "contrasts": contrasts,
            "gpu": has_gpu_times(f.iters), "keepalive_gpu_extra_ms": keep_dec.get("gpu_extra_ms") if keep_dec else None}


SLOW_RATIO = 1.05  # a paced variant is slower than its baseline: p50 >= 1.05 x the baseline p50 ...
SLOW_MIN_MS = 0.02  # ... and >= 0.02 ms above it (and its trimmed mean above the baseline's), or it has tiers


def is_slow(f: Facts, vid: int) -> bool:
    """The one definition of a slowdown that every idle finding and the verdict share."""
    a = f.attribution.get(vid, {})
    p50, base = a.get("p50_ms"), a.get("baseline_p50_ms")
    if a.get("baseline_kind") != "continuous" or not p50 or not base:
        return False
    mean_extra = (a.get("vs_baseline") or {}).get("extra_ms")
    slower = p50 >= SLOW_RATIO * base and p50 - base >= SLOW_MIN_MS and (mean_extra or 0) > 0
    return slower or tier_facts(f, vid) is not None


def cases(f: Facts) -> list[dict[str, Any]]:
    """Every paced variant slower than its baseline (``is_slow``)."""
    out = []
    for vid in paced_ids(f):
        if not is_slow(f, vid):
            continue
        tf, gp = tier_facts(f, vid), gap_penalty(f, vid)
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


def gpu_idle_share(case: dict) -> float | None:
    """The share of the extra time that keep-alive removes from the GPU's own compute (the
    keep-alive loop also wakes the host, so its latency gain alone does not show GPU idling)."""
    dec = (case["attribution"].get("vs_baseline") or {})
    base_extra = dec.get("extra_ms")
    kept = case.get("keepalive_gpu_extra_ms")
    if kept is None or not base_extra or base_extra <= 0:
        return None
    return min(1.0, max(0.0, ((dec.get("gpu_extra_ms") or 0.0) - kept) / base_extra))


def explain_gpu_idle(case: dict) -> dict[str, Any] | None:
    """GPU idling explains the slowdown: keep-alive removes >= REMOVES_MOST (50 %) of the extra
    time from the GPU's own compute (``gpu_idle_share``); without a keep-alive variant, >=
    GPU_SHARE (60 %) of the extra time sits in GPU compute (and copies) while the SM clock stayed
    within CLOCK_DROP (measured, not assumed). A keep-alive variant that removes less rules it out."""
    c = case["contrasts"].get("keepalive_vs_sleep")
    ex = extra(case)
    gpu = case["decomposition"].get("gpu_extra_ms") or 0.0
    clock = case["clock"]
    if c is not None and c.get("removed_fraction") is not None:
        share = gpu_idle_share(case)
        if share is not None and share >= REMOVES_MOST:
            return {"measured": True, "contrast": c, "gpu_extra_ms": gpu, "extra_ms": ex, "gpu_share": share}
        return None
    if case["row"]["pacing"] == "keepalive":
        return None  # the GPU was kept busy: idling cannot be the cause
    steady = clock is not None and clock.get("sm_clock_drop") is not None and abs(clock["sm_clock_drop"]) < CLOCK_DROP
    if ex > 0 and gpu >= GPU_SHARE * ex and steady:
        return {"measured": False, "contrast": None, "gpu_extra_ms": gpu, "extra_ms": ex,
                "sm_clock_mhz": clock["slow"]["sm_clock_mhz"], "baseline_sm_clock_mhz": clock["fast"]["sm_clock_mhz"]}
    return None


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

