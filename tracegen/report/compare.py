"""What changed between two runs: the Python API behind ``tracegen compare`` and the site's
compare pages.

Variants are matched by their parameters (scenario, batch, gap, pacing, launch, sync mode,
pipeline), never by id. For each matched pair:

* percentiles (p50/p90/p99, mean, throughput) of both runs and their change in percent;
* a significance test that fits latency data, which is skewed, heavy-tailed and far from
  normal: the Mann-Whitney U test (scipy, two-sided, normal approximation with tie
  correction) on the measured iterations, and a 95 % interval for the difference of the
  medians: a percentile bootstrap (numpy, fixed seed) for up to ``BOOTSTRAP_MAX`` iterations per
  side, the order-statistic (binomial) interval of each median combined in quadrature above
  that, where resampling 10^5+ points a thousand times would take longer than the rest;
* tiers (levels, shares, onset iteration) of idle variants.

Then the batch knee and the batch recommended for the latency budget, and the findings that
appeared, disappeared or changed severity (matched by finding id and headline variant).

scipy is a dependency for the U test: its tie and continuity corrections are easy to get
subtly wrong by hand, and it is already what every Python statistics stack installs.

A change is *significant* when p < ``ALPHA`` and the interval excludes zero, and it counts as a
change only when the p50 moved by at least ``MIN_CHANGE_PCT`` (a 0.2 % shift over 10^5
iterations is real and irrelevant). ``regressions(cmp, pct)`` is what ``--fail-on-regression``
uses: significant slow-downs of the p50 by more than ``pct`` percent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tracegen.errors import TraceError
from tracegen.report.page import LATENCIES, SEVERITIES, VARIANT_PARAMS, variant_key

ALPHA = 0.01
MIN_CHANGE_PCT = 1.0
BOOTSTRAP = 2000
BOOTSTRAP_MAX = 20_000
METRICS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_ips")


@dataclass
class Side:
    """One run as the comparison needs it: its facts, per-variant statistics, tiers, scaling,
    findings and measured latencies (ms) per variant id."""

    id: str
    summary: dict[str, Any]
    variants: list[dict[str, Any]]  # rows of the analysis' variant statistics
    tiers: dict[int, dict[str, Any]] = field(default_factory=dict)
    scaling: dict[str, Any] | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    latencies: dict[int, np.ndarray] = field(default_factory=dict)


def side_from_page(page_dir: Path) -> Side:
    """A run as a report left it in the site: summary.json, stats.json, findings.json and the
    measured latencies, so compare pages need no run data."""
    page_dir = Path(page_dir)
    try:
        summary = json.loads((page_dir / "summary.json").read_text(encoding="utf-8"))
        stats = json.loads((page_dir / "stats.json").read_text(encoding="utf-8"))
        findings = json.loads((page_dir / "findings.json").read_text(encoding="utf-8"))
        lat = pl.read_parquet(page_dir / LATENCIES)
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        raise TraceError(f"{page_dir} is not a complete run page ({exc})", "report the run again") from None
    return Side(summary["id"], summary, stats["variants"], {int(k): v for k, v in (stats.get("tiers") or {}).items()},
                stats.get("scaling"), findings["findings"], _latencies(lat))


def side_from_run(run_dir: Path, *, budget_ms: float | None = None) -> Side:
    """Read and analyse a run directory (once) for ``tracegen compare``."""
    from tracegen.report.page import RunPage
    from tracegen.trace.reader import read_run

    page = RunPage(read_run(run_dir), budget_ms)
    return side_from_page_object(page)


def side_from_page_object(page: Any) -> Side:
    lat = page.iters.filter(~pl.col("warmup")).select("variant_id", "latency_ns")
    return Side(page.run.id, page.summary, page.stats.to_dicts(), dict(page.tiers), page.scaling,
                [f.to_dict() for f in page.findings], _latencies(lat))


def _latencies(lat: pl.DataFrame) -> dict[int, np.ndarray]:
    return {int(k[0] if isinstance(k, tuple) else k): part["latency_ns"].to_numpy() / 1e6
            for k, part in lat.partition_by("variant_id", as_dict=True).items()} if lat.height else {}


# -- statistics -----------------------------------------------------------------------------------

def median_diff_interval(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, str]:
    """95 % interval of median(b) - median(a) and the method used."""
    if max(a.size, b.size) <= BOOTSTRAP_MAX:
        rng = np.random.default_rng(seed)
        diffs = []
        for _ in range(0, BOOTSTRAP, 250):  # in chunks: 250 x 20,000 indices is 40 MB
            ma = np.median(a[rng.integers(0, a.size, (250, a.size))], axis=1)
            mb = np.median(b[rng.integers(0, b.size, (250, b.size))], axis=1)
            diffs.append(mb - ma)
        lo, hi = np.quantile(np.concatenate(diffs), [0.025, 0.975])
        return float(lo), float(hi), "bootstrap"

    def half_width(x: np.ndarray) -> float:  # the binomial interval of the median, as +-1.96 sd
        s = np.sort(x)
        k = 1.96 * np.sqrt(x.size) / 2
        lo, hi = s[max(0, int(np.floor(x.size / 2 - k)))], s[min(x.size - 1, int(np.ceil(x.size / 2 + k)))]
        return (hi - lo) / 2

    d = float(np.median(b) - np.median(a))
    w = float(np.hypot(half_width(a), half_width(b)))
    return d - w, d + w, "order statistics"


def significance(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Mann-Whitney U of b against a, the probability that an iteration of b is slower than one
    of a (0.5 = no shift), and the interval of the difference of the medians."""
    from scipy.stats import mannwhitneyu

    if a.size < 3 or b.size < 3:
        return {"p_value": None, "prob_slower": None, "median_diff_ms": None, "ci_ms": None, "ci_method": None}
    res = mannwhitneyu(b, a, alternative="two-sided", method="asymptotic")
    lo, hi, method = median_diff_interval(a, b)
    return {"p_value": float(res.pvalue), "prob_slower": float(res.statistic) / (a.size * b.size),
            "median_diff_ms": float(np.median(b) - np.median(a)), "ci_ms": [lo, hi], "ci_method": method}


