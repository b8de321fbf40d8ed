"""Idle-delay rules: latency tiers after a gap, the gap penalty, and the two mechanisms the
run's contrasts can isolate (host wake-up, GPU idling). The clock mechanism is in ``power``."""

from __future__ import annotations

from typing import Any

import numpy as np

from tracegen.analysis import explain as X
from tracegen.analysis import verdict as V
from tracegen.analysis.attribution import find_sibling, has_gpu_times
from tracegen.analysis.facts import (
    Facts,
    fmt_ranges,
    gap_label,
    iteration_numbers,
    max_sm_clock,
    median_by_gap,
    name,
    nsys_hint,
    paced_ids,
    ranges,
    row,
    schedule_of,
    stat,
)
from tracegen.analysis.mitigations import advise, busy_wait, keepalive
from tracegen.analysis.model import Finding, Mitigation
from tracegen.analysis.registry import finding_kind
from tracegen.units import ms_text, pct_text

TIER_CRITICAL = 1.5  # tiers: slowest level >= 1.5 x baseline is critical (the seed saw 2.1x)
GAP_WARNING = 1.25  # slow after gap: warning from 1.25x, info below


def _per_variant_tiers(f: Facts, tfs: list[dict]) -> list[dict]:
    rows = []
    for t in tfs:
        r = row(f, t["variant_id"])
        rows.append({"variant": r["name"], "gap_ms": r["idle_ms"], "pacing": r["pacing"],
                     "levels_ms": " / ".join(f"{x:.3g}" for x in t["levels_ms"]),
                     "slower_share": t["slower_share"], "onset_iteration": t["onset_iteration"],
                     "settle_iteration": t["settle_iteration"], "ratio_to_baseline": t["ratio_to_baseline"]})
    return rows


def _idle_mitigations(f: Facts, v: V.Verdict | None) -> list[Mitigation]:
    """What to do about one slowdown: its verdict's advice (``verdict.advice``)."""
    if v is not None:
        return V.advice(f, v)
    out = [advise("pipelining", on=f)] if has_gpu_times(f.iters) else []
    flags = X.measure_flags(f)
    return out + ([advise("measure", on=f, flags=flags)] if flags else [])


