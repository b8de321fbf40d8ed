"""Build the static site: ``index.html`` listing every run page and one page per run.

Layout of ``out``::

    index.html                 every run page in the site, newest first
    runs/<run-id>/index.html   the run's page
    runs/<run-id>/findings.json, stats.json, summary.json   machine-readable

Pages are written into a temporary folder inside ``out`` and moved into place at the end, so a
report that fails half-way leaves the previous site as it was. Only ``index.html`` and the
``runs/<run-id>/`` folders of the runs given are replaced; nothing else in ``out`` is touched,
and run pages from earlier reports stay listed in the index (each page leaves a
``summary.json``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

import tracegen
from tracegen.analysis import stats as S
from tracegen.errors import ConfigError, TraceError
from tracegen.report import charts
from tracegen.report.render import ChartSet, fmt_si, render, vega_javascript
from tracegen.trace.reader import Run, read_run
from tracegen.units import SEVERITY_ORDER, jsonable

SEVERITIES = SEVERITY_ORDER
SUMMARY_VERSION = 1  # of runs/<id>/summary.json; other versions are left out of the index


@dataclass(frozen=True)
class SiteResult:
    index: Path
    pages: list[tuple[str, Path]]  # (run id, page path) in the order the runs were given
    findings: dict[str, list] = field(default_factory=dict)  # run id -> findings, severity order
    notes: dict[str, str] = field(default_factory=dict)  # run id -> why a section is missing


# -- entry point ------------------------------------------------------------------------------

def build_site(run_dirs: list[Path], out_dir: Path, *, budget_ms: float | None = None) -> SiteResult:
    """Write ``out_dir/index.html`` and ``out_dir/runs/<run-id>/`` for every run; the Python
    API behind ``tracegen report``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"report output {out_dir} is a file, not a directory", "pass --out a directory")
    if (out_dir / "runs").exists() and not (out_dir / "runs").is_dir():
        raise ConfigError(f"{out_dir / 'runs'} is a file, not a directory", "pass --out another directory")
    _refuse_overlap(out_dir, run_dirs)
    runs = [read_run(d) for d in run_dirs]  # validate every run before writing anything
    for run in runs:
        _check_id(run)
    ids = [r.id for r in runs]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"two runs share the id {dup[0]}", "report them separately, or rename one run directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tracegen-", dir=out_dir))
    try:
        pages, findings, notes, summaries = [], {}, {}, []
        for run in runs:
            page = RunPage(run, budget_ms)
            page.write(staging / "runs" / run.id)
            findings[run.id] = page.findings
            if page.note:
                notes[run.id] = page.note
            summaries.append(page.summary)
            pages.append((run.id, out_dir / "runs" / run.id / "index.html"))
        listing = _listing(out_dir, summaries)
        (staging / "index.html").write_text(render("index.html", runs=listing, root=""), encoding="utf-8")
        _move_into_place(staging, out_dir, ids)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SiteResult(out_dir / "index.html", pages, findings, notes)


def _refuse_overlap(out_dir: Path, run_dirs: list[Path]) -> None:
    """The site never writes inside, renames or deletes a run: refuse an output folder that
    holds a run where a page would go (``report -o .`` beside ``runs/``) or lies inside a run."""
    site = out_dir.resolve()
    pages = site / "runs"
    for d in run_dirs:
        run = Path(d).resolve()
        if site == run or run in site.parents:
            raise ConfigError(f"report output {out_dir} is inside the run {d}",
                              "pass --out a directory outside every run directory (default: site)")
        if pages == run or pages in run.parents:
            raise ConfigError(f"report output {out_dir} would replace the run {d} with its page",
                              "pass --out a directory whose runs/ folder holds no run data (default: site)")
    if pages.is_dir():  # pages of earlier reports may be replaced; run data never
        for child in pages.iterdir():
            if child.is_dir() and (child / "manifest.json").exists():
                raise ConfigError(f"{child} holds run data, not a report page",
                                  "pass --out a directory whose runs/ folder holds no run data (default: site)")