def _pct(a: Any, b: Any) -> float | None:
    if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or a == 0:
        return None
    return 100.0 * (b - a) / a


def _verdict(test: dict[str, Any], p50_pct: float | None) -> str:
    p, ci = test.get("p_value"), test.get("ci_ms")
    if p is None or ci is None or p50_pct is None:
        return "untested"
    if p >= ALPHA or ci[0] <= 0 <= ci[1] or abs(p50_pct) < MIN_CHANGE_PCT:
        return "same"
    return "slower" if p50_pct > 0 else "faster"


# -- comparison -----------------------------------------------------------------------------------

def _label(r: dict[str, Any]) -> str:
    from tracegen.report.charts import series_label, variant_label

    return variant_label(r) if r["scenario"] == "idle" else f"batch {r['batch']}, {series_label(r)}"


def _tier_view(t: dict[str, Any] | None) -> dict[str, Any] | None:
    if not t:
        return None
    return {"levels_ms": t.get("levels"), "shares": t.get("shares"), "onset_iteration": t.get("onset_iteration"),
            "settle_iteration": t.get("settle_iteration")}


def compare(a: Side, b: Side) -> dict[str, Any]:
    """Everything that changed from run ``a`` to run ``b`` (JSON-ready)."""
    rows_a = {variant_key(r): r for r in a.variants if r.get("n")}
    rows_b = {variant_key(r): r for r in b.variants if r.get("n")}
    variants = []
    for key in [k for k in rows_a if k in rows_b]:
        ra, rb = rows_a[key], rows_b[key]
        la, lb = a.latencies.get(ra["variant_id"], np.array([])), b.latencies.get(rb["variant_id"], np.array([]))
        test = significance(la, lb)
        metrics = {m: {"a": ra.get(m), "b": rb.get(m), "change_pct": _pct(ra.get(m), rb.get(m))} for m in METRICS}
        variants.append({
            "key": key, "label": _label(ra), "params": {p: ra.get(p) for p in VARIANT_PARAMS},
            "variant_a": ra["variant_id"], "variant_b": rb["variant_id"], "n_a": ra["n"], "n_b": rb["n"],
            "metrics": metrics, **test, "verdict": _verdict(test, metrics["p50_ms"]["change_pct"]),
            "tiers": {"a": _tier_view(a.tiers.get(ra["variant_id"])), "b": _tier_view(b.tiers.get(rb["variant_id"]))}
            if ra["scenario"] == "idle" else None,
        })
    return {
        "a": _facts(a), "b": _facts(b),
        "variants": variants,
        "only_a": [_label(rows_a[k]) for k in rows_a if k not in rows_b],
        "only_b": [_label(rows_b[k]) for k in rows_b if k not in rows_a],
        "scaling": _scaling(a.scaling, b.scaling),
        "findings": _findings(a, b),
        "alpha": ALPHA, "min_change_pct": MIN_CHANGE_PCT,
    }


