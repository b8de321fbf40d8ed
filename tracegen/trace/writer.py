"""Incremental writer of a run directory.

Steps and telemetry go to numbered part files (one per flush, each written atomically), so a
run stopped by Ctrl-C, SIGTERM or even SIGKILL keeps every flushed iteration readable. ``finish``
merges the parts into ``steps.parquet`` / ``telemetry.parquet`` (written atomically, then the
parts are moved aside and removed: a reader sees either the parts or the merged file, and
retries when they change under it) and records the final status.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from tracegen.errors import ConfigError, OutputError
from tracegen.trace import schema as S
from tracegen.trace.atomic import write_json, write_parquet


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def create_run_dir(path: Path) -> Path:
    """Create a new, empty run directory; never reuse or touch an existing one."""
    path = Path(path)
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"output path {path.parent} is a file, not a directory", "pass --out a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"output path {path.parent} is not a directory", "pass --out a directory") from None
    except PermissionError:
        raise ConfigError(f"cannot create {path.parent} (permission denied)", "pass --out a writable directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path.parent} ({exc.strerror or exc})", "pass --out a writable directory") from None
    try:
        path.mkdir()
    except FileExistsError:
        raise ConfigError(
            f"run directory {path} already exists", "choose another --run-id, or leave it out for a fresh one"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path} ({exc.strerror or exc})", "pass --out a writable directory") from None
    return path


class RunWriter:
    """Writes a new run, or (``reopen=True``) continues one whose parts are already in place."""

    def __init__(self, run_dir: Path, manifest: dict[str, Any], *, reopen: bool = False):
        self.dir = Path(run_dir)
        self.manifest = dict(manifest)
        self._parts = {}
        for parts in (S.STEPS_PARTS, S.TELEMETRY_PARTS):
            try:
                (self.dir / parts).mkdir(exist_ok=reopen)
            except OSError as exc:
                raise OutputError(f"cannot create {self.dir / parts} ({exc.strerror or exc})",
                                  "pass --out a writable directory") from None
            existing = sorted((self.dir / parts).glob("part-*.parquet"))
            self._parts[parts] = int(existing[-1].stem.split("-")[1]) if existing else 0
        self.manifest.setdefault("status", "running")
        self.manifest.setdefault("error", None)
        self.manifest.setdefault("started_utc", utc_now())
        self.manifest.setdefault("ended_utc", None)
        self.write_manifest()

    # -- manifest and variants -------------------------------------------------------------
    def write_manifest(self) -> None:
        write_json(self.dir / S.MANIFEST, self.manifest)

    def update_manifest(self, **fields: Any) -> None:
        self.manifest.update(fields)
        self.write_manifest()

    def write_variants(self, variants: pl.DataFrame) -> None:
        write_parquet(self.dir / S.VARIANTS, variants.select(list(S.VARIANTS_SCHEMA)).cast(S.VARIANTS_SCHEMA))

    # -- incremental tables ------------------------------------------------------------------
    def _append(self, parts: str, df: pl.DataFrame) -> None:
        if df.height == 0:
            return
        self._parts[parts] += 1
        write_parquet(self.dir / parts / f"part-{self._parts[parts]:06d}.parquet", df)

    def append_steps(self, df: pl.DataFrame) -> None:
        self._append(S.STEPS_PARTS, df.select(list(S.STEPS_SCHEMA)).cast(S.STEPS_SCHEMA))

    def append_telemetry(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            df = pl.DataFrame(rows, schema=S.TELEMETRY_SCHEMA, strict=False)
            self._append(S.TELEMETRY_PARTS, df)

    # -- end -----------------------------------------------------------------------------------
    def finish(self, status: str, error: str | None = None) -> None:
        """Merge the parts into single files and record the final status (idempotent)."""
        merge_parts(self.dir, S.STEPS_PARTS, S.STEPS, S.STEPS_SCHEMA)
        merge_parts(self.dir, S.TELEMETRY_PARTS, S.TELEMETRY, S.TELEMETRY_SCHEMA, keep_empty=False)
        self.update_manifest(status=status, error=error, ended_utc=utc_now())


def merge_parts(run_dir: Path, parts: str, target: str, schema: dict, keep_empty: bool = True) -> None:
    """Concatenate part files into ``target`` (atomically), then remove the parts."""
    part_dir = Path(run_dir) / parts
    if not part_dir.is_dir():
        return
    files = sorted(part_dir.glob("part-*.parquet"))
    if files:
        df = pl.concat([pl.read_parquet(f) for f in files], how="vertical")
    else:
        df = S.empty(schema)
    if files or keep_empty:
        write_parquet(Path(run_dir) / target, df)
    # Move the parts aside in one rename before deleting them, so a reader never lists a
    # half-deleted folder; it finds the merged file instead.
    aside = Path(run_dir) / f".{parts}.merged-{secrets.token_hex(3)}"
    os.replace(part_dir, aside)
    shutil.rmtree(aside, ignore_errors=True)