@finding_kind("idle-delay-tiers", severities=("warning", "critical"))
def rule_idle_tiers(f: Facts) -> Finding | None:
    """``idle-delay-tiers``: a paced variant whose latency has >= 2 tiers with the slowest
    >= TIER_RATIO (1.15x) the fastest and the continuous baseline, the slower tiers holding
    >= 5 % (and >= 5) of the measured iterations (``explain.tier_facts``). Critical when the
    slowest tier is >= TIER_CRITICAL (1.5x) the baseline (or the fastest tier, without a baseline)."""
    tfs = [t for t in (X.tier_facts(f, vid) for vid in paced_ids(f)) if t is not None]
    if not tfs:
        return None
    # headline: the worst sleep-paced variant (what applications do; it carries the contrasts), else the worst
    tfs.sort(key=lambda t: (row(f, t["variant_id"])["pacing"] != "sleep",
                            -(t["ratio_to_baseline"] or t["ratio_high_low"]), t["variant_id"]))
    t = tfs[0]
    vid = t["variant_id"]
    r = row(f, vid)
    ratio = t["ratio_to_baseline"] or t["ratio_high_low"]
    severity = "critical" if ratio >= TIER_CRITICAL else "warning"
    case = next((c for c in X.cases(f) if c["variant_id"] == vid), None)
    v = V.verdict_of(f, vid)
    levels = " -> ".join(ms_text(x) for x in t["levels_ms"])
    shape = "alternates between" if t["switch_rate"] > 0.25 else "moves through"
    schedule = schedule_of(f, vid)
    by_gap = median_by_gap(f, vid, schedule) if schedule else {}
    lead = (f"With the gaps of the schedule {schedule['spec']} ({r['pacing']}; {r['name']})" if schedule
            else f"With a {gap_label(r)} before each inference ({r['name']})")
    summary = (f"{lead}, latency {shape} {len(t['levels_ms'])} tiers: {levels}. The slowest tier is "
               f"{t['ratio_high_low']:.2f}x the fastest")
    if t["baseline_ms"]:
        summary += f" and {t['ratio_to_baseline']:.2f}x the continuous baseline ({ms_text(t['baseline_ms'])})"
    if t["onset_iteration"] is not None:
        # the share belongs to the slower tiers together, not to the slowest one
        summary += (f"; slower tiers start at iteration {t['onset_iteration']} and take "
                    f"{pct_text(t['slower_share'])} of measured iterations"
                    + (f", the slowest from iteration {t['settle_iteration']} on"
                       if t["settle_iteration"] is not None else "") + ".")
    else:
        summary += (f"; the slow iterations ({pct_text(t['slower_share'])}) are at iterations "
                    f"{fmt_ranges(t['slow_ranges'])}.")
    if by_gap:
        summary += " Median latency by scheduled gap: " + ", ".join(
            f"{gap:g} ms: {ms_text(ms)}" for gap, ms in by_gap.items()) + "."
    if len(tfs) > 1:
        summary += f" {len(tfs)} paced variants show tiers."
    if v is not None:
        summary += " " + V.explanation(f, v)
    variants = [x["variant_id"] for x in tfs]
    base = f.attribution.get(vid, {}).get("baseline_id")
    if base is not None and f.attribution[vid].get("baseline_kind") == "continuous":
        variants.insert(1, base)
    first = t["slow_ranges"][0] if t["slow_ranges"] else None
    fast_hint = None
    if first:
        numbers = iteration_numbers(f, vid)
        if first[0] > int(numbers[0]):  # fast before the first slow iterations
            fast = ((int(numbers[0]), first[0] - 1),)
        else:  # slow from the start (a schedule that starts with gaps): the longest fast run
            labels = np.asarray(f.tiers[vid].labels)
            fast = ranges(numbers, labels == 0, keep=1) if labels.size == numbers.size else ()
        if fast:
            fast_hint = f"iterations {fmt_ranges(fast)} of the same range (fast tier)"
    return Finding(
        id="idle-delay-tiers", severity=severity,
        title=(f"Latency tiers under the gap schedule {schedule['spec']}" if schedule else
               f"Latency tiers after a {r['idle_ms']:g} ms gap") + f": {ms_text(t['low_ms'])} -> {ms_text(t['high_ms'])} ({ratio:.2f}x)",
        summary=summary,
        evidence={"gap_ms": r["idle_ms"], "pacing": r["pacing"], "levels_ms": t["levels_ms"],
                  "shares": t["shares"], "slowest_ms": t["high_ms"], "fastest_ms": t["low_ms"],
                  "baseline_ms": t["baseline_ms"], "ratio_to_baseline": t["ratio_to_baseline"],
                  "ratio_slowest_fastest": t["ratio_high_low"], "onset_iteration": t["onset_iteration"],
                  "settle_iteration": t["settle_iteration"], "slower_share": t["slower_share"],
                  "dominant_step": (case or {}).get("decomposition", {}).get("dominant_step"),
                  "threshold": f"slowest tier >= {X.TIER_RATIO}x the fastest and the baseline; critical from {TIER_CRITICAL}x",
                  "per_variant": _per_variant_tiers(f, tfs),
                  **({"schedule": schedule["spec"], "median_ms_by_gap": {f"{gap:g}": ms for gap, ms in by_gap.items()}}
                     if schedule else {})},
        variants=tuple(dict.fromkeys(variants)), iterations=t["slow_ranges"], mitigations=tuple(_idle_mitigations(f, v)),
        nsys_hint=nsys_hint(f, vid, t["slow_ranges"][:2], X.focus_steps(case), compare=fast_hint),
        chart="latency_trace")