def _facts(s: Side) -> dict[str, Any]:
    keys = ("id", "started", "status", "device", "backend", "precision", "model", "host", "href")
    return {k: s.summary.get(k) for k in keys}


SCALING_FACTS = ("knee_batch", "largest_batch_within_budget", "budget_ms", "saturation_class", "max_throughput_ips",
                 "best_batch", "throughput_gain")


def _scaling(a: dict | None, b: dict | None) -> dict[str, Any] | None:
    if not a and not b:
        return None
    a, b = a or {}, b or {}
    out = {k: {"a": a.get(k), "b": b.get(k)} for k in SCALING_FACTS if a.get(k) is not None or b.get(k) is not None}
    return out or None


def _findings(a: Side, b: Side) -> dict[str, list[dict[str, Any]]]:
    """Findings matched by id and headline variant (by parameters). A finding about a variant
    the other run did not measure is not "gone" or "new": it is listed apart."""
    def keyed(s: Side) -> dict[tuple[str, str], dict[str, Any]]:
        by_id = {r["variant_id"]: r for r in s.variants}
        out = {}
        for f in s.findings:
            head = by_id.get((f.get("variants") or [None])[0])
            out.setdefault((f["id"], variant_key(head) if head else ""), f)
        return out

    fa, fb = keyed(a), keyed(b)
    measured_a = {variant_key(r) for r in a.variants if r.get("n")}
    measured_b = {variant_key(r) for r in b.variants if r.get("n")}
    only_a = {k: fa.pop(k) for k in list(fa) if k not in fb and k[1] and k[1] not in measured_b}
    only_b = {k: fb.pop(k) for k in list(fb) if k not in fa and k[1] and k[1] not in measured_a}
    # a kind that each run reports once, about another variant (tiers after a 20 ms gap, now
    # after 50 ms), is the same finding moved, not one gone and one new
    once = {i for i in {k[0] for k in fa} if sum(k[0] == i for k in fa) == 1 and sum(k[0] == i for k in fb) == 1}
    left_a = [k for k in fa if k not in fb and k[0] in once]
    for kb in [k for k in fb if k not in fa and k[0] in once]:
        ka = next((k for k in left_a if k[0] == kb[0]), None)
        if ka is not None:
            left_a.remove(ka)
            fa[kb] = fa.pop(ka)
    view = lambda f: {"id": f["id"], "severity": f["severity"], "title": f["title"]}  # noqa: E731
    changed = [{"id": k[0], "title": fb[k]["title"], "severity_a": fa[k]["severity"], "severity_b": fb[k]["severity"],
                "worse": SEVERITIES.index(fb[k]["severity"]) < SEVERITIES.index(fa[k]["severity"])}
               for k in fa if k in fb and fa[k]["severity"] != fb[k]["severity"]]
    return {"appeared": [view(fb[k]) for k in fb if k not in fa], "disappeared": [view(fa[k]) for k in fa if k not in fb],
            "changed": changed, "unchanged": [view(fb[k]) for k in fb if k in fa and fa[k]["severity"] == fb[k]["severity"]],
            "only_a": [view(f) for f in only_a.values()], "only_b": [view(f) for f in only_b.values()]}


def regressions(cmp: dict[str, Any], pct: float) -> list[dict[str, Any]]:
    """Matched variants whose p50 got significantly slower by more than ``pct`` percent."""
    return [v for v in cmp["variants"] if v["verdict"] == "slower" and (v["metrics"]["p50_ms"]["change_pct"] or 0) > pct]
