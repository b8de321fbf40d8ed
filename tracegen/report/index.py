"""The index page: every run in one table (sortable, filterable by a small inline script, no
server, no request), skipped runs with their problem, and a per-model trend of p50/p99.

The trend is an inline SVG drawn here rather than a Vega chart: the index then needs no
JavaScript library, and stays small and quick to open with hundreds of runs.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from typing import Any

from tracegen.report.render import render

TREND_SERIES = 4  # variants per model drawn (the ones present in most runs)
COLORS = ("#175cd3", "#d95f02", "#1b9e77", "#7570b3")
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 560, 170, 48, 12, 10, 26


def index_html(rows: list[dict[str, Any]]) -> str:
    """The page for ``rows``: run summaries newest first, then skipped runs."""
    runs = [r for r in rows if r.get("status") != "skipped"]
    options = {k: sorted({str(r.get(k) or "") for r in runs} - {""}) for k in ("device", "backend", "model")}
    findings = sorted({f for r in runs for f in r.get("finding_ids") or []})
    return render("index.html", runs=rows, options=options, finding_ids=findings, trends=trends(runs), root="",
                  skipped=sum(1 for r in rows if r.get("status") == "skipped"))


def trends(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model with two or more runs: an SVG of p50 (solid) and p99 (dashed) per run, for the
    variants (by parameters) that most of its runs have."""
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_model[r.get("model") or "?"].append(r)
    out = []
    for model, rs in sorted(by_model.items()):
        if len(rs) < 2:
            continue
        rs = sorted(rs, key=lambda r: (r.get("started") or "", r["id"]))
        counts = Counter(t["key"] for r in rs for t in r.get("trend") or [])
        keys = [k for k, n in counts.most_common() if n >= 2][:TREND_SERIES]
        if keys:
            out.append({"model": model, "svg": _svg(model, rs, keys), "runs": len(rs)})
    return out


def _svg(model: str, rs: list[dict[str, Any]], keys: list[str]) -> str:
    pts = {k: [] for k in keys}
    labels = {}
    for i, r in enumerate(rs):
        for t in r.get("trend") or []:
            if t["key"] in pts and t.get("p50_ms") is not None:
                pts[t["key"]].append((i, t["p50_ms"], t.get("p99_ms"), r["id"]))
                labels[t["key"]] = t.get("label") or t["key"]
    values = [v for series in pts.values() for _, a, b, _ in series for v in (a, b) if v is not None]
    lo, hi = min(values), max(values)
    lo, hi = (lo * 0.95, hi * 1.05) if hi > lo else (lo * 0.9, lo * 1.1 + 1e-9)
    n = len(rs)

    def x(i: int) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - lo) / (hi - lo))

    e = html.escape
    parts = [f'<svg class="trend" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" '
             f'aria-label="p50 and p99 latency of {e(model)} per run">',
             f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#d9dee3"/>']
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(f'<text x="{PAD_L - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10" fill="#5f6b76">{v:.3g}</text>')
    parts.append(f'<text x="{PAD_L}" y="{H - 8}" font-size="10" fill="#5f6b76">{e(rs[0]["id"])}</text>')
    parts.append(f'<text x="{W - PAD_R}" y="{H - 8}" font-size="10" fill="#5f6b76" text-anchor="end">{e(rs[-1]["id"])}</text>')
    for k, color in zip(keys, COLORS):
        series = pts[k]
        for col, dash in ((1, ""), (2, ' stroke-dasharray="4 3"')):
            line = " ".join(f"{x(s[0]):.1f},{y(s[col]):.1f}" for s in series if s[col] is not None)
            if line:
                parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>')
        for i, p50, p99, rid in series:
            tip = f"{rid}: {labels[k]}: p50 {p50:.3f} ms" + (f", p99 {p99:.3f} ms" if p99 is not None else "")
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(p50):.1f}" r="3" fill="{color}"><title>{e(tip)}</title></circle>')
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><span class="swatch" style="background:{c}"></span>{e(labels.get(k, k))}</span>'
                     for k, c in zip(keys, COLORS))
    return "".join(parts) + f'<div class="legend">{legend} <span class="muted">· p50 solid, p99 dashed, ms</span></div>'
