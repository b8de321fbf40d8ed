"""Build the static site: ``index.html`` listing every run, one page per run, compare pages.

Layout of ``out``::

    index.html                  every run in the site, newest first, sortable and filterable
    runs/<run-id>/index.html    the run's page (+ findings.json, stats.json, summary.json,
                                latency.parquet: machine-readable)
    compare/<a>--vs--<b>/       each run against the previous run of the same model

Rebuilding is incremental: each page records a key (``incremental.page_key``: content hash of
the run, tracegen version, renderer); a run whose key is unchanged keeps its page, and only the
block of links to its neighbours is rewritten. A page whose run directory is gone (its recorded
source no longer holds a run) leaves the index and the site. Pages of runs that were not given
this time but still exist stay listed (a cumulative site).

One bad run never blocks the site: a run that cannot be read or analysed (corrupt Parquet,
negative durations, an orphan directory with no tables) is listed on the index with its problem
and skipped; ``SiteResult.skipped`` names them and the CLI exits with ``EXIT_SKIPPED``.

New pages are written into a temporary folder inside ``out`` and moved into place at the end, so
a report that fails half-way leaves the previous site as it was. Nothing outside ``index.html``,
``runs/<id>/`` of the runs in the site and tracegen's own ``compare/`` pages is touched, and a run
directory never is, whatever ``--out`` is.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tracegen.errors import ConfigError, TracegenError, TraceError
from tracegen.report import compare as C
from tracegen.report.incremental import page_key
from tracegen.report.index import index_html
from tracegen.report.iterations import read_iterations
from tracegen.report.page import NEIGHBOURS, SUMMARY_VERSION, RunPage
from tracegen.report.render import render
from tracegen.trace.reader import read_manifest

EXIT_SKIPPED = 3  # the site was written, but some runs were skipped (listed on the index)
COMPARE_DIR = "compare"


@dataclass(frozen=True)
class Skipped:
    id: str
    path: Path
    problem: str
    error: TracegenError | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class SiteResult:
    index: Path
    pages: list[tuple[str, Path]]  # (run id, page path) in the order the runs were given
    findings: dict[str, list] = field(default_factory=dict)  # run id -> findings, severity order
    notes: dict[str, str] = field(default_factory=dict)  # run id -> why a section is missing
    skipped: list[Skipped] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # run ids whose page was up to date
    compares: list[Path] = field(default_factory=list)
    seconds: float = 0.0


# -- entry point ------------------------------------------------------------------------------

def build_site(run_dirs: list[Path], out_dir: Path, *, budget_ms: float | None = None,
               compare_pages: bool = True) -> SiteResult:
    """Write ``out_dir/index.html``, ``out_dir/runs/<run-id>/`` for every run and the compare
    pages; the Python API behind ``tracegen report``."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"report output {out_dir} is a file, not a directory", "pass --out a directory")
    if (out_dir / "runs").exists() and not (out_dir / "runs").is_dir():
        raise ConfigError(f"{out_dir / 'runs'} is a file, not a directory", "pass --out another directory")
    _refuse_overlap(out_dir, run_dirs)
    probed, skipped = _probe(run_dirs)
    existing = _existing_pages(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tracegen-", dir=out_dir))
    try:
        pages, findings, notes, summaries, reused = [], {}, {}, {}, []
        for rid, d in probed:
            key = page_key(d, budget_ms)
            old = existing.get(rid)
            if old and old.get("page_key") == key and (out_dir / "runs" / rid / "index.html").is_file():
                summaries[rid] = old
                findings[rid] = _saved_findings(out_dir / "runs" / rid)
                reused.append(rid)
            else:
                try:
                    run, iters = read_iterations(d)  # the steps table streamed, never whole in memory
                    page = RunPage(run, budget_ms, iters=iters)
                    del run, iters
                    page.summary.update(page_key=key, source=str(Path(d).resolve()))
                    page.write(staging / "runs" / rid)
                except TracegenError as exc:
                    skipped.append(Skipped(rid, Path(d), str(exc), exc))
                    continue
                except Exception as exc:  # noqa: BLE001 - one run's bug must not cost every other page
                    if os.environ.get("TRACEGEN_DEBUG"):
                        raise
                    first = (str(exc).strip().splitlines() or [""])[0]
                    skipped.append(Skipped(rid, Path(d), f"internal error: {type(exc).__name__}: {first} "
                                                         "(set TRACEGEN_DEBUG=1 for the traceback and please report it)"))
                    continue
                summaries[rid] = page.summary
                findings[rid] = page.findings
                if page.note:
                    notes[rid] = page.note
                del page  # one run in memory at a time
            pages.append((rid, out_dir / "runs" / rid / "index.html"))
        if skipped and not pages:  # nothing to show: the one-line error of the (first) bad run
            raise skipped[0].error or TraceError(skipped[0].problem)
        skipped_ids = {s.id for s in skipped}
        gone = [rid for rid, s in existing.items() if rid not in summaries and (rid in skipped_ids or _deleted(s))]
        listing = {**{rid: s for rid, s in existing.items() if rid not in gone}, **summaries}
        ordered = sorted(listing.values(), key=lambda s: (s.get("started") or "", s["id"]))
        pairs = _pairs(ordered) if compare_pages else []
        compares = _compare_pages(out_dir, staging, pairs, {r for r, _ in probed} - set(reused))
        _write_neighbours(out_dir, staging, ordered, pairs, set(compares))
        rows = list(reversed(ordered)) + [_skipped_row(s) for s in skipped]
        (staging / "index.html").write_text(index_html(rows), encoding="utf-8")
        _move_into_place(staging, out_dir, [rid for rid in summaries if rid not in reused], gone,
                         {_compare_name(a, b) for a, b in pairs})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SiteResult(out_dir / "index.html", pages, findings, notes, skipped, reused,
                      [out_dir / COMPARE_DIR / n / "index.html" for n in compares], time.perf_counter() - t0)


def _probe(run_dirs: list[Path]) -> tuple[list[tuple[str, Path]], list[Skipped]]:
    """(run id, directory) of every run whose manifest reads, and the ones that do not."""
    probed, skipped = [], []
    for d in map(Path, run_dirs):
        try:
            manifest = read_manifest(d)
            rid = manifest.get("run_id") or d.name
            _check_id(rid, d)
        except TracegenError as exc:
            skipped.append(Skipped(_safe_name(d.name), d, str(exc), exc))
            continue
        probed.append((rid, d))
    ids = [rid for rid, _ in probed]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"two runs share the id {dup[0]}", "report them separately, or rename one run directory")
    return probed, skipped


