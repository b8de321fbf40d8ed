"""``tracegen import table``: any harness's per-step timings (CSV, TSV or Parquet, long form:
one row per step per iteration) become a run.

Columns: variant columns (any number; ``batch``, ``idle_ms``, ``pacing``, ``launch``,
``sync_mode``, ``pipeline`` and ``scenario`` fill the variant's parameters, others become part
of its name), ``iteration``, ``step``, ``duration``, and optionally ``start`` (since any common
zero), ``gpu_duration`` and ``warmup``. Names and units are options; a column named
``duration_ms``/``_us``/``_ns``/``_s`` (or ``start_*``, ``gpu_duration_*``/``gpu_*``) is found
with its unit. Step names must be tracegen's steps, or be mapped onto them with ``--step-map``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from tracegen.errors import ConfigError, TraceError
from tracegen.importers.common import (ImportedRun, ImportResult, base_manifest, check_steps, file_entry, new_run_id,
                                       read_bytes, variant_name, write_run)
from tracegen.trace import schema as S

UNITS = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}
PARAMETER_COLUMNS = ("scenario", "batch", "idle_ms", "pacing", "launch", "sync_mode", "pipeline")
_ALLOWED = {"scenario": S.SCENARIOS, "pacing": S.PACINGS, "launch": S.LAUNCHES, "sync_mode": S.SYNC_MODES,
            "pipeline": S.PIPELINES}


@dataclass(frozen=True)
class TableOptions:
    iteration: str = "iteration"
    step: str = "step"
    duration: str | None = None  # default: duration, or duration_<unit>
    start: str | None = None  # default: start / start_<unit> when present, else laid end to end
    gpu: str | None = None  # default: gpu_duration[_<unit>] / gpu_<unit> when present
    warmup_col: str | None = None  # default: warmup when present
    variant_cols: tuple[str, ...] | None = None  # default: every other column
    unit: str | None = None  # of duration (and start and gpu unless given); default from the name, else ms
    start_unit: str | None = None
    gpu_unit: str | None = None
    step_map: dict[str, str] = field(default_factory=dict)
    warmup: int = 0  # first N iterations of each variant are warm-up (when there is no warm-up column)
    latency: str = "host"  # host | gpu: which durations make up an iteration's latency
    name: str | None = None


def read_table(path: Path) -> pl.DataFrame:
    """A CSV/TSV or Parquet file as a frame; unreadable or truncated files are one error."""
    path = Path(path)
    data = read_bytes(path, "table")
    fix = "pass a CSV (header row first) or a Parquet file"
    is_parquet = data[:4] == b"PAR1" or path.suffix.lower() in (".parquet", ".pq")
    try:
        if is_parquet:
            return pl.read_parquet(data)
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
        return pl.read_csv(data, separator=sep, infer_schema_length=None, try_parse_dates=False)
    except Exception as exc:  # noqa: BLE001 - polars raises several kinds for bad files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        kind = "Parquet" if is_parquet else "CSV"
        raise TraceError(f"table {path} is not a readable {kind} file, or is truncated ({first})", fix) from None


def _find(df: pl.DataFrame, given: str | None, base: str, alts: tuple[str, ...] = ()) -> tuple[str | None, str | None]:
    """(column, unit implied by its name) for ``given`` or ``base``/``base_<unit>``/alternatives."""
    if given:
        if given not in df.columns:
            raise ConfigError(f"the table has no column {given!r} (columns: {', '.join(df.columns)})",
                              "name an existing column")
        return given, _unit_of(given)
    for name in (base, *alts):
        if name in df.columns:
            return name, None
        for u in UNITS:
            if f"{name}_{u}" in df.columns:
                return f"{name}_{u}", u
    return None, None


def _unit_of(name: str) -> str | None:
    tail = name.rsplit("_", 1)[-1] if "_" in name else None
    return tail if tail in UNITS else None


def _unit(u: str | None, flag: str) -> float:
    if u not in UNITS:
        raise ConfigError(f"unknown {flag} {u!r}", f"use one of {', '.join(UNITS)}")
    return UNITS[u]


def _numeric(df: pl.DataFrame, col: str, path: Path, integer: bool = False) -> pl.Series:
    """The column as numbers; text that is not a number is an error naming the first bad row."""
    s = df[col]
    if s.dtype == pl.String:
        cast = s.str.strip_chars().cast(pl.Float64, strict=False)
        bad = df.with_row_index().filter(cast.is_null() & s.is_not_null())
        if bad.height:
            raise TraceError(f"{path}: column {col!r} holds text, not numbers (row {bad['index'][0] + 1}: "
                             f"{bad[col][0]!r})", f"fix the column, or map another one with --{_flag(col)}")
        s = cast
    elif not s.dtype.is_numeric():
        raise TraceError(f"{path}: column {col!r} is {s.dtype}, not numbers", f"map a numeric column with --{_flag(col)}")
    s = s.cast(pl.Float64)
    if integer and s.drop_nulls().is_finite().all() and (s.drop_nulls() != s.drop_nulls().round(0)).any():
        raise TraceError(f"{path}: column {col!r} holds fractions; iterations are whole numbers", "fix the column")
    return s


def _flag(col: str) -> str:
    return "duration-col" if "dur" in col else "iteration-col" if "iter" in col else "start-col" if "start" in col else "gpu-col"


def build_table_run(path: Path, options: TableOptions = TableOptions(), *, command: list[str] | None = None,
                    run_id: str | None = None) -> ImportedRun:
    """Read, map and check the table, and build the run in memory (nothing is written)."""
    path = Path(path)
    if options.latency not in ("host", "gpu"):
        raise ConfigError(f"unknown --latency {options.latency!r}", "use host or gpu")
    df = read_table(path)
    if df.height == 0:
        raise TraceError(f"table {path} has no rows", "pass a table with one row per step per iteration")
    dur_col, dur_unit = _find(df, options.duration, "duration")
    it_col, _ = _find(df, options.iteration, "iteration")
    step_col, _ = _find(df, options.step, "step")
    missing = [name for name, col in (("duration", dur_col), ("iteration", it_col), ("step", step_col)) if col is None]
    if missing:
        raise TraceError(f"table {path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"(columns: {', '.join(df.columns)})",
                         "name them with --duration-col/--iteration-col/--step-col (long form: one row per step per iteration)")
    start_col, start_unit = _find(df, options.start, "start", ("start_time",))
    gpu_col, gpu_unit = _find(df, options.gpu, "gpu_duration", ("gpu",))
    warm_col, _ = _find(df, options.warmup_col, "warmup")
    base_unit = options.unit or dur_unit or "ms"
    scale = _unit(base_unit, "--unit")
    start_scale = _unit(options.start_unit or start_unit or base_unit, "--start-unit")
    gpu_scale = _unit(options.gpu_unit or gpu_unit or base_unit, "--gpu-unit")
    used = {c for c in (dur_col, it_col, step_col, start_col, gpu_col, warm_col) if c}
    if options.variant_cols is not None:
        absent = [c for c in options.variant_cols if c not in df.columns]
        if absent:
            raise ConfigError(f"the table has no variant column {', '.join(map(repr, absent))} (columns: "
                              f"{', '.join(df.columns)})", "list existing columns in --variant-cols")
        vcols = list(options.variant_cols)
    else:
        vcols = [c for c in df.columns if c not in used]

    # -- steps ------------------------------------------------------------------------------------
    raw_steps = df[step_col].cast(pl.String)
    mapping = {k: v for k, v in options.step_map.items()}
    bad_targets = sorted({v for v in mapping.values() if v not in S.STEP_ORDER})
    if bad_targets:
        raise ConfigError(f"--step-map maps onto unknown step(s) {', '.join(bad_targets)}",
                          f"map onto tracegen's steps: {', '.join(S.STEP_ORDER)}")
    steps = raw_steps.replace(mapping) if mapping else raw_steps
    unknown = sorted(set(steps.drop_nulls().unique().to_list()) - set(S.STEP_ORDER))
    if unknown or steps.null_count():
        shown = ", ".join(map(repr, unknown[:6])) or "empty values"
        raise TraceError(f"{path}: step names {shown} are not tracegen steps ({', '.join(S.STEP_ORDER)})",
                         "map them with --step-map NAME=STEP,... (e.g. --step-map inference=infer,nms=postprocess)")
    duration = _numeric(df, dur_col, path)
    iteration = _numeric(df, it_col, path, integer=True)
    for name, s in (("duration", duration), ("iteration", iteration)):
        if s.null_count() or not s.is_finite().all():
            row = df.with_row_index().filter(s.is_null() | ~s.is_finite().fill_null(False))["index"][0] + 1
            raise TraceError(f"{path}: column {name!r} is empty or not finite on row {row}", "fill in every row")
    if (duration < 0).any() or (iteration < 0).any():
        col = dur_col if (duration < 0).any() else it_col
        raise TraceError(f"{path}: column {col!r} has negative values", "durations and iterations are never negative")
    frame = pl.DataFrame({"_vkey": _variant_keys(df, vcols), "iteration": iteration.cast(pl.Int32), "step": steps,
                          "host_ns": (duration * scale).round(0).cast(pl.Int64)})
    if gpu_col:
        gpu = _numeric(df, gpu_col, path)
        if (gpu < 0).any():
            raise TraceError(f"{path}: column {gpu_col!r} has negative values", "GPU durations are never negative")
        frame = frame.with_columns((gpu * gpu_scale).round(0).cast(pl.Int64).alias("gpu_ns"))
    else:
        frame = frame.with_columns(pl.lit(None, pl.Int64).alias("gpu_ns"))
    if start_col:
        start = _numeric(df, start_col, path)
        if start.null_count():
            raise TraceError(f"{path}: column {start_col!r} is empty on some rows", "fill in every start, or leave the column out")
        frame = frame.with_columns((start * start_scale).round(0).cast(pl.Int64).alias("host_start_ns"))
    if warm_col:
        w = df[warm_col]
        flag = w.cast(pl.String).str.to_lowercase().is_in(["true", "1", "yes", "1.0"]) if w.dtype != pl.Boolean else w
        frame = frame.with_columns(flag.fill_null(False).alias("warmup"))
    dup = frame.group_by("_vkey", "iteration", "step").len().filter(pl.col("len") > 1)
    if dup.height:
        r = dup.row(0, named=True)
        raise TraceError(f"{path}: step {r['step']!r} of iteration {r['iteration']} appears {r['len']} times in one variant",
                         "give each variant its own value in a variant column (--variant-cols), one row per step")

    # -- variants ---------------------------------------------------------------------------------
    keys = frame["_vkey"].unique(maintain_order=True).to_list()
    vid_of = {k: i for i, k in enumerate(keys)}
    first_rows = df.with_columns(_variant_keys(df, vcols).alias("_vkey")).unique("_vkey", keep="first", maintain_order=True)
    variant_rows, labels = _variant_rows(first_rows, vcols, keys, frame, path)
    frame = frame.with_columns(pl.col("_vkey").replace_strict(vid_of, return_dtype=pl.Int32).alias("variant_id")).drop("_vkey")
    if not warm_col:
        frame = frame.with_columns((pl.col("iteration") < options.warmup).alias("warmup"))
    order = {s: i for i, s in enumerate(S.STEP_ORDER)}
    frame = frame.with_columns(pl.col("step").replace_strict(order, return_dtype=pl.Int8).alias("_o")).sort(
        "variant_id", "iteration", "_o")
    if not start_col:  # lay the steps end to end, variant after variant
        frame = frame.with_columns((pl.col("host_ns").cum_sum() - pl.col("host_ns")).alias("host_start_ns"))
    else:
        frame = frame.with_columns(pl.col("host_start_ns") - pl.col("host_start_ns").min())
    frame = frame.drop("_o").with_columns(pl.lit(None, pl.Int16).alias("cpu_core"))
    steps_df = check_steps(frame, str(path))
    if options.latency == "gpu" and steps_df["gpu_ns"].null_count() == steps_df.height:
        raise ConfigError("--latency gpu needs a GPU duration column", "name it with --gpu-col, or use --latency host")
    warm = steps_df.group_by("variant_id").agg(pl.col("iteration").filter(pl.col("warmup")).n_unique().alias("w"),
                                               pl.col("iteration").n_unique().alias("n"))
    counts = {r["variant_id"]: (r["w"], r["n"]) for r in warm.iter_rows(named=True)}
    for row in variant_rows:
        w, n = counts[row["variant_id"]]
        row.update(warmup=w, iterations=n - w, completed=n, status="complete")
    variants = pl.DataFrame(variant_rows, schema=S.VARIANTS_SCHEMA)
    present = [s for s in S.STEP_ORDER if s in set(steps_df["step"].cast(pl.String).unique().to_list())]
    label = options.name or path.stem
    run_id = run_id or new_run_id(label, "table")
    manifest = base_manifest(
        "table", run_id, command,
        origin={"tool": "table", "files": [file_entry(path, "table")],
                "columns": {"iteration": it_col, "step": step_col, "duration": dur_col, "start": start_col,
                            "gpu_duration": gpu_col, "warmup": warm_col, "variant": vcols},
                "units": {"duration": base_unit, "start": options.start_unit or start_unit or base_unit,
                          "gpu_duration": options.gpu_unit or gpu_unit or base_unit},
                "step_map": mapping,
                "variants": [{"variant_id": i, "labels": labels[i]} for i in range(len(keys))],
                "notes": ([] if start_col else ["the table has no start times: steps are laid end to end"])},
        config={"options": {k: v for k, v in options.__dict__.items() if v not in (None, {}, ())}},
        backend={"name": "table", "precision": ""},
        model={"spec": label},
        latency={"basis": options.latency},
        pipeline={"steps": present, "not_applicable": {}},
        clock=f"the table's own clock ({'start column' if start_col else 'durations laid end to end'}), in ns",
        variants_planned=len(keys),
    )
    return ImportedRun(manifest, variants, steps_df)


def _variant_keys(df: pl.DataFrame, vcols: list[str]) -> pl.Series:
    if not vcols:
        return pl.Series("_vkey", ["all"] * df.height)
    return df.select(pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in vcols], separator="\x1f")).to_series().alias("_vkey")


def _variant_rows(first: pl.DataFrame, vcols: list[str], keys: list[str], frame: pl.DataFrame,
                  path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_key = {r["_vkey"]: r for r in first.iter_rows(named=True)}
    rows, labels = [], []
    batches = set()
    for k in keys:
        r = by_key[k]
        params: dict[str, Any] = {}
        for p in PARAMETER_COLUMNS:
            if p in vcols and r.get(p) is not None:
                params[p] = r[p]
        try:
            batch = int(params.get("batch", 1))
            idle = float(params.get("idle_ms", 0.0))
        except (TypeError, ValueError):
            raise TraceError(f"{path}: variant column batch/idle_ms holds {params.get('batch')!r}/{params.get('idle_ms')!r}, "
                             "not numbers", "fix the column") from None
        for p, allowed in _ALLOWED.items():
            if p in params and str(params[p]) not in allowed:
                raise TraceError(f"{path}: {p} {params[p]!r} is not one of {', '.join(allowed)}",
                                 f"rename the column if it means something else (it is read as tracegen's {p})")
        batches.add(batch)
        other = {c: r[c] for c in vcols if c not in PARAMETER_COLUMNS}
        labels.append(other)
        rows.append({"batch": batch, "idle_ms": idle, "pacing": str(params.get("pacing", "sleep" if idle > 0 else "none")),
                     "launch": str(params.get("launch", "eager")), "sync_mode": str(params.get("sync_mode", "auto")),
                     "pipeline": str(params.get("pipeline", "full")), "scenario": params.get("scenario")})
    idles = {r["idle_ms"] for r in rows}
    for vid, row in enumerate(rows):
        row["variant_id"] = vid
        row["scenario"] = str(row["scenario"] or ("batch" if len(batches) > 1 and idles == {0.0} else "idle"))
        label = " ".join(f"{k}={v}" for k, v in labels[vid].items())
        row["name"] = variant_name("table", row["scenario"], row["batch"], row["idle_ms"], row["pacing"], row["launch"],
                                   row["sync_mode"], row["pipeline"], label)
    return rows, labels


def import_table(path: Path, options: TableOptions = TableOptions(), *, out: Path = Path("runs"),
                 run_id: str | None = None, command: list[str] | None = None) -> ImportResult:
    """Import a long-form per-step table as a run under ``out``; behind ``tracegen import table``."""
    return write_run(build_table_run(path, options, command=command, run_id=run_id), Path(out))