@finding_kind("slow-after-gap", severities=("info", "warning"))
def rule_slow_after_gap(f: Facts) -> Finding | None:
    """``slow-after-gap``: with pacing every iteration follows a gap, so "the first iteration
    after a gap" is every iteration of a paced variant, measured against the continuous baseline
    (the gap starts at the iteration's idle step; the work after it is the iteration's latency):
    the paced variant's p10 >= GAP_RATIO (1.05x) and >= GAP_MIN_MS (0.05 ms) above the baseline
    p50 (``explain.gap_penalty``). Warning from GAP_WARNING (1.25x), info below."""
    gps = [g for g in (X.gap_penalty(f, vid) for vid in paced_ids(f)) if g is not None]
    if not gps:
        return None
    gps.sort(key=lambda g: (row(f, g["variant_id"])["pacing"] != "sleep", -g["ratio"], g["variant_id"]))
    g = gps[0]
    vid = g["variant_id"]
    r = row(f, vid)
    a = f.attribution.get(vid, {})
    dec = a.get("vs_baseline") or {}
    case = {"variant_id": vid, "row": r, "decomposition": dec, "clock": a.get("clock_vs_baseline"),
            "attribution": a, "contrasts": a.get("contrasts", {}), "tiers": None, "gap": g, "kind": "gap",
            "gpu": has_gpu_times(f.iters)}
    v = V.verdict_of(f, vid)
    per_gap = []
    for x in sorted(gps, key=lambda x: (row(f, x["variant_id"])["idle_ms"], x["variant_id"])):
        rx = row(f, x["variant_id"])
        per_gap.append({"variant": rx["name"], "gap_ms": rx["idle_ms"], "pacing": rx["pacing"], "p10_ms": x["level_ms"],
                        "baseline_ms": x["baseline_ms"], "extra_ms": x["extra_ms"], "ratio": x["ratio"],
                        "dominant_step": (f.attribution.get(x["variant_id"], {}).get("vs_baseline") or {}).get("dominant_step")})
    summary = (f"Inferences after a {gap_label(r)} take {ms_text(g['p50_ms'])} (p50) against {ms_text(g['baseline_ms'])} "
               f"back to back; even the fastest 10 % take {ms_text(g['level_ms'])} (+{ms_text(g['extra_ms'])}, "
               f"{g['ratio']:.2f}x), so the gap itself costs time on every frame, not only in slow tiers."
               + (" " + V.explanation(f, v) if v is not None else ""))
    severity = "warning" if g["ratio"] >= GAP_WARNING else "info"
    numbers = iteration_numbers(f, vid)
    its = ((int(numbers[0]), int(numbers[-1])),) if numbers.size else ()
    base = a.get("baseline_id")
    return Finding(
        id="slow-after-gap", severity=severity,
        title=f"Inferences after a {r['idle_ms']:g} ms gap are {g['ratio']:.2f}x slower than back to back",
        summary=summary,
        evidence={"gap_ms": r["idle_ms"], "pacing": r["pacing"], "p50_ms": g["p50_ms"], "p10_ms": g["level_ms"],
                  "baseline_ms": g["baseline_ms"], "extra_ms": g["extra_ms"], "ratio": g["ratio"],
                  "dominant_step": dec.get("dominant_step"), "dominant_share": dec.get("dominant_share"),
                  "threshold": f"p10 >= {X.GAP_RATIO}x and >= {X.GAP_MIN_MS} ms above the continuous baseline p50",
                  "per_variant": per_gap},
        variants=tuple(dict.fromkeys([vid] + ([base] if base is not None else []) + [x["variant_id"] for x in gps])),
        iterations=its, mitigations=tuple(_idle_mitigations(f, v)),
        nsys_hint=nsys_hint(f, vid, ((int(numbers[0]), int(numbers[min(4, numbers.size - 1)])),) if numbers.size else (),
                            X.focus_steps(case, ("idle", "infer", "sync")),
                            compare=f'the range "{name(f, base)}" (no gap)' if base is not None else None),
        chart="step_breakdown")


