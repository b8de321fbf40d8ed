"""``analyze``: the Python API behind ``tracegen analyze`` and the report.

``analyze(run)`` collects the facts of a run (``facts.collect_facts``: statistics, change
points, tiers, batch scaling, attribution) and runs every registered rule
(``registry.run_rules``) over them. The model of a finding lives in ``model``; its names are
re-exported here for callers of the public API.
"""

from __future__ import annotations

from typing import Any

import tracegen.analysis.rules  # noqa: F401  (registers every rule)
from tracegen.analysis.facts import Facts, collect_facts
from tracegen.analysis.model import CHARTS, Analysis, Finding, Mitigation, sort_findings, worst_severity
from tracegen.analysis.registry import finding_ids, kinds, run_rules
from tracegen.units import SEVERITY_ORDER, jsonable

__all__ = ["CHARTS", "SEVERITY_ORDER", "Analysis", "Facts", "Finding", "Mitigation", "analyze", "collect_facts",
           "finding_ids", "jsonable", "kinds", "sort_findings", "worst_severity"]


def analyze(run: Any, *, budget_ms: float | None = None, iters: Any = None) -> Analysis:
    """Analyse one run (``trace.reader.Run``): statistics, change points and tiers of every
    variant's measured latency, batch scaling, attribution, and the findings of every rule.
    ``iters``: the run's per-iteration frame when the caller already has it (the report)."""
    facts = collect_facts(run, budget_ms=budget_ms, iters=iters)
    return Analysis(run_id=facts.run_id, findings=sort_findings(run_rules(facts)), stats=facts.stats,
                    tiers=facts.tier_summaries, changepoints=facts.changepoints, scaling=facts.scaling,
                    attribution=facts.attribution)
