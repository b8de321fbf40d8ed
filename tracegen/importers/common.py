"""What every importer shares: reading input files, describing where a run came from, and
writing the run directory only after every input has been read and checked.

An importer builds the whole run in memory (manifest, variants, steps, extra tables), then
``write_run`` creates the directory through the same writer ``tracegen run`` uses. Bad input
therefore fails before anything exists on disk; a failure while writing removes the directory
the importer itself just created.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import json
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

import tracegen
from tracegen.errors import TraceError
from tracegen.trace import schema as S
from tracegen.trace.atomic import write_parquet
from tracegen.trace.writer import RunWriter, create_run_dir

# Where a run came from (manifest ``origin.kind``); runs without the key come from ``tracegen run``.
ORIGINS = ("runner", "recorder", "trtexec", "table", "nsys")


def origin_kind(manifest: dict[str, Any]) -> str:
    origin = manifest.get("origin")
    return (origin or {}).get("kind", "runner") if isinstance(origin, dict) else "runner"


def read_bytes(path: Path, what: str) -> bytes:
    """The file's bytes, gunzipped when it is gzip-compressed (``.gz`` or by its magic bytes)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TraceError(f"{what} {path} not found", "check the path") from None
    except IsADirectoryError:
        raise TraceError(f"{what} {path} is a directory", "pass the file itself") from None
    except OSError as exc:
        raise TraceError(f"cannot read {what} {path} ({exc.strerror or exc})", "check the file's permissions") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise TraceError(f"{what} {path} is a damaged or truncated gzip file ({exc})", "copy the file again") from None
    return data


def read_json(path: Path, what: str, fix: str) -> Any:
    """Parse a JSON file; a truncated or non-JSON file is one clear error."""
    data = read_bytes(path, what)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise TraceError(f"{what} {path} is not text (not UTF-8)", fix) from None
    except json.JSONDecodeError as exc:
        where = "ends early (truncated?)" if exc.pos >= len(data.rstrip()) - 1 else f"line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise TraceError(f"{what} {path} is not valid JSON ({where})", fix) from None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_entry(path: Path, role: str, **extra: Any) -> dict[str, Any]:
    """How the manifest names one input file (path as given, size, sha256)."""
    path = Path(path)
    return {"role": role, "path": str(path), "bytes": path.stat().st_size,
            "sha256": sha256(path), **extra}


def new_run_id(label: str, kind: str) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    short = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:24].strip("-") or "run"
    return f"{stamp}-{short}-{kind}-{secrets.token_hex(2)}"


def base_manifest(kind: str, run_id: str, command: list[str] | None, origin: dict[str, Any] | None = None,
                  **fields: Any) -> dict[str, Any]:
    """The manifest fields an imported run shares with a recorded one (same keys, same meaning),
    plus ``origin``: where the run came from (``kind`` one of ORIGINS, the input files, notes)."""
    return {
        "schema_version": S.SCHEMA_VERSION,
        "tracegen_version": tracegen.__version__,
        "run_id": run_id,
        "command": list(command or []),
        "config": {},
        "host": None,  # the machine that measured is unknown unless the input says
        "gpu": None,
        "backend": {},
        "libraries": {},
        "model": {},
        "telemetry": {"cpu_frequency": False, "gpu": False},
        **fields,
        "origin": {"kind": kind, **(origin or {})},
    }


@dataclass
class ImportedRun:
    """A whole run, built in memory and checked, ready to be written."""

    manifest: dict[str, Any]
    variants: pl.DataFrame
    steps: pl.DataFrame
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)  # extra Parquet tables by file name
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportResult:
    run_dir: Path
    run_id: str
    variants: int
    iterations: int
    warnings: tuple[str, ...] = ()


def check_steps(steps: pl.DataFrame, where: str) -> pl.DataFrame:
    """Cast to the steps schema and refuse negative or missing durations (a run that the
    analysis would misreport)."""
    steps = steps.select(list(S.STEPS_SCHEMA)).cast(S.STEPS_SCHEMA)
    if steps.height == 0:
        raise TraceError(f"{where} holds no steps", "pass a file with at least one inference")
    bad = steps.filter(pl.col("host_ns").is_null() | (pl.col("host_ns") < 0) | (pl.col("gpu_ns") < 0))
    if bad.height:
        r = bad.row(0, named=True)
        raise TraceError(f"{where} has a negative or missing duration (variant {r['variant_id']}, iteration "
                         f"{r['iteration']}, step {r['step']})", "check the input's columns and units")
    return steps


def write_run(run: ImportedRun, out: Path, run_id: str | None = None) -> ImportResult:
    """Write ``run`` as ``out/<run_id>`` with tracegen's writer; the directory is removed again if
    writing fails, so a failed import leaves nothing behind."""
    run_id = run_id or run.manifest["run_id"]
    run.manifest["run_id"] = run_id
    run_dir = create_run_dir(Path(out) / run_id)
    try:
        writer = RunWriter(run_dir, run.manifest)
        writer.write_variants(run.variants)
        writer.append_steps(run.steps)
        for name, table in run.tables.items():
            write_parquet(run_dir / name, table)
        writer.finish("complete")
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    iterations = run.steps.select("variant_id", "iteration").n_unique()
    return ImportResult(run_dir, run_id, run.variants.height, iterations, tuple(run.warnings))


def variant_name(kind: str, scenario: str, batch: int, idle_ms: float, pacing: str, launch: str, sync_mode: str,
                 pipeline: str, label: str = "") -> str:
    """The runner's compact variant label, prefixed with where the variant came from."""
    gap = f"{idle_ms:g}ms-{pacing}" if pacing != "none" else "no-gap"
    tail = f" {label}" if label else ""
    return f"{kind} {scenario} b{batch} {gap} {launch} sync-{sync_mode} {pipeline}{tail}"


def ms_to_ns(values: list[float] | Any) -> Any:
    """Milliseconds (floats) to integer nanoseconds, rounded to the nearest."""
    return (pl.Series(values, dtype=pl.Float64) * 1e6).round(0).cast(pl.Int64)

