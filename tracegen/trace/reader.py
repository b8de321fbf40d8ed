"""Validating reader of run directories."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tracegen.errors import TraceError
from tracegen.trace import schema as S
from tracegen.trace.migrate import migrate


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


def _read_table(run_dir: Path, name: str, parts: str | None, required: bool) -> pl.DataFrame | None:
    path = Path(run_dir) / name
    files: list[Path]
    if path.exists():
        files = [path]
    elif parts and (Path(run_dir) / parts).is_dir():
        # The process died before merging its parts: every flushed part is still readable.
        files = sorted((Path(run_dir) / parts).glob("part-*.parquet"))
    elif required:
        raise TraceError(f"{run_dir} has no {name}", "the run did not get far enough to record anything; re-run it")
    else:
        return None
    frames = []
    for f in files:
        try:
            frames.append(pl.read_parquet(f))
        except Exception as exc:  # noqa: BLE001 - polars raises several kinds for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TraceError(
                f"{f} is unreadable or truncated ({first})",
                "re-run the benchmark; other runs are unaffected",
            ) from None
    if not frames:
        return None
    return pl.concat(frames, how="vertical_relaxed")


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
    if manifest.get("status") == "running" and not (run_dir / S.STEPS).exists():
        # Nobody finished this run: the process was killed. Say so without touching the files.
        manifest = {**manifest, "status": "interrupted", "error": manifest.get("error") or "the process ended without finishing the run"}
    return Run(run_dir, manifest, tables[S.VARIANTS], tables[S.STEPS], tables[S.TELEMETRY])
