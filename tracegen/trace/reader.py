"""Validating reader of run directories."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tracegen.errors import TraceError
from tracegen.trace import schema as S
from tracegen.trace.liveness import writer_alive
from tracegen.trace.migrate import migrate


_MERGE_RETRIES = 5
#: Rows per batch when the steps table is streamed (``read_run_streamed``): about 40 MB.
STEPS_BATCH_ROWS = 1 << 20


class StepsNeedWholeRead(Exception):
    """A streamed steps batch failed validation: read the run with ``read_run``, which raises
    the error about the whole table (its counts and first bad row)."""


@dataclass(frozen=True)
class Run:
    """One run directory, read and validated. Frames follow ``trace.schema``."""

    path: Path
    manifest: dict[str, Any]
    variants: pl.DataFrame
    steps: pl.DataFrame
    telemetry: pl.DataFrame  # empty when the run had no telemetry

    @property
    def id(self) -> str:
        return self.manifest.get("run_id") or self.path.name

    @property
    def status(self) -> str:
        return self.manifest.get("status", "unknown")


def is_run_dir(path: Path) -> bool:
    return (Path(path) / S.MANIFEST).is_file()


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories named directly, or found one level inside the given directories."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise TraceError(f"{p} does not exist", "pass a run directory (runs/<run-id>) or a folder of runs")
        if is_run_dir(p):
            found.append(p)
        elif p.is_dir():
            inner = sorted(c for c in p.iterdir() if c.is_dir() and is_run_dir(c))
            if not inner:
                raise TraceError(f"{p} holds no tracegen runs (no manifest.json)", "run `tracegen run` first, or pass a run directory")
            found.extend(inner)
        else:
            raise TraceError(f"{p} is not a run directory", "pass a run directory (runs/<run-id>) or a folder of runs")
    return found


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / S.MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise TraceError(f"{run_dir} has no {S.MANIFEST}", "pass a directory written by `tracegen run`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path} is not valid JSON ({exc})", "the run is damaged; re-run the benchmark") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("schema_version"), int):
        raise TraceError(f"{path} has no integer schema_version", "the run is damaged or not from tracegen; re-run the benchmark")
    version = manifest["schema_version"]
    if version > S.SCHEMA_VERSION:
        raise TraceError(
            f"{run_dir} uses trace schema {version}, newer than the {S.SCHEMA_VERSION} this tracegen reads"
            f" (written by tracegen {manifest.get('tracegen_version', '?')})",
            "upgrade tracegen: pip install -U tracegen",
        )
    return manifest


def _table_files(run_dir: Path, name: str, parts: str | None) -> list[Path] | None:
    path = Path(run_dir) / name
    if path.exists():
        return [path]
    if parts and (Path(run_dir) / parts).is_dir():
        # Not merged (yet): the run is live, or died before merging; every flushed part reads.
        return sorted((Path(run_dir) / parts).glob("part-*.parquet"))
    return None


def _read_table(run_dir: Path, name: str, parts: str | None, required: bool) -> pl.DataFrame | None:
    for attempt in range(_MERGE_RETRIES):
        files = _table_files(run_dir, name, parts)
        if files is None:
            if required:
                raise TraceError(f"{run_dir} has no {name}", "the run did not get far enough to record anything; re-run it")
            return None
        try:
            frames = [_read_parquet(f) for f in files]
        except FileNotFoundError:
            # The writer merged the parts into `name` (atomically) and removed them while we
            # read: read again, the merged file is complete.
            time.sleep(0.05 * (attempt + 1))
            continue
        return pl.concat(frames, how="vertical_relaxed") if frames else None
    raise TraceError(f"{run_dir / name} kept changing while being read", "read the run again once it has finished")


def _read_parquet(f: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(f)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - polars raises several kinds for bad files
        if not f.exists():
            raise FileNotFoundError(f) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TraceError(
            f"{f} is unreadable or truncated ({first})",
            "re-run the benchmark; other runs are unaffected",
        ) from None


def _validate(df: pl.DataFrame, schema: dict[str, pl.DataType], where: Path) -> pl.DataFrame:
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise TraceError(f"{where} lacks columns {', '.join(missing)}", "the file is damaged or not from tracegen; re-run the benchmark")
    try:
        return df.select(list(schema)).cast(schema)
    except Exception as exc:  # noqa: BLE001
        raise TraceError(f"{where} has columns of the wrong type ({str(exc).splitlines()[0]})", "re-run the benchmark") from None


def read_run(run_dir: Path) -> Run:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TraceError(f"{run_dir} is not a directory", "pass a run directory (runs/<run-id>)")
    manifest = read_manifest(run_dir)
    tables: dict[str, pl.DataFrame] = {}
    tables[S.VARIANTS] = _read_table(run_dir, S.VARIANTS, None, required=True)
    steps = _read_table(run_dir, S.STEPS, S.STEPS_PARTS, required=True)
    tables[S.STEPS] = steps if steps is not None else S.empty(S.STEPS_SCHEMA)
    telemetry = _read_table(run_dir, S.TELEMETRY, S.TELEMETRY_PARTS, required=False)
    tables[S.TELEMETRY] = telemetry if telemetry is not None else S.empty(S.TELEMETRY_SCHEMA)
    try:
        manifest, tables = migrate(manifest, tables, S.SCHEMA_VERSION)
    except KeyError as exc:
        raise TraceError(f"{run_dir} uses trace schema {exc}, which this tracegen cannot migrate", "re-run the benchmark") from None
    for name, schema in S.TABLE_SCHEMAS.items():
        tables[name] = _validate(tables[name], schema, run_dir / name)
    check_durations(tables[S.STEPS], run_dir / S.STEPS)
    manifest, tables[S.VARIANTS] = _settle_status(run_dir, manifest, tables[S.VARIANTS], tables[S.STEPS])
    return Run(run_dir, manifest, tables[S.VARIANTS], tables[S.STEPS], tables[S.TELEMETRY])


def read_run_streamed(run_dir: Path, rows: int = STEPS_BATCH_ROWS) -> tuple[Run, Iterator[pl.DataFrame]] | None:
    """``read_run`` without loading the steps table: the run (``steps`` empty) and its steps as
    validated batches of at most ``rows`` rows, in file order, so that the table is never whole in
    memory. None where it must be read whole (``read_run``): a run not merged yet (parts), a
    manifest still ``running`` (its status is settled from the steps) or an older schema
    (migrations take whole tables). A batch that fails validation raises ``StepsNeedWholeRead``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    manifest = read_manifest(run_dir)
    path = run_dir / S.STEPS
    if manifest["schema_version"] != S.SCHEMA_VERSION or manifest.get("status") == "running" or not path.is_file():
        return None
    variants = _validate(_read_table(run_dir, S.VARIANTS, None, required=True), S.VARIANTS_SCHEMA, run_dir / S.VARIANTS)
    telemetry = _read_table(run_dir, S.TELEMETRY, S.TELEMETRY_PARTS, required=False)
    telemetry = _validate(telemetry if telemetry is not None else S.empty(S.TELEMETRY_SCHEMA), S.TELEMETRY_SCHEMA,
                          run_dir / S.TELEMETRY)
    run = Run(run_dir, manifest, variants, S.empty(S.STEPS_SCHEMA), telemetry)
    return run, _steps_batches(path, rows)


