"""One run's page: the analysis result rendered (findings first, then batch scaling, idle delay,
statistics, steps, telemetry, environment, how to reproduce), plus its machine-readable files.

``RunPage`` analyses the run once (``analysis.findings.analyze``) and renders what that returns;
the only frame computed here is the per-iteration one, which the analysis takes as given.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import urllib.parse
from pathlib import Path
from typing import Any

import polars as pl

import tracegen
from tracegen.analysis import stats as S
from tracegen.report import charts
from tracegen.report.iterations import iterations as fast_iterations
from tracegen.report.render import ChartSet, render, vega_javascript
from tracegen.trace.reader import Run
from tracegen.trace.schema import STEP_ORDER
from tracegen.units import SEVERITY_ORDER, fmt_si, jsonable

SEVERITIES = SEVERITY_ORDER
SUMMARY_VERSION = 2  # of runs/<id>/summary.json; other versions are left out of the index
VARIANT_PARAMS = ("scenario", "batch", "idle_ms", "pacing", "launch", "sync_mode", "pipeline")
LATENCIES = "latency.parquet"
NEIGHBOURS = ("<!-- tracegen:neighbours -->", "<!-- /tracegen:neighbours -->")  # rewritten on each report

# -- one run page ------------------------------------------------------------------------------

def _analyze(run: Run, budget_ms: float | None, iters: pl.DataFrame):
    """The analysis (findings, tiers, change points, scaling), or None with the reason when
    the analysis package is not installed."""
    try:
        from tracegen.analysis.findings import analyze
    except ImportError as exc:
        return None, f"the analysis module is not available ({exc}); only statistics are shown"
    return analyze(run, budget_ms=budget_ms, iters=iters), None


class RunPage:
    """Everything shown on one run's page. The page renders the analysis result: statistics,
    tiers, change points and scaling come from ``analyze`` (one pass over the run), never
    recomputed here."""

    def __init__(self, run: Run, budget_ms: float | None, iters: pl.DataFrame | None = None):
        """``iters``: the run's per-iteration frame when the caller has it (``iterations.read_iterations``
        streams the steps table into it; ``run.steps`` may then be empty)."""
        self.iters = fast_iterations(run.steps, S.latency_basis(run.manifest)) if iters is None else iters
        from tracegen.importers.sections import page_sections  # origin and layer table (importers' hook)

        present = [s for s in STEP_ORDER if f"{s}_host_ns" in self.iters.columns]  # the steps that occurred
        self.hook_sections = page_sections(run, present=present)
        # The steps frame is the largest thing in memory and nothing below reads it again.
        self.run = run = dataclasses.replace(run, steps=run.steps.clear())
        self.budget_ms = budget_ms
        self.analysis, self.note = _analyze(run, budget_ms, self.iters)
        stats = getattr(self.analysis, "stats", None)
        self.stats = stats if stats is not None else S.variant_stats(run.variants, self.iters)
        self.medians = S.step_medians(self.iters)
        self.findings = list(self.analysis.findings) if self.analysis else []
        self.tiers = dict(getattr(self.analysis, "tiers", None) or {})
        self.changepoints = dict(getattr(self.analysis, "changepoints", None) or {})
        self.scaling = getattr(self.analysis, "scaling", None)
        self.summary = run_summary(run, self.findings, self.iters, self.stats)
        # what the latency charts read, narrow (the wide frame has a column per step and clock)
        self.lat = self.iters.select("variant_id", "iteration", "warmup", "latency_ns")
        self.thinned: dict = {}  # each variant's thinned series, shared by the charts that draw it
        self.charts = ChartSet()

    # -- sections --
    def _finding_chart(self, f) -> str:
        ids = list(f.variants)
        if f.chart == "latency_trace" and ids:
            marked = {ids[0]: [tuple(r) for r in f.iterations]} if f.iterations else None
            chart = charts.latency_trace(self.lat, self.run.variants, ids, tiers=self.tiers, cache=self.thinned,
                                         changepoints=self.changepoints, highlight=marked)
        elif f.chart == "batch_scaling":
            chart = self._batch_chart()
        elif f.chart == "step_breakdown" and ids:
            chart = charts.step_breakdown(self.medians, self.run.variants, ids)
        elif f.chart == "clock_vs_latency" and ids and self.run.telemetry.height:
            chart = charts.clock_vs_latency(self.iters, self.run.telemetry, self.run.variants, ids)
        else:
            chart = None
        return self.charts.add(chart, f"finding-{f.id}")

    def _batch_chart(self):
        knee = (self.scaling or {}).get("knee_batch")
        return charts.batch_scaling(self.stats, budget_ms=self.budget_ms, knee_batch=knee)

    def findings_section(self) -> list[dict[str, Any]]:
        order = {s: i for i, s in enumerate(SEVERITIES)}
        ranked = sorted(self.findings, key=lambda f: order.get(f.severity, len(order)))
        seen: dict[str, int] = {}  # a kind can give several findings (one verdict per slowdown): unique anchors
        out = []
        for f in ranked:
            seen[f.id] = seen.get(f.id, 0) + 1
            anchor = f"finding-{f.id}" + (f"-{seen[f.id]}" if seen[f.id] > 1 else "")
            out.append({"finding": f, "chart_html": self._finding_chart(f), "anchor": anchor})
        return out

    def batch_section(self) -> dict[str, Any] | None:
        rows = self.stats.filter((pl.col("scenario") == "batch") & (pl.col("n") > 0)).sort(
            "launch", "sync_mode", "pipeline", "batch", "variant_id")
        if rows.height == 0:
            return None
        scaling = self.scaling or {}
        facts = {k: v for k, v in scaling.items() if not isinstance(v, (dict, list, tuple)) and v is not None}
        base = {}  # per-image time and efficiency against batch 1 of the same launch series
        for r in rows.iter_rows(named=True):
            base.setdefault(charts.series_label(r), r)
        clocks = telemetry_medians(self.run.telemetry)
        table = []
        for r in rows.iter_rows(named=True):
            ref, point = base[charts.series_label(r)], clocks.get(r["variant_id"], {})
            gain = ref["per_image_ms"] / r["per_image_ms"] if r["per_image_ms"] else None
            table.append({**r, "series": charts.series_label(r), "gain": gain, "sm_clock_mhz": point.get("sm_clock_mhz"),
                          "power_w": point.get("power_w")})
        return {"chart": self.charts.add(self._batch_chart(), "batch"), "rows": table, "facts": facts}

    def idle_section(self) -> dict[str, Any] | None:
        idle = self.run.variants.filter(pl.col("scenario") == "idle")
        if idle.height == 0:
            return None
        baseline = idle.filter(pl.col("pacing") == "none")
        groups = []
        gaps = sorted(set(idle["idle_ms"].to_list()))
        if len(gaps) > 1 and baseline.height:
            gaps = [g for g in gaps if g != 0]  # every gap's chart already has the baseline rows
        for gap in gaps:
            at_gap = idle.filter(pl.col("idle_ms") == gap)
            shown = at_gap if gap == 0 else pl.concat([baseline, at_gap.filter(pl.col("pacing") != "none")])
            title = "Continuous (no gap)" if gap == 0 else f"{gap:g} ms gap before each inference"
            chart = charts.latency_trace(self.lat, self.run.variants, charts.idle_order(shown), cache=self.thinned,
                                         tiers=self.tiers, changepoints=self.changepoints)
            groups.append({"title": title, "chart": self.charts.add(chart, "idle")})
        names = dict(zip(self.run.variants["variant_id"].to_list(), self.run.variants["name"].to_list()))
        tiers = [{"variant_id": vid, "name": names.get(vid, str(vid)), **t}
                 for vid, t in sorted(self.tiers.items()) if vid in set(idle["variant_id"].to_list())]
        return {"groups": groups, "tiers": tiers}

    def steps_section(self) -> dict[str, Any]:
        """The stacked chart plus the same medians as a table: (step, clock) columns in
        pipeline order, one row per variant."""
        m = self.medians.filter(pl.col("step") != "idle")
        present = set(zip(m["step"].to_list(), m["clock"].to_list()))
        columns = [(s, c) for c in ("host", "gpu") for s in charts.DRAWN_STEPS if (s, c) in present]
        cells = {(r["variant_id"], r["step"], r["clock"]): r["median_ms"] for r in m.iter_rows(named=True)}
        rows = [{"variant_id": v["variant_id"], "name": v["name"],
                 "values": [cells.get((v["variant_id"], s, c)) for s, c in columns]}
                for v in self.run.variants.sort("variant_id").iter_rows(named=True)
                if any((v["variant_id"], s, c) in cells for s, c in columns)]
        return {"chart": self.charts.add(charts.step_breakdown(self.medians, self.run.variants), "steps"),
                "columns": columns, "rows": rows}

    def telemetry_section(self) -> str:
        if self.run.telemetry.height == 0:
            return ""
        return self.charts.add(charts.telemetry_timeline(self.run.telemetry, self.run.variants, self.iters), "telemetry")

    # -- output --
    def html(self) -> str:
        m = self.run.manifest
        sections = dict(findings=self.findings_section(), batch=self.batch_section(), idle=self.idle_section(),
                        steps=self.steps_section(), telemetry=self.telemetry_section())
        sections.update(self.hook_sections)
        from tracegen.importers.nsys_page import kernels_section  # GPU kernels from nsys (nsys helper's hook)

        sections["kernels_info"] = kernels_section(self.run, self.findings, self.charts)
        return render("run.html", run=self.summary, manifest=m, stats=self.stats.to_dicts(), note=self.note,
                      analysis_available=self.analysis is not None, environment=environment_rows(m),
                      reproduce=reproduce(m), budget_ms=self.budget_ms, root="../../", neighbours=NEIGHBOURS,
                      charts_json=self.charts.script_blocks(), vega_js=vega_javascript(), **sections)

    def stats_json(self) -> dict[str, Any]:
        return {"run_id": self.run.id, "tracegen_version": tracegen.__version__,
                "schema_version": self.run.manifest.get("schema_version"), "status": self.run.status,
                "variants": self.stats.to_dicts(), "step_medians": self.medians.to_dicts(),
                "tiers": {str(k): v for k, v in self.tiers.items()},
                "changepoints": {str(k): v for k, v in self.changepoints.items()}, "scaling": self.scaling}

    def write(self, dest: Path) -> None:
        dest.mkdir(parents=True)
        (dest / "index.html").write_text(self.html(), encoding="utf-8")
        findings = [f.to_dict() for f in self.findings]
        _write_json(dest / "findings.json", {"run_id": self.run.id, "tracegen_version": tracegen.__version__,
                                             "budget_ms": self.budget_ms, "findings": findings})
        _write_json(dest / "stats.json", self.stats_json())
        _write_json(dest / "summary.json", self.summary)
        # measured latencies, what a compare page tests for significance without the run itself
        self.iters.filter(~pl.col("warmup")).select("variant_id", "iteration", "latency_ns").write_parquet(
            dest / LATENCIES, compression="zstd", statistics=False)


def telemetry_medians(telemetry: pl.DataFrame) -> dict[int, dict[str, float | None]]:
    """Median SM clock and power per variant from the telemetry samples taken while it ran."""
    cols = [c for c in ("sm_clock_mhz", "power_w") if c in telemetry.columns]
    if telemetry.height == 0 or not cols:
        return {}
    med = telemetry.filter(pl.col("variant_id").is_not_null()).group_by("variant_id").agg(pl.col(cols).median())
    return {r.pop("variant_id"): r for r in med.to_dicts()}


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(jsonable(data), indent=2), encoding="utf-8")


# -- facts about a run, for the index and the page header ------------------------------------------

def variant_key(row: dict[str, Any]) -> str:
    """What identifies a variant across runs: its parameters, not its id or name."""
    return "|".join(str(row.get(k)) for k in VARIANT_PARAMS)


def run_summary(run: Run, findings: list, iters: pl.DataFrame, stats: pl.DataFrame) -> dict[str, Any]:
    m = run.manifest
    gpu, host = m.get("gpu") or {}, m.get("host") or {}
    backend, model = m.get("backend") or {}, m.get("model") or {}
    v = run.variants
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
    started = (m.get("started_utc") or "")[:19].replace("T", " ")
    return {
        "summary_version": SUMMARY_VERSION,
        "id": run.id,
        "href": f"runs/{urllib.parse.quote(run.id)}/index.html",
        "started": started,
        "date": started[:10],
        "status": run.status,
        "error": m.get("error"),
        "host": host.get("hostname") or "?",
        "cpu": host.get("cpu_model") or "?",
        "device": gpu.get("name") or f"CPU ({host.get('cores_logical', '?')} cores)",
        "backend": backend.get("name") or "?",
        "precision": backend.get("precision") or "",
        "model": model.get("spec") or model.get("path") or "?",
        "scenarios": ", ".join(sorted(set(v["scenario"].to_list()))) if v.height else "",
        "variants": v.height,
        "variants_done": int(v.filter(pl.col("status") == "complete").height) if v.height else 0,
        "iterations": iters.height,
        "finding_ids": sorted({f.id for f in findings}),
        # p50/p99 per variant (by parameters) for the index's per-model trend
        "trend": [{"key": variant_key(r), "label": charts.variant_label(r) if r["scenario"] == "idle"
                   else f"batch {r['batch']}, {charts.series_label(r)}", "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]}
                  for r in stats.filter(pl.col("n") > 0).iter_rows(named=True)],
        "findings": counts,
        "worst": next((s for s in SEVERITIES if counts[s]), None),
        "headline": min(findings, key=lambda f: SEVERITIES.index(f.severity) if f.severity in SEVERITIES else 9).title
        if findings else None,
    }


def environment_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """The run's environment as (label, text) rows; absent facts are left out."""
    host, gpu = m.get("host") or {}, m.get("gpu") or {}
    backend, model = m.get("backend") or {}, m.get("model") or {}
    tel = m.get("telemetry") or {}

    def join(*parts: Any) -> str:
        return " · ".join(str(p) for p in parts if p not in (None, "", [], {}))

    def shape(io: dict[str, Any] | None) -> str:
        if not io:
            return ""
        dims = "×".join(str(d) for d in io.get("shape") or [])
        return join(io.get("name"), f"[{dims}]" if dims else None, io.get("dtype"))

    cores = f"{host.get('cores_physical') or '?'} physical / {host.get('cores_logical') or '?'} logical cores"
    rows = [
        ("host", join(host.get("hostname"), host.get("cpu_model"), cores,
                      f"{host['memory_bytes'] / 2**30:.0f} GiB" if host.get("memory_bytes") else None,
                      f"governor {host['cpu_governor']}" if host.get("cpu_governor") else None)),
        ("system", join(host.get("os"), f"kernel {host['kernel']}" if host.get("kernel") else None,
                        f"Python {host['python']}" if host.get("python") else None)),
    ]
    if gpu.get("name"):
        clocks = join(f"max SM {gpu['max_sm_clock_mhz']} MHz" if gpu.get("max_sm_clock_mhz") else None,
                      f"max memory {gpu['max_mem_clock_mhz']} MHz" if gpu.get("max_mem_clock_mhz") else None,
                      f"application SM {gpu['app_sm_clock_mhz']} MHz" if gpu.get("app_sm_clock_mhz") else None)
        rows += [
            ("GPU", join(gpu.get("name"), f"compute capability {gpu['compute_capability']}" if gpu.get("compute_capability") else None,
                         f"{gpu['memory_total_mb'] / 1024:.0f} GiB" if gpu.get("memory_total_mb") else None, gpu.get("uuid"))),
            ("driver / CUDA", join(gpu.get("driver"), f"CUDA {gpu['cuda']}" if gpu.get("cuda") else None)),
            ("clocks", clocks),
            ("power limit", f"{gpu['power_limit_w']:g} W" if gpu.get("power_limit_w") else ""),
            ("persistence mode", {1: "on", 0: "off", True: "on", False: "off"}.get(gpu.get("persistence_mode"), "")),
            ("host sync", join(gpu.get("sync_mode"))),
        ]
    else:
        rows.append(("GPU", "none (CPU run)"))
    versions = backend.get("versions") or {}
    rows += [
        ("backend", join(backend.get("name"), backend.get("precision"), *(f"{k} {v}" for k, v in versions.items()))),
        ("model", join(model.get("spec"), model.get("kind"), model.get("path"))),
        ("input → output", join(shape(model.get("input")), shape(model.get("output")), )),
        ("parameters", _si(model.get("params"))),
        ("FLOPs per image", _si(model.get("flops_per_image"), "FLOP")),
        ("model sha256", model.get("sha256") or ""),
        ("libraries", join(*(f"{k} {v}" for k, v in (m.get("libraries") or {}).items()))),
        ("telemetry", join("CPU frequency" if tel.get("cpu_frequency") else None, "GPU (NVML)" if tel.get("gpu") else None,
                           f"every {tel['interval_ms']:g} ms" if tel.get("interval_ms") else None) or "none"),
        ("started / ended (UTC)", join(m.get("started_utc"), m.get("ended_utc"))),
    ]
    return [(k, v) for k, v in rows if v]


def _si(value: Any, unit: str = "") -> str:
    return "" if value is None else f"{fmt_si(value, unit)} ({value:,})"


def reproduce(m: dict[str, Any]) -> dict[str, Any]:
    """The exact command (shell-quoted), the resolved options and the versions that matter."""
    cmd = [str(c) for c in m.get("command") or []]
    # The first element may be a multi-word launcher ("python -m tracegen"): keep it as is.
    command = " ".join([cmd[0], *map(shlex.quote, cmd[1:])]) if cmd else ""
    nsys = m.get("nsys") or {}
    return {
        "command": command,
        "config": m.get("config") or {},
        "tracegen_version": m.get("tracegen_version"),
        "schema_version": m.get("schema_version"),
        "nsys_report": nsys.get("report"),
        "nsys_command": " ".join(shlex.quote(str(c)) for c in nsys.get("command") or []),
    }
