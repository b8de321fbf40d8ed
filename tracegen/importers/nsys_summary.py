"""What ``tracegen nsys-import`` prints: per variant and step with GPU work, the medians."""

from __future__ import annotations

import polars as pl

from tracegen.trace.nsys_tables import read_nsys_tables
from tracegen.trace.reader import read_manifest
from tracegen.trace.schema import STEP_ORDER

_ORDER = {s: i for i, s in enumerate(STEP_ORDER)}


def step_medians(steps: pl.DataFrame) -> pl.DataFrame:
    """Median per (variant, step) of the steps that launched GPU work."""
    return (
        steps.filter((pl.col("kernels") + pl.col("graphs") + pl.col("memcpys") + pl.col("memsets")) > 0)
        .group_by("variant_id", "step")
        .agg(pl.len().alias("n"), pl.col("kernels").median().alias("kernels"),
             pl.col("graphs").median().alias("graphs"), pl.col("memsets").median().alias("memsets"),
             ((pl.col("kernel_ns") + pl.col("graph_ns")).median() / 1e3).alias("kernel_us"),
             (pl.col("memcpy_ns").median() / 1e3).alias("memcpy_us"),
             (pl.col("gap_ns").median() / 1e3).alias("gap_us"),
             (pl.col("launch_latency_ns").median() / 1e3).alias("launch_us"),
             (pl.col("range_ns").median() / 1e3).alias("host_us"))
        .with_columns(pl.col("step").replace_strict(_ORDER, default=len(_ORDER)).alias("_o"))
        .sort("variant_id", "_o", "step").drop("_o")
    )


def print_summary(console, result) -> None:
    from rich.table import Table

    manifest = read_manifest(result.run_dir)
    tables = read_nsys_tables(result.run_dir, manifest)
    console.print(f"{result.run_dir}: {result.iterations} iterations, {result.kernels} kernels, "
                  f"{result.memcpys} memcpys, {result.memsets} memsets from {result.sqlite.name}")
    graphs = int(tables.steps["graphs"].sum())
    if graphs:
        console.print(f"  {graphs} CUDA graph launches were traced as a whole (their kernels are not listed one by one: "
                      "record with `nsys profile --cuda-graph-trace=node` for that)")
    if result.unplaced_ops:
        console.print(f"  ({result.unplaced_ops} GPU operations were launched outside every iteration range: "
                      "model loading, warm-up outside the loop; left out)")
    from tracegen.trace.reader import read_run

    names = dict(read_run(result.run_dir).variants.select("variant_id", "name").iter_rows())
    med = step_medians(tables.steps)
    for vid in med["variant_id"].unique(maintain_order=True).to_list():
        console.print(f"  v{vid}: {names.get(vid, '?')}")
    table = Table("v", "step", "n", "kernels", "compute us", "copy us", "gaps us", "launch us", "host us",
                  title="medians per step of the GPU work it launched (launch: API call -> first kernel start)",
                  title_justify="left")
    for r in med.iter_rows(named=True):
        ops = f"{r['kernels']:.0f}" if r["kernels"] else ("graph" if r["graphs"] else "-")
        table.add_row(f"v{r['variant_id']}", r["step"], str(r["n"]), ops,
                      _f(r["kernel_us"]), _f(r["memcpy_us"]), _f(r["gap_us"]),
                      _f(r["launch_us"]), _f(r["host_us"]))
    console.print(table)
    console.print(f"next: tracegen report {result.run_dir}")


def _f(x) -> str:
    return "-" if x is None else f"{x:,.1f}"