def _check_id(run: Run) -> None:
    """The run id names a folder of the site: it must be a plain name, never a path."""
    rid = run.id
    if not rid or rid in (".", "..") or rid.startswith(".") or any(c in rid for c in "/\\\0"):
        raise TraceError(f"run id {rid!r} in {run.path / 'manifest.json'} is not a plain folder name",
                         "set run_id in the manifest to letters, digits, '-' and '_'")


def _listing(out_dir: Path, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summaries of this report's runs plus the run pages already in the site, newest first."""
    by_id = {}
    for path in sorted((out_dir / "runs").glob("*/summary.json")) if (out_dir / "runs").is_dir() else []:
        try:
            s = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not ours, or damaged: leave it alone and unlisted
        if isinstance(s, dict) and s.get("summary_version") == SUMMARY_VERSION and s.get("id") == path.parent.name:
            by_id[s["id"]] = s
    by_id.update({s["id"]: s for s in new})
    return sorted(by_id.values(), key=lambda s: (s.get("started") or "", s["id"]), reverse=True)


def _move_into_place(staging: Path, out_dir: Path, run_ids: list[str]) -> None:
    (out_dir / "runs").mkdir(exist_ok=True)
    for rid in run_ids:
        target = out_dir / "runs" / rid
        old = out_dir / "runs" / f".{rid}.old"
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)  # rename first: the swap is two renames, not a long copy
        os.replace(staging / "runs" / rid, target)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(staging / "index.html", out_dir / "index.html")


# -- one run page ------------------------------------------------------------------------------

def _analyze(run: Run, budget_ms: float | None):
    """The analysis (findings, tiers, change points, scaling), or None with the reason when
    the analysis package is not installed."""
    try:
        from tracegen.analysis.findings import analyze
    except ImportError as exc:
        return None, f"the analysis module is not available ({exc}); only statistics are shown"
    return analyze(run, budget_ms=budget_ms), None


class RunPage:
    """Everything shown on one run's page, computed once from the run's frames."""

    def __init__(self, run: Run, budget_ms: float | None):
        self.run = run
        self.budget_ms = budget_ms
        self.iters = S.iterations(run.steps, S.latency_basis(run.manifest))
        self.stats = S.variant_stats(run.variants, self.iters)
        self.medians = S.step_medians(self.iters)
        self.analysis, self.note = _analyze(run, budget_ms)
        self.findings = list(self.analysis.findings) if self.analysis else []
        self.tiers = dict(getattr(self.analysis, "tiers", None) or {})
        self.changepoints = dict(getattr(self.analysis, "changepoints", None) or {})
        self.scaling = getattr(self.analysis, "scaling", None)
        self.summary = run_summary(run, self.findings)
        self.charts = ChartSet()

    # -- sections --
    def _finding_chart(self, f) -> str:
        ids = list(f.variants)
        if f.chart == "latency_trace" and ids:
            marked = {ids[0]: [tuple(r) for r in f.iterations]} if f.iterations else None
            chart = charts.latency_trace(self.iters, self.run.variants, ids, tiers=self.tiers,
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
            chart = charts.latency_trace(self.iters, self.run.variants, charts.idle_order(shown),
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
        from tracegen.importers.sections import page_sections  # origin and layer table (importers' hook)

        sections.update(page_sections(self.run))
        from tracegen.importers.nsys_page import kernels_section  # GPU kernels from nsys (nsys helper's hook)

        sections["kernels_info"] = kernels_section(self.run, self.findings, self.charts)
        return render("run.html", run=self.summary, manifest=m, stats=self.stats.to_dicts(), note=self.note,
                      analysis_available=self.analysis is not None, environment=environment_rows(m),
                      reproduce=reproduce(m), budget_ms=self.budget_ms, root="../../",
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

def run_summary(run: Run, findings: list) -> dict[str, Any]:
    m = run.manifest
    gpu, host = m.get("gpu") or {}, m.get("host") or {}
    backend, model = m.get("backend") or {}, m.get("model") or {}
    v, steps = run.variants, run.steps
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
    return {
        "summary_version": SUMMARY_VERSION,
        "id": run.id,
        "href": f"runs/{urllib.parse.quote(run.id)}/index.html",
        "started": (m.get("started_utc") or "")[:19].replace("T", " "),
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
        "iterations": int(steps.select("variant_id", "iteration").n_unique()) if steps.height else 0,
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
