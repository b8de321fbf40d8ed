"""``layers.parquet``: an optional table of a run with the engine's per-layer profile.

One row per layer and profile (trtexec ``--exportProfile``). Its version is recorded in the
manifest (``tables["layers.parquet"].version``); readers refuse a newer one, like the other
tables. Times are integer nanoseconds like everywhere else in a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from tracegen.errors import TraceError

LAYERS = "layers.parquet"
LAYERS_VERSION = 1

LAYERS_SCHEMA: dict[str, pl.DataType] = {
    "variant_id": pl.Int32(),  # the variant this profile was taken with; null: one profile for the whole run
    "layer_index": pl.Int32(),  # position in the profile (the engine's execution order)
    "name": pl.String(),  # TensorRT layer name (fused layers carry every fused op's name)
    "layer_type": pl.String(),  # from --exportLayerInfo when given, else null
    "total_ns": pl.Int64(),  # summed over the profiled inferences
    "average_ns": pl.Int64(),  # per profiled inference
    "median_ns": pl.Int64(),  # null for profiles before TensorRT 8.4
    "share": pl.Float64(),  # of the profile's total time, 0..1
    "profiled": pl.Int32(),  # inferences the profile covers
}


def table_entry(df: pl.DataFrame) -> dict[str, Any]:
    """What the manifest says about the table."""
    return {"version": LAYERS_VERSION, "rows": df.height, "profiles": int(df.select("variant_id").n_unique())}


def read_layers(run_dir: Path, manifest: dict[str, Any]) -> pl.DataFrame | None:
    """The run's layer table, validated; None when the run has none."""
    path = Path(run_dir) / LAYERS
    if not path.exists():
        return None
    entry = (manifest.get("tables") or {}).get(LAYERS) or {}
    version = entry.get("version", LAYERS_VERSION)
    if not isinstance(version, int) or version > LAYERS_VERSION:
        raise TraceError(f"{path} has table version {version}, newer than the {LAYERS_VERSION} this tracegen reads",
                         "upgrade tracegen: pip install -U tracegen")
    try:
        df = pl.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - polars raises several kinds for bad files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TraceError(f"{path} is unreadable or truncated ({first})", "re-import the profile") from None
    missing = [c for c in LAYERS_SCHEMA if c not in df.columns]
    if missing:
        raise TraceError(f"{path} lacks columns {', '.join(missing)}", "re-import the profile")
    return df.select(list(LAYERS_SCHEMA)).cast(LAYERS_SCHEMA)


def top_layers(df: pl.DataFrame, names: dict[int, str], limit: int = 15) -> list[dict[str, Any]]:
    """Per profile: the ``limit`` slowest layers by total time with share and cumulative share,
    and what the rest add up to (for the run page's layer table)."""
    out = []
    for key, part in sorted(df.partition_by("variant_id", as_dict=True).items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or 0)):
        vid = key[0]
        ranked = part.sort("total_ns", descending=True)
        total = int(ranked["total_ns"].sum())
        rows, cum = [], 0.0
        for r in ranked.head(limit).iter_rows(named=True):
            share = r["total_ns"] / total if total else 0.0
            cum += share
            rows.append({**r, "share": share, "cumulative": cum, "average_ms": r["average_ns"] / 1e6,
                         "median_ms": r["median_ns"] / 1e6 if r["median_ns"] is not None else None,
                         "total_ms": r["total_ns"] / 1e6})
        rest = ranked.slice(limit)
        out.append({
            "variant_id": vid,
            "title": names.get(vid, f"variant {vid}") if vid is not None else "the engine (every variant)",
            "layers": part.height,
            "profiled": int(part["profiled"].max() or 0),
            "per_inference_ms": float(part["average_ns"].sum()) / 1e6,
            "rows": rows,
            "rest": {"layers": rest.height, "share": (int(rest["total_ns"].sum()) / total) if total else 0.0,
                     "total_ms": int(rest["total_ns"].sum()) / 1e6},
        })
    return out