def _safe_name(name: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in name) or "?"


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


def _check_id(rid: str, run_dir: Path) -> None:
    """The run id names a folder of the site: it must be a plain name, never a path."""
    if not isinstance(rid, str) or not rid or rid in (".", "..") or rid.startswith(".") or any(c in rid for c in "/\\\0"):
        raise TraceError(f"run id {rid!r} in {run_dir / 'manifest.json'} is not a plain folder name",
                         "set run_id in the manifest to letters, digits, '-' and '_'")


def _existing_pages(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Summaries of the run pages already in the site (ours, of this summary version)."""
    by_id = {}
    runs = out_dir / "runs"
    for path in sorted(runs.glob("*/summary.json")) if runs.is_dir() else []:
        try:
            s = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not ours, or damaged: leave it alone and unlisted
        if isinstance(s, dict) and s.get("summary_version") == SUMMARY_VERSION and s.get("id") == path.parent.name:
            by_id[s["id"]] = s
    return by_id


def _deleted(summary: dict[str, Any]) -> bool:
    """The page's run directory no longer holds a run: the run was deleted (or moved)."""
    source = summary.get("source")
    return bool(source) and not (Path(source) / "manifest.json").is_file()


def _saved_findings(page_dir: Path) -> list[Any]:
    try:
        data = json.loads((page_dir / "findings.json").read_text(encoding="utf-8"))
        return [SimpleNamespace(**f) for f in data.get("findings", [])]
    except (OSError, ValueError, TypeError):
        return []


def _skipped_row(s: Skipped) -> dict[str, Any]:
    return {"id": s.id, "href": None, "status": "skipped", "error": s.problem, "started": "", "date": "",
            "device": "", "backend": "", "precision": "", "model": "", "scenarios": "", "variants": 0,
            "variants_done": 0, "iterations": 0, "findings": {}, "finding_ids": [], "headline": None,
            "host": str(s.path), "cpu": "", "trend": []}


# -- neighbours and compare pages ------------------------------------------------------------------

def _pairs(ordered: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(earlier, later): each run with the latest earlier run of the same model that shares at
    least one variant (by parameters) with it, oldest first; runs with nothing in common (a
    batch run after an idle run) have nothing to compare."""
    seen: dict[str, list[dict[str, Any]]] = {}
    pairs = []
    for s in ordered:
        keys = {t["key"] for t in s.get("trend") or []}
        earlier = seen.setdefault(s.get("model") or "?", [])
        match = next((e for e in reversed(earlier) if keys & {t["key"] for t in e.get("trend") or []}), None)
        if match is not None:
            pairs.append((match["id"], s["id"]))
        earlier.append(s)
    return pairs


def _chronological(ordered: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(earlier, later) run ids of consecutive runs of the same model."""
    last: dict[str, str] = {}
    out = []
    for s in ordered:
        model = s.get("model") or "?"
        if model in last:
            out.append((last[model], s["id"]))
        last[model] = s["id"]
    return out


def _compare_name(a: str, b: str) -> str:
    return f"{a}--vs--{b}"


def _compare_pages(out_dir: Path, staging: Path, pairs: list[tuple[str, str]], rendered: set[str]) -> list[str]:
    """Write the compare page of every pair that has none yet or whose runs were re-rendered."""
    names = []
    for a, b in pairs:
        name = _compare_name(a, b)
        if a not in rendered and b not in rendered and (out_dir / COMPARE_DIR / name / "index.html").is_file():
            names.append(name)
            continue

        def where(rid: str) -> Path:
            return staging / "runs" / rid if (staging / "runs" / rid).is_dir() else out_dir / "runs" / rid

        try:
            side_a, side_b = C.side_from_page(where(a)), C.side_from_page(where(b))
        except TracegenError:
            continue  # a page from an older tracegen without its latencies: no compare page
        from tracegen.report.compare_view import write_compare  # imports altair: only when a page is written

        write_compare(C.compare(side_a, side_b), staging / COMPARE_DIR / name, root="../../", auto=True)
        names.append(name)
    return names


def _write_neighbours(out_dir: Path, staging: Path, ordered: list[dict[str, Any]], pairs: list[tuple[str, str]],
                      compares: set[str]) -> None:
    """Rewrite the block of links to the previous and next run of the same model in every page."""
    steps = _chronological(ordered)
    prev = {b: a for a, b in steps}
    nxt = {a: b for a, b in steps}
    for s in ordered:
        rid = s["id"]
        page = staging / "runs" / rid / "index.html"
        if not page.is_file():
            page = out_dir / "runs" / rid / "index.html"
        if not page.is_file():
            continue

        p, n = prev.get(rid), nxt.get(rid)
        partners = [({"id": b if a == rid else a, "href": f"{COMPARE_DIR}/{urllib.parse.quote(_compare_name(a, b))}/index.html"})
                    for a, b in pairs if rid in (a, b) and _compare_name(a, b) in compares]
        block = render("sections/neighbours.html", model=s.get("model") or "?", prev=p, next=n, compares=partners)
        html = page.read_text(encoding="utf-8")
        start, end = NEIGHBOURS
        i, j = html.find(start), html.find(end)
        if i < 0 or j < i:
            continue  # a page from before the block existed
        new = html[: i + len(start)] + block + html[j:]
        if new != html:
            tmp = page.with_name(".index.html.tmp")
            tmp.write_text(new, encoding="utf-8")
            os.replace(tmp, page)


def _move_into_place(staging: Path, out_dir: Path, run_ids: list[str], gone: list[str], compares: set[str]) -> None:
    (out_dir / "runs").mkdir(exist_ok=True)
    for rid in run_ids:
        _swap(staging / "runs" / rid, out_dir / "runs" / rid)
    for rid in gone:  # pages of deleted or now-broken runs (pages only: run data is refused above)
        shutil.rmtree(out_dir / "runs" / rid, ignore_errors=True)
    cmp_dir = out_dir / COMPARE_DIR
    if (staging / COMPARE_DIR).is_dir():
        cmp_dir.mkdir(exist_ok=True)
        for new in (staging / COMPARE_DIR).iterdir():
            _swap(new, cmp_dir / new.name)
    if cmp_dir.is_dir():  # tracegen's own compare pages of pairs that no longer follow each other
        for old in cmp_dir.iterdir():
            if old.name not in compares and _auto_compare(old):
                shutil.rmtree(old, ignore_errors=True)
    os.replace(staging / "index.html", out_dir / "index.html")


def _auto_compare(path: Path) -> bool:
    try:
        return json.loads((path / "compare.json").read_text(encoding="utf-8")).get("auto") is True
    except (OSError, ValueError, AttributeError):
        return False


def _swap(new: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)  # rename first: the swap is two renames, not a long copy
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
