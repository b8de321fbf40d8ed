"""``tracegen nsys-import``: the GPU work of an Nsight Systems report, per step of a run.

Two uses:

- ``import_into_run(RUN_DIR, REPORT)``: a run recorded with ``tracegen run --nsys`` (or any run
  whose NVTX ranges the report holds). The ``tracegen`` domain's variant ranges (message = the
  variant's name), iteration ranges (payload = iteration index) and step ranges identify each
  row of ``steps.parquet``; the kernels, memcpys and memsets each step launched are written to
  ``nsys_kernels.parquet`` and summarised per step in ``nsys_steps.parquet``.
- ``report_to_run(REPORT, OUT)`` (``tracegen.importers.nsys_app``): an application's own NVTX
  ranges become a new tracegen run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from tracegen.errors import TraceError
from tracegen.importers import nsys_export as X
from tracegen.importers.nsys_join import OTHER_STEP, nest, place_calls, place_ops, step_summary, structure
from tracegen.trace import schema as S

TRACEGEN_DOMAIN = "tracegen"
ITERATION_RANGE = "iteration"  # tracegen's own iteration ranges (telemetry.nvtx)


@dataclass
class Joined:
    """An export joined: iterations, steps, placed GPU work and its per-step summary (nsys clock)."""

    iterations: pl.DataFrame  # it_rid, tid, it_start, it_end, variant, iteration
    steps: pl.DataFrame  # it_rid, step_rid, step, step_start, step_end
    ops: pl.DataFrame  # kind, start, end, correlation_id, stream, device, bytes, name, graph, api_start, it_rid, step_rid
    summary: pl.DataFrame  # per (it_rid, step_rid): NSYS_STEPS_SCHEMA's measures
    unplaced_ops: int  # GPU work whose launch was outside every iteration
    total_ops: int
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ImportResult:
    run_dir: Path
    sqlite: Path
    iterations: int
    steps: int
    kernels: int
    memcpys: int
    memsets: int
    unplaced_ops: int
    clock_offset_ns: int | None


def resolve_export(report: Path, nsys: str | None = None) -> Path:
    """The SQLite export of ``report`` (an .nsys-rep is exported first; an .sqlite is used as is)."""
    report = Path(report)
    if not report.exists():
        raise TraceError(f"{report} does not exist", "pass an .nsys-rep report or its .sqlite export")
    if report.suffix == ".sqlite":
        return report
    if report.suffix in (".nsys-rep", ".qdrep"):
        return X.export_sqlite(report, nsys)
    raise TraceError(f"{report} is neither an .nsys-rep report nor an .sqlite export",
                     "pass the report `nsys profile` wrote, or `nsys export --type sqlite` of it")


def find_domain(ex: X.Export, name: str) -> int:
    doms = X.domains(ex)
    for i, n in doms.items():
        if n == name:
            return i
    if name == TRACEGEN_DOMAIN:
        # A capture range that began after the domain was created may leave out its name row: take
        # the one unnamed domain whose ranges include tracegen's iteration ranges.
        rows = ex.conn.execute(
            f"SELECT DISTINCT COALESCE(e.domainId, 0) FROM {X.NVTX} e {X._strings_join(ex)} WHERE e.eventType IN "
            f"({X.NVTX_PUSHPOP}, {X.NVTX_STARTEND}) AND {X._text(ex)} = ?", (ITERATION_RANGE,)).fetchall()
        unnamed = [int(r[0]) for r in rows if int(r[0]) not in doms]
        if len(unnamed) == 1:
            return unnamed[0]
    seen = ", ".join(sorted(n for i, n in doms.items() if i != 0 or X.range_counts(ex, 0, 1)))
    raise TraceError(f"{ex.path} has no NVTX ranges in the domain {name!r} (domains present: {seen or 'none'})",
                     "pass --domain with one of those names" if seen else
                     "annotate the application with NVTX ranges and record with `nsys profile -t cuda,nvtx`")


def join_export(ex: X.Export, domain: str, iteration_name: str) -> Joined:
    """Join the NVTX ranges of ``domain`` with the CUDA API calls and the GPU work they caused."""
    X.check_schema(ex)
    dom = find_domain(ex, domain)
    ranges = X.ranges(ex, dom)
    nested = nest(ranges)
    its, steps = structure(nested, iteration_name)
    if its.height == 0:
        common = ", ".join(f"{n!r} x{c}" for n, c in X.range_counts(ex, dom))
        raise TraceError(f"{ex.path}: the NVTX domain {domain!r} has no ranges named {iteration_name!r} "
                         f"(most frequent: {common or 'none'})", "pass --iteration-range with the name of the "
                         "range around one iteration of your loop")
    ops = X.gpu_ops(ex)
    if ops.height == 0:
        raise TraceError(f"{ex.path} has no CUDA kernels, copies or memsets (the tables are empty)",
                         "record while the application runs GPU work, with `nsys profile -t cuda,nvtx`")
    calls = place_calls(X.api_calls(ex), its, steps)
    placed, unplaced = place_ops(ops, calls)
    keys = steps.select("it_rid", "step_rid")
    outside = placed.filter(pl.col("step_rid").is_null()).select("it_rid", "step_rid").unique()
    keys = pl.concat([keys, outside], how="vertical_relaxed")
    summary = step_summary(placed, calls, keys)
    return Joined(its, steps, placed, summary, unplaced, ops.height, {"export": ex.facts()})


def _step_frames(j: Joined, variant_ids: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-step and per-op frames keyed by (variant_id, iteration, step), times still on nsys's clock."""
    where = j.iterations.join(variant_ids, on="variant", how="inner").select(
        "it_rid", "variant_id", "iteration", "it_start", "it_end")
    steps = j.steps.select("it_rid", "step_rid", "step", "step_start", "step_end")
    summary = (
        j.summary.join(where, on="it_rid", how="inner")
        .join(steps.drop("it_rid"), on="step_rid", how="left")
        .with_columns(
            pl.col("step").fill_null(OTHER_STEP),
            pl.coalesce("step_start", "it_start").alias("range_start_ns"),
            (pl.coalesce("step_end", "it_end") - pl.coalesce("step_start", "it_start")).alias("range_ns"),
        )
    )
    ops = (
        j.ops.join(where.select("it_rid", "variant_id", "iteration"), on="it_rid", how="inner")
        .join(steps.select("step_rid", "step"), on="step_rid", how="left")
        .with_columns(pl.col("step").fill_null(OTHER_STEP), (pl.col("end") - pl.col("start")).alias("duration_ns"),
                      pl.col("start").alias("start_ns"), pl.col("api_start").alias("launch_ns"))
    )
    return summary, ops


