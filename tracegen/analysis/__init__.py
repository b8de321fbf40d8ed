"""Trace analysis: statistics, change points, latency tiers, batch scaling, attribution, findings."""

from tracegen.analysis.changepoints import detect_changepoints
from tracegen.analysis.tiers import Tiers, detect_tiers, tier_summary

__all__ = ["Tiers", "detect_changepoints", "detect_tiers", "tier_summary"]
