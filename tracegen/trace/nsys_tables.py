"""Reading and writing the optional Nsight Systems tables of a run (``nsys_steps.parquet``,
``nsys_kernels.parquet``; schema in ``trace.schema``).

Their version lives in ``manifest["nsys_import"]["version"]``: a reader refuses a newer one with a
clear message, so an old tracegen never misreads tables a newer one wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tracegen.errors import TraceError
from tracegen.trace import schema as S
from tracegen.trace.atomic import write_parquet


@dataclass(frozen=True)
class NsysTables:
    steps: pl.DataFrame  # NSYS_STEPS_SCHEMA
    kernels: pl.DataFrame  # NSYS_KERNELS_SCHEMA
    info: dict  # manifest["nsys_import"]


def write_nsys_tables(run_dir: Path, steps: pl.DataFrame, kernels: pl.DataFrame) -> None:
    write_parquet(Path(run_dir) / S.NSYS_STEPS, steps.select(list(S.NSYS_STEPS_SCHEMA)).cast(S.NSYS_STEPS_SCHEMA))
    write_parquet(Path(run_dir) / S.NSYS_KERNELS,
                  kernels.select(list(S.NSYS_KERNELS_SCHEMA)).cast(S.NSYS_KERNELS_SCHEMA))


def read_nsys_tables(run_dir: Path, manifest: dict) -> NsysTables | None:
    """The run's imported Nsight Systems tables, or None when it has none."""
    info = manifest.get("nsys_import")
    steps_path, kernels_path = Path(run_dir) / S.NSYS_STEPS, Path(run_dir) / S.NSYS_KERNELS
    if not isinstance(info, dict) or not steps_path.exists():
        return None
    version = info.get("version")
    if not isinstance(version, int) or version > S.NSYS_TABLES_VERSION:
        raise TraceError(
            f"{run_dir} holds Nsight Systems tables of version {version}, newer than the "
            f"{S.NSYS_TABLES_VERSION} this tracegen reads", "upgrade tracegen, or import the report again with "
            "`tracegen nsys-import`",
        )
    frames = []
    for path, schema in ((steps_path, S.NSYS_STEPS_SCHEMA), (kernels_path, S.NSYS_KERNELS_SCHEMA)):
        try:
            df = pl.read_parquet(path)
            frames.append(df.select(list(schema)).cast(schema))
        except FileNotFoundError:
            frames.append(S.empty(schema))
        except Exception as exc:  # noqa: BLE001 - polars raises several kinds for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TraceError(f"{path} is unreadable or has the wrong columns ({first})",
                             "import the report again with `tracegen nsys-import`") from None
    return NsysTables(frames[0], frames[1], info)
