"""An application's own Nsight Systems report as a tracegen run.

The user names the NVTX range around one iteration of their loop (``--iteration-range``) and the
domain it is in (``--domain``). Each such range becomes an iteration; the ranges nested directly
inside it become its steps, mapped onto tracegen's steps by name (``infer``/``inference``/
``forward`` -> infer, ``pre*`` -> preprocess, ...; ``--step NAME=STEP`` for the rest); the time
between one iteration's end and the next one's start is the idle step. Iterations are grouped
into variants by the range that encloses them (one variant when nothing does). Host times are
the ranges' own; a step's GPU time is the span of the GPU work it launched (first start to last
end, like CUDA events around it). The per-step GPU tables are written too, under the
application's own step names.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import polars as pl

from tracegen.errors import ConfigError, TraceError
from tracegen.importers import nsys_export as X
from tracegen.importers.nsys import ImportResult, join_export, resolve_export
from tracegen.importers.nsys_join import OTHER_STEP
from tracegen.trace import schema as S

# Range names (lower case, whole name or first word) that mean one of tracegen's steps.
_ALIASES = [
    ("idle", r"idle|sleep|pace|pacing|wait_frame"),
    ("preprocess", r"pre.*|resize|normali[sz]e|letterbox|decode"),
    ("h2d", r"h2d|htod|upload|copy_?in|to_device|host_to_device"),
    ("infer", r"infer.*|forward|model|engine|execute|enqueue|predict|run"),
    ("d2h", r"d2h|dtoh|download|copy_?out|to_host|device_to_host"),
    ("sync", r"sync.*|wait|stream_?wait"),
    ("postprocess", r"post.*|nms|top_?k|decode_?out|draw"),
]


def map_step(name: str, explicit: dict[str, str]) -> str | None:
    if name in explicit:
        return explicit[name]
    low = name.strip().lower()
    words = [low, re.split(r"[\s:/._\-]+", low)[0]]
    for step, pattern in _ALIASES:
        if any(re.fullmatch(pattern, w) for w in words):
            return step
    return None


def parse_step_map(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, step = item.rpartition("=")
        if not sep or not name or step not in S.STEP_ORDER:
            raise ConfigError(f"--step {item!r} is not NAME=STEP", f"STEP is one of: {', '.join(S.STEP_ORDER)}")
        out[name] = step
    return out


def report_to_run(report: Path, out: Path, *, domain: str, iteration_range: str, run_id: str | None = None,
                  step_map: dict[str, str] | None = None, nsys: str | None = None) -> ImportResult:
    """Write a new run directory ``out/<run-id>`` from an application's NVTX-annotated report."""
    from tracegen.trace.nsys_tables import write_nsys_tables
    from tracegen.trace.writer import RunWriter, create_run_dir

    sqlite = resolve_export(report, nsys)
    ex = X.open_export(sqlite)
    try:
        j = join_export(ex, domain, iteration_range)
        meta = ex.facts()
    finally:
        ex.close()
    explicit = step_map or {}
    names = sorted(set(j.steps["step"].to_list()))
    mapped = {n: map_step(n, explicit) for n in names}
    unknown = [n for n, m in mapped.items() if m is None]
    if unknown:
        raise ConfigError(
            f"the ranges inside {iteration_range!r} include {', '.join(map(repr, unknown[:6]))}, which match no "
            "tracegen step", f"map each with --step NAME=STEP (STEP: {', '.join(S.STEP_ORDER[1:])})",
        )
    its = j.iterations.sort("it_start")
    t0 = int(its["it_start"].min())
    variants = its.group_by("variant", maintain_order=True).agg(pl.len().alias("n")).with_row_index("variant_id")
    vid = variants.select(pl.col("variant_id").cast(pl.Int32), "variant")
    its = its.join(vid, on="variant").sort("it_start")
    # idle = time since the previous iteration of the same variant ended (0 for the first)
    its = its.with_columns((pl.col("it_start") - pl.col("it_end").shift(1).over("variant_id")).fill_null(0)
                           .clip(0).alias("idle_ns"))
    summary = j.summary.join(j.steps.select("step_rid", "step", "step_start", "step_end"), on="step_rid", how="left")
    summary = summary.join(its.select("it_rid", "variant_id", "iteration"), on="it_rid")
    work = (
        summary.filter(pl.col("step").is_not_null())
        .with_columns(pl.col("step").replace_strict(mapped).alias("tstep"))
        .group_by("variant_id", "iteration", "tstep")
        .agg(pl.col("step_start").min().alias("host_start_ns"), (pl.col("step_end") - pl.col("step_start")).sum()
             .alias("host_ns"), pl.col("span_ns").sum().alias("gpu_ns"), pl.col("span_ns").is_not_null().any()
             .alias("_gpu"))
        .with_columns(pl.when(pl.col("_gpu")).then(pl.col("gpu_ns")).alias("gpu_ns"))
    )
    idle = its.select("variant_id", "iteration", pl.lit("idle").alias("tstep"),
                      (pl.col("it_start") - pl.col("idle_ns")).alias("host_start_ns"), pl.col("idle_ns").alias("host_ns"),
                      pl.lit(None, pl.Int64).alias("gpu_ns"))
    steps = (
        pl.concat([idle, work.drop("_gpu").filter(pl.col("tstep") != "idle")], how="vertical_relaxed")
        .with_columns(pl.col("host_start_ns") - t0, pl.col("tstep").cast(S.STEP_DTYPE).alias("step"),
                      pl.lit(False).alias("warmup"), pl.lit(None, pl.Int16).alias("cpu_core"))
        .sort("variant_id", "iteration", "step")
    )
    present = [s for s in S.STEP_ORDER if s in set(steps["step"].cast(pl.String).to_list())]
    graph_share = j.ops.filter(pl.col("kind") == "kernel")["graph"].mean() if j.ops.height else 0.0
    vrows = []
    for v in its.partition_by("variant_id", maintain_order=True):
        idle_ms = round(float(v["idle_ns"].median() or 0) / 1e6, 1)
        n = v.height
        vrows.append({"variant_id": int(v["variant_id"][0]), "name": str(v["variant"][0]), "scenario": "idle", "batch": 1,
                      "idle_ms": idle_ms, "pacing": "sleep" if idle_ms > 0 else "none",
                      "launch": "graph" if (graph_share or 0) > 0.5 else "eager", "sync_mode": "auto",
                      "pipeline": "full" if "preprocess" in present else "infer", "warmup": 0, "iterations": n,
                      "completed": n, "status": "complete"})
    run_id = run_id or f"nsys-{Path(report).stem}"
    run_dir = create_run_dir(Path(out) / run_id)
    from tracegen.importers.common import base_manifest, file_entry

    command = ["tracegen", *sys.argv[1:]] if sys.argv and "nsys-import" in sys.argv else ["tracegen", "nsys-import"]
    manifest = base_manifest(
        "nsys", run_id, command,
        origin={"files": [file_entry(Path(report), "report")], "domain": domain, "iteration_range": iteration_range,
                "step_map": dict(mapped),
                "notes": ["batch size and pacing are not in an nsys report: batch 1, and sleep pacing when "
                          "iterations are apart, are assumed"]},
        clock="ns since the first iteration range's start, on Nsight Systems' clock",
        pipeline={"steps": present, "not_applicable": {}},
    )
    writer = RunWriter(run_dir, manifest)
    writer.write_variants(pl.DataFrame(vrows, schema=S.VARIANTS_SCHEMA, strict=False))
    writer.append_steps(steps)
    writer.finish("complete")
    gsteps = (
        summary.join(its.select("it_rid", "it_start", "it_end"), on="it_rid")
        .with_columns(pl.col("step").fill_null(OTHER_STEP),
                      (pl.coalesce("step_start", "it_start") - t0).alias("range_start_ns"),
                      (pl.coalesce("step_end", "it_end") - pl.coalesce("step_start", "it_start")).alias("range_ns"))
    )
    ops = (
        j.ops.join(its.select("it_rid", "variant_id", "iteration"), on="it_rid")
        .join(j.steps.select("step_rid", "step"), on="step_rid", how="left")
        .with_columns(pl.col("step").fill_null(OTHER_STEP), (pl.col("end") - pl.col("start")).alias("duration_ns"),
                      (pl.col("start") - t0).alias("start_ns"), (pl.col("api_start") - t0).alias("launch_ns"))
    )
    write_nsys_tables(run_dir, gsteps, ops)
    writer.update_manifest(nsys_import={
        "version": S.NSYS_TABLES_VERSION, "sqlite": str(Path(sqlite).resolve()), "domain": domain,
        "iteration_range": iteration_range, "clock_offset_ns": t0, "export": meta, "unplaced_ops": j.unplaced_ops,
        "ops": j.total_ops,
    })
    kinds = dict(ops.group_by("kind").len().iter_rows())
    return ImportResult(run_dir, Path(sqlite), its.height, gsteps.height, kinds.get("kernel", 0),
                        kinds.get("memcpy", 0), kinds.get("memset", 0), j.unplaced_ops, t0)


def check_iteration_range(name: str | None) -> str:
    if not name:
        raise TraceError("importing an application's report needs the name of its per-iteration NVTX range",
                         "pass --iteration-range NAME (and --domain NAME when the ranges are not in the default domain)")
    return name
