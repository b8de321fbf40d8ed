"""Warm-up rule: the first measured iterations of a variant are still slow."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from tracegen.analysis.attribution import measured
from tracegen.analysis.facts import Facts, continuous_ids, name, nsys_hint, paced_ids, row, schedule_of
from tracegen.analysis.mitigations import advise
from tracegen.analysis.model import Finding
from tracegen.analysis.registry import finding_kind
from tracegen.units import NS_PER_MS, ms_text

WARMUP_RATIO = 1.10  # warm-up: first segment's median >= 1.10 x the rest's median ...
WARMUP_MAX_FRACTION = 1 / 3  # ... and it ends within the first third of the measured iterations
WARMUP_SPIKE = 1.5  # or the first >= 2 measured iterations are each >= 1.5 x the median ...
WARMUP_FIRST = 2.0  # or the first one alone is >= 2 x the median
MIN_WARMUP_POINTS = 10  # measured iterations needed to judge the warm-up
#: A change point within this many iterations before a scheduled gap change (``--schedule``) is
#: the schedule's, not the end of warm-up (GPU clocks take 10 or so iterations to follow a gap).
SCHEDULED_MARGIN = 20


def warmup_excess(f: Facts, vid: int) -> dict[str, Any] | None:
    """Slow first measured iterations of a variant (>= MIN_WARMUP_POINTS measured): the first
    change point c lies within the first third and median(first c) >= WARMUP_RATIO (1.10) x
    median(rest); or the first >= 2 measured iterations are each >= WARMUP_SPIKE (1.5) x the
    median; or the first alone is >= WARMUP_FIRST (2) x the median. A scheduled variant is
    judged on its first scheduled segment alone (a change point within SCHEDULED_MARGIN of its
    end is the schedule's)."""
    m = measured(f.iters, vid)
    if m.height < MIN_WARMUP_POINTS:
        return None
    numbers = m["iteration"].to_numpy()
    y = m["latency_ns"].cast(pl.Float64).to_numpy() / NS_PER_MS
    schedule = schedule_of(f, vid)
    if schedule and schedule["change_points"]:
        # judged inside the first scheduled segment: later segments differ by design
        end = int(np.searchsorted(numbers, int(schedule["change_points"][0])))
        y, numbers = y[:end], numbers[:end]
        if y.size < MIN_WARMUP_POINTS:
            return None
    med = float(np.median(y))
    count = None
    cps = [c for c in f.changepoints.get(vid, []) if 0 < c < y.size - SCHEDULED_MARGIN * bool(schedule)]
    if cps and cps[0] <= WARMUP_MAX_FRACTION * y.size:
        c = cps[0]
        if np.median(y[:c]) >= WARMUP_RATIO * np.median(y[c:]):
            count = c
    if count is None:
        spike = y >= WARMUP_SPIKE * med
        k = int(np.argmin(spike)) if not spike.all() else y.size
        if k >= 2 and k <= WARMUP_MAX_FRACTION * y.size:
            count = k
        elif y[0] >= WARMUP_FIRST * med:
            count = 1
    if count is None:
        return None
    rest = float(np.median(y[count:]))
    if rest <= 0:  # no measurable steady time (e.g. an import with zero durations): no ratio to give
        return None
    return {"variant_id": vid, "slow_iterations": count, "first_ms": float(np.median(y[:count])), "steady_ms": rest,
            "ratio": float(np.median(y[:count])) / rest if rest else None,
            "excess_ms": float(np.sum(y[:count] - rest)), "warmup": int(row(f, vid)["warmup"] or 0),
            "range": (int(numbers[0]), int(numbers[count - 1]))}


def suggested_warmup(need: int) -> int:
    """A round warm-up count above ``need``: 10 up to 10, else twice it rounded up to tens."""
    return int(max(10, 10 ** math.ceil(math.log10(need)) if need <= 10 else math.ceil(2 * need / 10) * 10))


@finding_kind("warmup-too-short", severities=("warning",))
def rule_warmup_too_short(f: Facts) -> Finding | None:
    """``warmup-too-short``: some variant's first measured iterations are still slow
    (``warmup_excess``)."""
    hits = [h for h in (warmup_excess(f, vid) for vid in continuous_ids(f) + paced_ids(f)) if h is not None]
    if not hits:
        return None
    hits.sort(key=lambda h: (-h["excess_ms"], h["variant_id"]))
    h = hits[0]
    vid = h["variant_id"]
    suggest = suggested_warmup(h["warmup"] + h["slow_iterations"])
    return Finding(
        id="warmup-too-short", severity="warning",
        title=f"Warm-up too short: the first {h['slow_iterations']} measured iterations are {h['ratio']:.2f}x slower",
        summary=(f"In {name(f, vid)}, after {h['warmup']} warm-up iterations, the first {h['slow_iterations']} measured "
                 f"iterations (iterations {h['range'][0]}-{h['range'][1]}) take {ms_text(h['first_ms'])} against "
                 f"{ms_text(h['steady_ms'])} afterwards. They inflate the statistics, and in production the first "
                 f"requests after start-up pay the same."
                 + (f" {len(hits)} variants are affected." if len(hits) > 1 else "")),
        evidence={"warmup": h["warmup"], "slow_iterations": h["slow_iterations"], "first_ms": h["first_ms"],
                  "steady_ms": h["steady_ms"], "ratio": h["ratio"], "suggested_warmup": suggest,
                  "threshold": (f"first change point within the first third and >= {WARMUP_RATIO}x the rest, or the first "
                                f"2+ iterations >= {WARMUP_SPIKE}x the median, or the first >= {WARMUP_FIRST}x"),
                  "per_variant": [{"variant": name(f, x["variant_id"]), "slow_iterations": x["slow_iterations"],
                                   "first_ms": x["first_ms"], "steady_ms": x["steady_ms"], "ratio": x["ratio"]} for x in hits]},
        variants=tuple(x["variant_id"] for x in hits), iterations=(h["range"],),
        mitigations=(advise("warmup", on=f, n=suggest),),
        nsys_hint=nsys_hint(f, vid, (h["range"],), ("infer", "sync"),
                            compare="later iterations of the same range: look for allocations, module loads or autotuning"),
        chart="latency_trace")