def _shift(summary: pl.DataFrame, ops: pl.DataFrame, offset: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    return (summary.with_columns(pl.col("range_start_ns") - offset),
            ops.with_columns(pl.col("start_ns") - offset, pl.col("launch_ns") - offset))


def import_into_run(run_dir: Path, report: Path | None = None, *, domain: str = TRACEGEN_DOMAIN,
                    nsys: str | None = None) -> ImportResult:
    """Join a report (or, by default, every report ``tracegen run --nsys`` kept: one per capture
    window with a focused capture) with the run it recorded and store the per-step GPU tables."""
    from tracegen.trace.atomic import write_json
    from tracegen.trace.nsys_tables import write_nsys_tables
    from tracegen.trace.reader import read_manifest, read_run

    run_dir = Path(run_dir)
    run = read_run(run_dir)
    reports = [Path(report)] if report is not None else default_reports(run_dir, run.manifest)
    names = run.variants.select(pl.col("name").alias("variant"), "variant_id")
    summaries, opses, entries, in_report, unplaced, total = [], [], [], set(), 0, 0
    for rep in reports:
        sqlite = resolve_export(rep, nsys)
        ex = X.open_export(sqlite)
        try:
            j = join_export(ex, domain, ITERATION_RANGE)
        finally:
            ex.close()
        seen = set(j.iterations["variant"].unique().to_list())
        in_report |= seen
        if not seen & set(names["variant"].to_list()):
            raise TraceError(
                f"{sqlite} does not belong to {run_dir}: its variant ranges ({', '.join(map(repr, sorted(seen)[:4]))}) "
                f"are none of the run's variants", "pass the report recorded with this run (its profile.nsys-rep)")
        summary, ops = _step_frames(j, names)
        offset = clock_offset(summary, run.steps)
        summary, ops = _shift(summary, ops, offset)
        cover = summary.group_by("variant_id").agg(pl.col("iteration").min().alias("a"), pl.col("iteration").max()
                                                   .alias("b")).sort("variant_id")
        entries.append({"sqlite": _relative(sqlite, run_dir), "clock_offset_ns": offset, "export": j.meta.get("export", {}),
                        "covers": [list(r) for r in cover.iter_rows()]})
        summaries.append(summary)
        opses.append(ops)
        unplaced += j.unplaced_ops
        total += j.total_ops
    summary = pl.concat(summaries, how="vertical_relaxed")
    ops = pl.concat(opses, how="vertical_relaxed")
    write_nsys_tables(run_dir, summary, ops)
    manifest = read_manifest(run_dir)
    count = dict(ops.group_by("kind").len().iter_rows())
    manifest["nsys_import"] = {
        "version": S.NSYS_TABLES_VERSION, "sqlite": entries[0]["sqlite"], "domain": domain,
        "iteration_range": ITERATION_RANGE, "clock_offset_ns": entries[0]["clock_offset_ns"],
        "export": entries[0]["export"], "reports": entries, "variants_in_report": sorted(in_report),
        "unplaced_ops": unplaced, "ops": total,
    }
    write_json(run_dir / S.MANIFEST, manifest)
    return ImportResult(run_dir, Path(entries[0]["sqlite"]) if len(entries) == 1 else run_dir,
                        int(summary.select("variant_id", "iteration").n_unique()), summary.height,
                        count.get("kernel", 0), count.get("memcpy", 0), count.get("memset", 0), unplaced,
                        entries[0]["clock_offset_ns"])


def default_reports(run_dir: Path, manifest: dict) -> list[Path]:
    """The report(s) ``tracegen run --nsys`` kept with the run (their exports, when already made)."""
    nsys = manifest.get("nsys") or {}
    names = list(nsys.get("reports") or []) or [nsys.get("report") or "profile.nsys-rep"]
    out = []
    for name in names:
        rep = Path(run_dir) / name
        sqlite = rep.with_suffix(".sqlite")
        if sqlite.exists():
            out.append(sqlite)
        elif rep.exists():
            out.append(rep)
        else:
            raise TraceError(f"{run_dir} has no Nsight Systems report ({name})",
                             "pass the report as the second argument, or record the run with `tracegen run --nsys`")
    return out


def clock_offset(summary: pl.DataFrame, steps: pl.DataFrame) -> int:
    """nsys time minus run time, the median over the steps both recorded (they time the same
    ranges, so the spread is the NVTX push cost: well under a microsecond)."""
    both = summary.join(steps.select("variant_id", "iteration", pl.col("step").cast(pl.String), "host_start_ns"),
                        on=["variant_id", "iteration", "step"], how="inner")
    if both.height == 0:
        raise TraceError("no step of the report matches a step of the run (same variant, iteration and step)",
                         "pass the report recorded with this run (its profile.nsys-rep)")
    return int((both["range_start_ns"] - both["host_start_ns"]).median())


def _relative(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(Path(path).resolve())