def _steps_batches(path: Path, rows: int) -> Iterator[pl.DataFrame]:
    try:
        scan = pl.scan_parquet(path)
        total = scan.select(pl.len()).collect().item()
    except Exception as exc:  # noqa: BLE001 - any unreadable file: read_run words the error
        raise StepsNeedWholeRead(str(exc)) from None
    for offset in range(0, total, rows):
        try:
            batch = _validate(scan.slice(offset, rows).collect(), S.STEPS_SCHEMA, path)
        except Exception as exc:  # noqa: BLE001
            raise StepsNeedWholeRead(str(exc)) from None
        lowest = batch.select(pl.min_horizontal(pl.col("host_ns", "gpu_ns", "host_start_ns", "iteration").min())).item()
        if lowest is not None and lowest < 0:
            raise StepsNeedWholeRead("negative durations")
        yield batch


def check_durations(steps: pl.DataFrame, where: Path) -> None:
    """Durations and times are non-negative nanoseconds; anything else is a damaged file (a
    negative latency would otherwise become a finding)."""
    for column in ("host_ns", "gpu_ns", "host_start_ns", "iteration"):
        bad = steps.filter(pl.col(column) < 0)
        if bad.height:
            row = bad.row(0, named=True)
            raise TraceError(
                f"{where} has {bad.height} row(s) with a negative {column} (first: variant {row['variant_id']}, "
                f"iteration {row['iteration']}, step {row['step']}: {row[column]})",
                "the file is damaged or was not written by a working recorder; re-run the benchmark or the import")


