"""Atomic file writes: a reader never sees half a file, a crash never damages the old one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from tracegen.errors import OutputError


def _replace_from_tmp(path: Path, write) -> None:
    try:
        _write_then_replace(path, write)
    except OSError as exc:  # read-only or full disk, permissions: one line, not a traceback
        raise OutputError(f"cannot write {path} ({exc.strerror or exc})",
                          "free disk space, or write to a writable directory") from None


def _write_then_replace(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    _replace_from_tmp(Path(path), lambda fh: fh.write(text.encode()))


def write_parquet(path: Path, df: pl.DataFrame) -> None:
    _replace_from_tmp(Path(path), lambda fh: df.write_parquet(fh, compression="zstd", statistics=True))
