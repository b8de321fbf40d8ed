"""Findings as data, and ``analyze``: the Python API behind ``tracegen analyze`` and the report.

``analyze(run)`` computes per-variant statistics, change points and latency tiers of every
variant's measured latency (ms), batch scaling, attribution of the idle-delay variants, and then
runs every rule of ``tracegen.analysis.rules`` over those facts.

Conventions of a ``Finding``:

* ``variants``: variant ids (``variants.parquet``), the most telling first.
* ``iterations``: inclusive ``(first, last)`` iteration numbers as recorded (warm-up iterations
  first, the NVTX iteration payload), of the headline variant.
* ``evidence``: JSON-ready numbers and strings (and lists of small per-variant dicts under
  ``per_variant``); keys carry their unit (``_ms``, ``_mhz``, ``_share`` in 0..1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

SEVERITY_ORDER = ("critical", "warning", "info")
CHARTS = ("latency_trace", "batch_scaling", "step_breakdown", "clock_vs_latency")


def jsonable(x: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays to Python, NaN/inf to None, tuples to lists,
    dict keys to strings, frames to lists of rows."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [jsonable(v) for v in x.tolist()]
    if isinstance(x, pl.DataFrame):
        return [jsonable(r) for r in x.to_dicts()]
    if isinstance(x, pl.Series):
        return [jsonable(v) for v in x.to_list()]
    if hasattr(x, "__dataclass_fields__"):
        return {k: jsonable(getattr(x, k)) for k in x.__dataclass_fields__}
    return str(x)


@dataclass(frozen=True)
class Mitigation:
    title: str
    action: str  # the exact command or code
    expected_effect: str
    cost: str
    measured: bool = False  # this run has the variant that tests it
    evidence: str | None = None  # the measured numbers, when measured

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self)


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str  # critical | warning | info
    title: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    variants: tuple[int, ...] = ()
    iterations: tuple[tuple[int, int], ...] = ()
    mitigations: tuple[Mitigation, ...] = ()
    nsys_hint: str = ""
    chart: str | None = None  # latency_trace | batch_scaling | step_breakdown | clock_vs_latency | None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_ORDER:
            raise ValueError(f"severity {self.severity!r} not in {SEVERITY_ORDER}")
        if self.chart is not None and self.chart not in CHARTS:
            raise ValueError(f"chart {self.chart!r} not in {CHARTS}")

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self)


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (SEVERITY_ORDER.index(f.severity), f.id, f.variants)))


def worst_severity(findings: Iterable[Finding]) -> str | None:
    """The most severe severity among ``findings`` (None when there are none)."""
    sev = [SEVERITY_ORDER.index(f.severity) for f in findings]
    return SEVERITY_ORDER[min(sev)] if sev else None


@dataclass(frozen=True)
class Analysis:
    run_id: str
    findings: tuple[Finding, ...]  # sorted by severity, then id
    stats: pl.DataFrame  # stats.variant_stats
    tiers: dict[int, dict]  # variant_id -> tier summary
    changepoints: dict[int, list[int]]  # variant_id -> indices into its measured iterations
    scaling: dict | None
    attribution: dict[int, dict]

    @property
    def worst(self) -> str | None:
        return worst_severity(self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "worst_severity": self.worst,
            "findings": [f.to_dict() for f in self.findings],
            "stats": jsonable(self.stats),
            "tiers": jsonable(self.tiers),
            "changepoints": jsonable(self.changepoints),
            "scaling": jsonable(self.scaling),
            "attribution": jsonable(self.attribution),
        }


# -- analyze -----------------------------------------------------------------------------------
MIN_POINTS_CHANGEPOINTS = 10  # measured iterations before change points / tiers are computed


def _baseline_p50(stats: pl.DataFrame, variants: pl.DataFrame, vid: int) -> float | None:
    from tracegen.analysis.attribution import find_baseline

    base, kind = find_baseline(variants, stats, vid)
    if base is None or kind != "continuous":
        return None
    s = stats.filter(pl.col("variant_id") == base)
    return float(s["p50_ms"][0]) if s.height and s["p50_ms"][0] is not None else None


def _with_conveniences(summary: dict, t: Any, baseline: float | None, numbers: np.ndarray) -> dict:
    """The tier summary plus flat ``levels`` / ``shares`` / ``ratios`` lists (what the report's
    tier table and chart read) and onset/settle as recorded iteration numbers (the summary's
    ``onset``/``settle`` are positions among the measured iterations)."""
    out = dict(summary)
    levels = [float(x) for x in t.levels]
    out.setdefault("levels", levels)
    out.setdefault("shares", [float(x) for x in t.shares])
    out.setdefault("ratios", [x / baseline for x in levels] if baseline else None)
    for key in ("onset", "settle"):
        pos = summary.get(key)
        out[f"{key}_iteration"] = int(numbers[pos]) if isinstance(pos, (int, np.integer)) and 0 <= pos < numbers.size else None
    return out


def collect_facts(run: Any, *, budget_ms: float | None = None, iters: pl.DataFrame | None = None):
    """Everything the rules read about ``run`` (a ``trace.reader.Run``), as ``rules.Facts``;
    ``iters`` is ``stats.iterations(run.steps)`` when the caller already has it (the report)."""
    from tracegen.analysis import rules as R
    from tracegen.analysis.attribution import (
        attribute,
        iteration_telemetry,
        samples_to_iterations,
    )
    from tracegen.analysis.changepoints import detect_changepoints
    from tracegen.analysis.scaling import batch_scaling
    from tracegen.analysis.stats import iterations, variant_stats
    from tracegen.analysis.tiers import detect_tiers, tier_summary

    iters = iterations(run.steps) if iters is None else iters
    stats = variant_stats(run.variants, iters)
    measured = iters.filter(~pl.col("warmup")) if iters.height else iters
    changepoints: dict[int, list[int]] = {}
    tier_objs: dict[int, Any] = {}
    tiers: dict[int, dict] = {}
    idle_ids = set(run.variants.filter(pl.col("scenario") == "idle")["variant_id"].to_list())
    parts = measured.sort("variant_id", "iteration").partition_by("variant_id", as_dict=True) if measured.height else {}
    for key, part in parts.items():
        vid = int(key[0] if isinstance(key, tuple) else key)
        values = part["latency_ns"].cast(pl.Float64).to_numpy() / 1e6
        if values.size < MIN_POINTS_CHANGEPOINTS:
            continue
        changepoints[vid] = [int(c) for c in detect_changepoints(values)]
        if vid in idle_ids:
            t = detect_tiers(values)
            tier_objs[vid] = t
            base = _baseline_p50(stats, run.variants, vid)
            tiers[vid] = _with_conveniences(tier_summary(values, t, baseline=base), t, base,
                                            part["iteration"].to_numpy())
    samples = samples_to_iterations(iters, run.telemetry)
    per_iter_tel = iteration_telemetry(samples)
    scaling = batch_scaling(stats, run.telemetry, budget_ms=budget_ms)
    attribution = attribute(run.variants, iters, stats, run.telemetry, tier_objs, per_iter_tel)
    return R.Facts(
        run_id=run.id, manifest=run.manifest, variants=run.variants, iters=iters, stats=stats,
        tiers=tier_objs, tier_summaries=tiers, changepoints=changepoints, scaling=scaling,
        attribution=attribution, telemetry=run.telemetry, samples=samples, iter_telemetry=per_iter_tel,
        budget_ms=budget_ms,
    )


def analyze(run: Any, *, budget_ms: float | None = None, iters: pl.DataFrame | None = None) -> Analysis:
    """Analyse one run (``trace.reader.Run``): statistics, change points and tiers of every
    variant's measured latency, batch scaling, attribution, and the findings of every rule."""
    from tracegen.analysis.rules import run_rules

    facts = collect_facts(run, budget_ms=budget_ms, iters=iters)
    return Analysis(run_id=facts.run_id, findings=sort_findings(run_rules(facts)), stats=facts.stats,
                    tiers=facts.tier_summaries, changepoints=facts.changepoints, scaling=facts.scaling,
                    attribution=facts.attribution)