def _settle_status(run_dir: Path, manifest: dict, variants: pl.DataFrame, steps: pl.DataFrame):
    """A manifest that says ``running`` is only believed while its writer is alive; otherwise the
    run (and any variant row left ``running``) reads ``interrupted``, without touching the files."""
    if manifest.get("status") != "running":
        return manifest, variants
    alive = writer_alive(run_dir, manifest)
    if alive is None:  # no process facts (older runs, imports): only a merged run may be finishing
        alive = (run_dir / S.STEPS).exists()
    if alive:
        return manifest, variants
    proc = manifest.get("process") or {}
    who = f" (pid {proc['pid']} on {proc.get('hostname', '?')})" if "pid" in proc else ""
    manifest = {**manifest, "status": "interrupted",
                "error": manifest.get("error") or f"the process{who} ended without finishing the run"}
    counts = steps.group_by("variant_id").agg(pl.col("iteration").n_unique().cast(pl.Int32).alias("_n"))
    variants = (variants.join(counts, on="variant_id", how="left")
                .with_columns(pl.when(pl.col("status") == "running").then(pl.lit("interrupted"))
                              .otherwise(pl.col("status")).alias("status"),
                              pl.when(pl.col("status") == "running").then(pl.col("_n").fill_null(0))
                              .otherwise(pl.col("completed")).alias("completed"))
                .drop("_n").select(list(S.VARIANTS_SCHEMA)))
    return manifest, variants


def measured_iterations(run: Run, iters: pl.DataFrame | None = None) -> int:
    """Iterations past warm-up, from ``iters`` (one row per iteration, as
    ``report.iterations.read_iterations`` gives it, when the steps were streamed) or the steps."""
    if iters is not None:
        return int((~iters["warmup"]).sum()) if iters.height else 0
    return int(run.steps.filter(~pl.col("warmup")).select("variant_id", "iteration").n_unique()) if run.steps.height else 0


def require_measurements(run: Run, iters: pl.DataFrame | None = None) -> None:
    """Analysis of a run without one measured iteration would say "no findings": refuse it."""
    if measured_iterations(run, iters) == 0:
        if iters is not None:
            warm = iters.height
        else:
            warm = int(run.steps.select("variant_id", "iteration").n_unique()) if run.steps.height else 0
        raise TraceError(f"run {run.id} has no measured iterations ({warm} warm-up iterations recorded, status "
                         f"{run.status})", "run more --iterations, or let the run get past its warm-up")


def run_state(run: Run, iters: pl.DataFrame | None = None) -> dict[str, Any]:
    """Status of a run for machine-readable output: is it complete, and if not, how far it got."""
    v = run.variants
    done = int((v["status"] == "complete").sum())
    complete = run.status == "complete" and done == v.height
    if complete:
        note = "complete"
    elif run.status == "running":
        note = f"still running: {done} of {v.height} variants done"
    else:
        note = f"{run.manifest.get('error') or run.status}; {done} of {v.height} variants complete"
    return {"status": run.status, "complete": complete, "error": run.manifest.get("error"), "note": note,
            "variants_complete": done, "variants_planned": v.height, "measured_iterations": measured_iterations(run, iters),
            "resumed": run.manifest.get("resumed", [])}
