"""Build the static site: ``index.html`` listing every run and one page per run.

Pages are written into a fresh temporary folder inside ``out`` and moved into place at the end,
so a report that fails half-way leaves the previous site intact. Only ``index.html`` and the
``runs/<run-id>/`` folders of the runs given are replaced; nothing else in ``out`` is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

import tracegen
from tracegen.analysis import stats as S
from tracegen.errors import ConfigError
from tracegen.report import charts
from tracegen.report.render import ChartSet, render, vega_javascript
from tracegen.trace.reader import Run, read_run


@dataclass(frozen=True)
class SiteResult:
    index: Path
    pages: list[tuple[str, Path]]
    findings: dict[str, list] = field(default_factory=dict)  # run id -> findings (severity order)


def _analyze(run: Run, budget_ms: float | None):
    """Findings and analysis when the analysis package is there; None otherwise."""
    try:
        from tracegen.analysis.findings import analyze
    except ImportError:
        return None
    return analyze(run, budget_ms=budget_ms)


def _summary(run: Run) -> dict[str, Any]:
    m = run.manifest
    gpu = m.get("gpu") or {}
    host = m.get("host") or {}
    v = run.variants
    return {
        "id": run.id,
        "href": f"runs/{run.id}/index.html",
        "started": (m.get("started_utc") or "")[:19].replace("T", " "),
        "status": run.status,
        "error": m.get("error"),
        "host": host.get("hostname") or "?",
        "cpu": host.get("cpu_model") or "?",
        "device": gpu.get("name") or f"CPU ({host.get('cores_logical', '?')} cores)",
        "backend": (m.get("backend") or {}).get("name", "?"),
        "precision": (m.get("backend") or {}).get("precision", "?"),
        "model": (m.get("model") or {}).get("spec", "?"),
        "scenarios": ", ".join(sorted(v["scenario"].unique().to_list())) if v.height else "",
        "variants": v.height,
        "iterations": int(run.steps.select(["variant_id", "iteration"]).n_unique()) if run.steps.height else 0,
    }


def _records(df: pl.DataFrame) -> list[dict[str, Any]]:
    return df.to_dicts()


def _run_page(run: Run, analysis, charts_: ChartSet) -> dict[str, Any]:
    iters = S.iterations(run.steps)
    stats = S.variant_stats(run.variants, iters)
    medians = S.step_medians(iters)
    tiers = getattr(analysis, "tiers", {}) if analysis else {}
    cps = getattr(analysis, "changepoints", {}) if analysis else {}
    context: dict[str, Any] = {"stats": _records(stats)}

    # Findings first, each with its evidence chart.
    findings = []
    for f in (analysis.findings if analysis else ()):
        chart_html = ""
        if f.chart == "latency_trace" and f.variants:
            chart_html = charts_.add(charts.latency_trace(iters, run.variants, list(f.variants), tiers=tiers,
                                                          changepoints=cps, title=f.title), "finding")
        elif f.chart == "batch_scaling":
            chart_html = charts_.add(charts.batch_scaling(stats), "finding")
        elif f.chart == "clock_vs_latency" and f.variants and run.telemetry.height:
            chart_html = charts_.add(charts.clock_vs_latency(iters, run.telemetry, run.variants, list(f.variants)), "clock")
        elif f.chart == "step_breakdown" and f.variants:
            sub = medians.filter(pl.col("variant_id").is_in(list(f.variants)))
            chart_html = charts_.add(charts.step_breakdown(sub, run.variants), "finding")
        findings.append({"finding": f, "chart_html": chart_html, "template": f"findings/{f.id}.html"})
    context["findings"] = findings
    context["analysis_available"] = analysis is not None

    # Batch scaling.
    batch = stats.filter(pl.col("scenario") == "batch")
    context["batch"] = None
    if batch.height:
        context["batch"] = {"chart": charts_.add(charts.batch_scaling(stats), "batch"), "rows": _records(batch),
                            "scaling": getattr(analysis, "scaling", None) if analysis else None}

    # Idle delay: one chart per gap, the continuous baseline drawn in each for reference.
    idle_v = run.variants.filter(pl.col("scenario") == "idle")
    context["idle"] = None
    if idle_v.height:
        baseline = idle_v.filter(pl.col("pacing") == "none")["variant_id"].to_list()
        groups = []
        for gap in sorted(set(idle_v["idle_ms"].to_list())):
            ids = idle_v.filter(pl.col("idle_ms") == gap)["variant_id"].to_list()
            shown = ids if gap == 0 else baseline + ids
            title = "continuous (no gap)" if gap == 0 else f"{gap:g} ms gap between inferences"
            groups.append({"title": title, "chart": charts_.add(
                charts.latency_trace(iters, run.variants, shown, tiers=tiers, changepoints=cps, title=title), "idle")})
        tier_rows = []
        for vid, summary in sorted(tiers.items()):
            name = dict(zip(run.variants["variant_id"], run.variants["name"])).get(vid, str(vid))
            tier_rows.append({"name": name, **summary})
        context["idle"] = {"groups": groups, "rows": _records(stats.filter(pl.col("scenario") == "idle")),
                           "tiers": tier_rows}

    context["breakdown"] = charts_.add(charts.step_breakdown(medians, run.variants), "steps") if medians.height else ""
    timeline = charts.telemetry_timeline(run.telemetry, run.variants) if run.telemetry.height else None
    context["telemetry"] = charts_.add(timeline, "telemetry") if timeline is not None else ""
    return context


def _stats_json(run: Run, analysis) -> dict[str, Any]:
    iters = S.iterations(run.steps)
    return {"run_id": run.id, "tracegen_version": tracegen.__version__,
            "variants": S.variant_stats(run.variants, iters).to_dicts(),
            "step_medians": S.step_medians(iters).to_dicts()}


def _command(manifest: dict[str, Any]) -> str:
    import shlex

    cmd = manifest.get("command") or []
    return " ".join(shlex.quote(c) if i else c for i, c in enumerate(cmd)) if cmd else ""


def _write_page(dest: Path, run: Run, analysis) -> None:
    dest.mkdir(parents=True)
    chart_set = ChartSet()
    context = _run_page(run, analysis, chart_set)
    html = render("run.html", run=_summary(run), manifest=run.manifest, command=_command(run.manifest),
                  charts_json=chart_set.script_blocks(), vega_js=vega_javascript(), root="../../",
                  version=tracegen.__version__, **context)
    (dest / "index.html").write_text(html, encoding="utf-8")
    findings = [f.to_dict() for f in analysis.findings] if analysis else []
    (dest / "findings.json").write_text(json.dumps({"run_id": run.id, "findings": findings}, indent=2, default=str))
    (dest / "stats.json").write_text(json.dumps(_stats_json(run, analysis), indent=2, default=str))


def build_site(run_dirs: list[Path], out_dir: Path, *, budget_ms: float | None = None) -> SiteResult:
    """Write ``out_dir/index.html`` and ``out_dir/runs/<run-id>/`` for every run; the Python
    API behind ``tracegen report``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"report output {out_dir} is a file", "pass --out a directory")
    runs = [read_run(d) for d in run_dirs]  # validate everything before writing anything
    ids = [r.id for r in runs]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(f"two runs share the id {dup[0]}", "report them separately, or rename one run directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tracegen-", dir=out_dir))
    try:
        pages, findings = [], {}
        for run in runs:
            analysis = _analyze(run, budget_ms)
            _write_page(staging / "runs" / run.id, run, analysis)
            findings[run.id] = list(analysis.findings) if analysis else []
            pages.append((run.id, out_dir / "runs" / run.id / "index.html"))
        listing = [_summary(r) for r in sorted(runs, key=lambda r: r.manifest.get("started_utc") or "", reverse=True)]
        for item in listing:
            item["n_findings"] = len(findings.get(item["id"], []))
            item["worst"] = findings[item["id"]][0].severity if findings.get(item["id"]) else None
        (staging / "index.html").write_text(render("index.html", runs=listing, root="", version=tracegen.__version__),
                                            encoding="utf-8")
        _move_into_place(staging, out_dir, [r.id for r in runs])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SiteResult(out_dir / "index.html", pages, findings)


def _move_into_place(staging: Path, out_dir: Path, run_ids: list[str]) -> None:
    (out_dir / "runs").mkdir(exist_ok=True)
    for rid in run_ids:
        target = out_dir / "runs" / rid
        old = None
        if target.exists():
            old = out_dir / "runs" / f".{rid}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(staging / "runs" / rid, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    os.replace(staging / "index.html", out_dir / "index.html")
