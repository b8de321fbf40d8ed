"""The model of a finding: ``Finding``, ``Mitigation`` and the ``Analysis`` that holds them.

Conventions of a ``Finding``:

* ``variants``: variant ids (``variants.parquet``), the most telling first.
* ``iterations``: inclusive ``(first, last)`` iteration numbers as recorded (warm-up iterations
  first, the NVTX iteration payload), of the headline variant.
* ``evidence``: JSON-ready numbers and strings (and lists of small per-variant dicts under
  ``per_variant``); keys carry their unit (``_ms``, ``_mhz``, ``_share`` in 0..1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tracegen.units import SEVERITY_ORDER, jsonable

CHARTS = ("latency_trace", "batch_scaling", "step_breakdown", "clock_vs_latency")


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