def _sync_evidence(f: Facts, vid: int) -> tuple[str | None, bool]:
    """p50 of the same variant under the other sync modes this run measured."""
    r = row(f, vid)
    parts = []
    for mode in ("spin", "yield", "blocking", "auto"):
        if mode == r["sync_mode"]:
            continue
        sib = find_sibling(f.variants, vid, sync_mode=mode)
        p = stat(f, sib, "p50_ms") if sib is not None else None
        if p is not None:
            parts.append(f"sync-{mode} {ms_text(p)}")
    if not parts:
        return None, False
    return f"p50 sync-{r['sync_mode']} {ms_text(stat(f, vid, 'p50_ms'))} vs " + ", ".join(parts), True


def _measured_summary(c: dict, what: str, alt: str, share: float | None = None) -> str:
    """The first sentence of a measured explanation: sleep vs the contrast's alternative."""
    k = c["contrast"]
    return (f"latency is {ms_text(k['ref_p50_ms'])} p50; {what} {alt} {ms_text(k['alt_p50_ms'])} "
            f"({k['ratio_of_medians']:.2f}x), removing {pct_text(k['removed_fraction'] if share is None else share)} of the "
            f"{ms_text(k['ref_extra_ms'])} the gap adds. ")


@finding_kind("explained-host-wakeup", severities=("warning",))
def rule_explained_host_wakeup(f: Facts) -> Finding | None:
    """``explained-host-wakeup``: an idle slowdown of a sleep-paced variant that busy-waiting
    removes (>= 50 % of the extra time), or, without a spin variant, whose extra time sits
    >= 60 % in host-only steps and the sync wait (``explain.explain_host``)."""
    hits = X.hits(f, X.explain_host)
    if not hits:
        return None

    def title(c, e):
        if e["measured"]:
            return f"Host wake-up after sleep: busy-waiting removes {pct_text(e['contrast']['removed_fraction'])} of the extra time"
        return f"Host wake-up after sleep: {pct_text(e['host_extra_ms'] / e['extra_ms'])} of the extra time is on the host"

    def summary(c, e):
        if e["measured"]:
            text = f"After a {gap_label(c['row'])}, " + _measured_summary(e, "with a busy-wait instead of sleep", "it is")
        else:
            text = (f"After a {gap_label(c['row'])}, {ms_text(e['host_extra_ms'])} of the {ms_text(e['extra_ms'])} extra "
                    f"time sits in host steps (pre/postprocess and the sync wait), not on the GPU. ")
        text += "The sleeping thread's core drops into an idle state and lower frequency, and pays to come back."
        if e.get("cpu_freq_drop") is not None and e["cpu_freq_drop"] >= 0.05:
            text += f" The CPU frequency was {pct_text(e['cpu_freq_drop'])} lower in the slow iterations."
        if _sync_heavy(e):
            text += " Much of it is the sync wait: the thread wakes late from waiting for the GPU."
        return text

    def evidence(c, e):
        ev: dict[str, Any] = {"gap_ms": c["row"]["idle_ms"], "extra_ms": e["extra_ms"], "host_extra_ms": e["host_extra_ms"],
                              "measured_by_spin_variant": e["measured"],
                              "threshold": f"spin removes >= {X.REMOVES_MOST:.0%} of the extra time, or (no spin variant) "
                                           f">= {X.HOST_SHARE:.0%} of it in host steps"}
        if e["measured"]:
            k = e["contrast"]
            ev.update(sleep_p50_ms=k["ref_p50_ms"], spin_p50_ms=k["alt_p50_ms"], removed_fraction=k["removed_fraction"])
        if e.get("cpu_freq_drop") is not None:
            ev["cpu_freq_drop"] = e["cpu_freq_drop"]
        return ev

    def mitigations(c, e):
        out = [busy_wait(e["contrast"], on=f), advise("cpu_power", on=f)]
        if _sync_heavy(e) and c["gpu"]:
            ev, done = _sync_evidence(f, c["variant_id"])
            out.append(advise("sync_mode", on=f, measured=done, evidence=ev))
        return out

    def per_variant(c, e):
        k = e["contrast"] or {}
        return {"variant": c["row"]["name"], "extra_ms": e["extra_ms"], "host_extra_ms": e["host_extra_ms"],
                "removed_by_spin": k.get("removed_fraction")}

    return X.explained_finding(f, "explained-host-wakeup", hits, title, summary, evidence, mitigations,
                               ("idle", "preprocess", "sync"), "step_breakdown", per_variant)


