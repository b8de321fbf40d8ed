"""The verdict rule: one finding per paced variant slower than its baseline, with the share of
its extra time that each controlled contrast of the run explains (``analysis.verdict``)."""

from __future__ import annotations

from tracegen.analysis import explain as X
from tracegen.analysis import verdict as V
from tracegen.analysis.facts import Facts, iteration_numbers, name, nsys_hint, row
from tracegen.analysis.model import Finding
from tracegen.analysis.registry import finding_kind
from tracegen.units import ms_text, pct_text

VERDICT_WARNING = 1.25  # warning from 1.25x the baseline p50, info below (as slow-after-gap)


def _title(f: Facts, v: V.Verdict) -> str:
    r = row(f, v.variant_id)
    shares = ", ".join(f"{m} {pct_text(s)}" for m, s in v.shares.items())
    return (f"Why a {r['idle_ms']:g} ms {r['pacing']} gap costs {ms_text(v.p50_ms - v.baseline_p50_ms)} ({r['launch']}, "
            f"sync-{r['sync_mode']}): " + (shares or "no contrast in this run isolates it"))


@finding_kind("idle-verdict", severities=("info", "warning"))
def rule_idle_verdict(f: Facts) -> list[Finding] | None:
    """``idle-verdict``: one per paced variant slower than its continuous baseline (p50 >=
    1.05x and >= 0.02 ms above it, or latency tiers: ``explain.is_slow``), weighing every
    controlled contrast the run contains (``verdict``); warning from VERDICT_WARNING (1.25x)."""
    out = []
    for v in V.verdicts(f):
        vid = v.variant_id
        numbers = iteration_numbers(f, vid)
        tf = v.case.get("tiers")
        its = tf["slow_ranges"] if tf else (((int(numbers[0]), int(numbers[-1])),) if numbers.size else ())
        dec = v.case["attribution"].get("vs_baseline") or {}
        compared = [ln.compared for ln in v.lines if ln.compared is not None]
        out.append(Finding(
            id="idle-verdict", severity="warning" if v.ratio >= VERDICT_WARNING else "info",
            title=_title(f, v),
            summary=V.headline(f, v) + ". " + V.explanation(f, v),
            evidence={"gap_ms": row(f, vid)["idle_ms"], "pacing": row(f, vid)["pacing"], "p50_ms": v.p50_ms,
                      "baseline_ms": v.baseline_p50_ms, "ratio": v.ratio, "extra_ms": v.extra_ms,
                      "dominant_step": dec.get("dominant_step"), "shares": v.shares, "unexplained": v.unexplained,
                      "isolated": v.isolated,
                      "threshold": f"p50 >= {X.SLOW_RATIO}x and >= {X.SLOW_MIN_MS} ms above the continuous baseline, "
                                   f"or latency tiers",
                      "per_variant": [ln.to_row(f) for ln in v.lines]},
            variants=tuple(dict.fromkeys([vid, v.baseline_id, *compared])),
            iterations=its, mitigations=tuple(V.advice(f, v)),
            nsys_hint=nsys_hint(f, vid, its[:1], X.focus_steps(v.case, ("idle", "infer", "sync")),
                                compare=f'the range "{name(f, v.baseline_id)}" (no gap)'),
            chart="step_breakdown"))
    return out or None