def _sync_heavy(e: dict) -> bool:
    return bool(e.get("sync_wait_ms") and e["extra_ms"] > 0 and e["sync_wait_ms"] >= 0.3 * e["extra_ms"])


@finding_kind("explained-gpu-idling", severities=("warning",))
def rule_explained_gpu_idling(f: Facts) -> Finding | None:
    """``explained-gpu-idling``: an idle slowdown that keep-alive pacing removes (>= 50 % of the
    extra time), or, without a keep-alive variant, whose extra time sits >= 60 % in GPU compute
    while the SM clock stayed within 5 % (``explain.explain_gpu_idle``)."""
    hits = X.hits(f, X.explain_gpu_idle)
    if not hits:
        return None

    def title(c, e):
        if e["measured"]:
            return f"GPU idling: keeping the GPU busy removes {pct_text(e['gpu_share'])} of the extra time"
        return "GPU idling: the extra time is GPU compute at an unchanged clock"

    def summary(c, e):
        if e["measured"]:
            text = f"After a {gap_label(c['row'])}, " + _measured_summary(e, "keeping the GPU busy during the gap", "gives",
                                                                         e["gpu_share"])
        else:
            text = (f"After a {gap_label(c['row'])}, {ms_text(e['gpu_extra_ms'])} of the {ms_text(e['extra_ms'])} extra "
                    f"time is GPU compute while the SM clock stayed at {e['sm_clock_mhz']:.0f} MHz "
                    f"({e['baseline_sm_clock_mhz']:.0f} MHz reference). ")
        return text + ("An idle GPU leaves its working state (power gating, caches and TLBs cold, memory clock down) "
                       "and the first work after the gap pays to restore it.")

    def evidence(c, e):
        ev = {"gap_ms": c["row"]["idle_ms"], "extra_ms": e["extra_ms"], "gpu_extra_ms": e["gpu_extra_ms"],
              "measured_by_keepalive_variant": e["measured"],
              "threshold": f"keepalive removes >= {X.REMOVES_MOST:.0%} of the extra time, or (no keepalive variant) "
                           f">= {X.GPU_SHARE:.0%} of it in GPU compute with the SM clock within {X.CLOCK_DROP:.0%}"}
        if e["measured"]:
            k = e["contrast"]
            ev.update(sleep_p50_ms=k["ref_p50_ms"], keepalive_p50_ms=k["alt_p50_ms"], removed_fraction=e["gpu_share"])
        else:
            ev.update(sm_clock_mhz=e["sm_clock_mhz"], baseline_sm_clock_mhz=e["baseline_sm_clock_mhz"])
        return ev

    def mitigations(c, e):
        return [keepalive(e["contrast"], on=f), advise("pipelining", on=f), advise("batching", on=f)]

    def per_variant(c, e):
        k = e["contrast"] or {}
        return {"variant": c["row"]["name"], "extra_ms": e["extra_ms"], "gpu_extra_ms": e["gpu_extra_ms"],
                "removed_by_keepalive": e.get("gpu_share")}

    return X.explained_finding(f, "explained-gpu-idling", hits, title, summary, evidence, mitigations,
                               ("infer", "sync"), "step_breakdown", per_variant)
