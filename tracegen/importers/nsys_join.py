"""The join: NVTX ranges -> CUDA API calls inside them -> the GPU work those calls enqueued.

All of it is columnar (polars), so a report with millions of kernels joins in seconds:

1. Nesting. Push/pop ranges on one thread nest strictly, so a range's depth is the number of
   ranges on its thread that started before it and had not yet ended; its parent is the latest
   range one level up that started before it (an as-of join per thread and depth).
2. Iterations are ranges with the chosen name (tracegen's own: ``iteration``, payload = index);
   their parent names the variant; their children are the steps.
3. Each CUDA API call is placed in the step (and iteration) whose range holds its start on the
   same thread (as-of joins again); each kernel, memcpy and memset inherits the place of the call
   with its correlation id. A CUDA graph's kernels all carry the graph launch's correlation id,
   so they land in the step that launched the graph.
"""

from __future__ import annotations

import polars as pl

OTHER_STEP = "(outside steps)"  # GPU work launched inside an iteration but outside its steps


def nest(ranges: pl.DataFrame) -> pl.DataFrame:
    """Add ``rid`` (row id), ``depth`` (0 = outermost) and ``parent`` (rid or null) to ranges."""
    r = ranges.sort(["tid", "start", "end"], descending=[False, False, True]).with_row_index("rid")
    r = r.with_columns(pl.col("rid").cast(pl.Int64))
    # Depth = ranges of the thread started at or before this one (its rank in the thread) minus those
    # already ended when it starts.
    ends = r.select("tid", pl.col("end").alias("t")).sort(["tid", "t"])
    rank = pl.int_range(pl.len()).over("tid")
    r = r.with_columns(rank.alias("_rank"))
    closed = (
        r.select("rid", "tid", "start").sort(["tid", "start"])
        .join_asof(ends.with_columns(pl.int_range(1, pl.len() + 1).over("tid").alias("_closed")),
                   left_on="start", right_on="t", by="tid", strategy="backward", check_sortedness=False)
        .select("rid", pl.col("_closed").fill_null(0))
    )
    r = r.join(closed, on="rid").with_columns((pl.col("_rank") - pl.col("_closed")).clip(0).alias("depth"))
    r = r.drop("_rank", "_closed")
    parents = r.select("tid", pl.col("depth").alias("pdepth"), pl.col("start").alias("pstart"),
                       pl.col("end").alias("pend"), pl.col("rid").alias("parent")).sort("pstart")
    child = r.select("rid", "tid", "start", "end", (pl.col("depth") - 1).alias("pdepth")).sort("start")
    linked = (
        child.join_asof(parents, left_on="start", right_on="pstart", by=["tid", "pdepth"], strategy="backward", check_sortedness=False)
        .with_columns(pl.when(pl.col("pend") >= pl.col("end")).then(pl.col("parent")).alias("parent"))
        .select("rid", "parent")
    )
    return r.join(linked, on="rid", how="left").sort("rid")


def structure(nested: pl.DataFrame, iteration_name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Iteration ranges (with variant name and index) and step ranges (children of iterations).

    Iteration index: the payload where the ranges carry one, else the order within the variant.
    """
    names = nested.select("rid", pl.col("name").alias("variant"))
    its = (
        nested.filter(pl.col("name") == iteration_name)
        .join(names, left_on="parent", right_on="rid", how="left")
        .with_columns(pl.col("variant").fill_null("(all)"))
        .sort("start")
    )
    order = pl.int_range(pl.len()).over("variant").cast(pl.Int64)
    its = its.with_columns(pl.coalesce(pl.col("payload"), order).alias("iteration"))
    its = its.select(pl.col("rid").alias("it_rid"), "tid", pl.col("start").alias("it_start"),
                     pl.col("end").alias("it_end"), "variant", "iteration")
    steps = (
        nested.join(its.select("it_rid"), left_on="parent", right_on="it_rid", how="semi")
        .select(pl.col("rid").alias("step_rid"), pl.col("parent").alias("it_rid"), "tid",
                pl.col("start").alias("step_start"), pl.col("end").alias("step_end"), pl.col("name").alias("step"))
    )
    return its, steps


def place_calls(api: pl.DataFrame, its: pl.DataFrame, steps: pl.DataFrame) -> pl.DataFrame:
    """API calls inside an iteration, with it_rid and step_rid (null when outside every step)."""
    api = api.sort("api_start")
    in_it = (
        api.join_asof(its.select("tid", "it_start", "it_end", "it_rid").sort("it_start"),
                      left_on="api_start", right_on="it_start", by="tid", strategy="backward", check_sortedness=False)
        .filter(pl.col("it_end").is_not_null() & (pl.col("api_start") <= pl.col("it_end")))
        .drop("it_start", "it_end")
    )
    placed = (
        in_it.join_asof(steps.select("tid", "step_start", "step_end", "step_rid", pl.col("it_rid").alias("_srid"))
                        .sort("step_start"), left_on="api_start", right_on="step_start", by="tid", strategy="backward", check_sortedness=False)
        .with_columns(pl.when((pl.col("api_start") <= pl.col("step_end")) & (pl.col("_srid") == pl.col("it_rid")))
                      .then(pl.col("step_rid")).alias("step_rid"))
        .drop("step_start", "step_end", "_srid")
    )
    return placed


def place_ops(ops: pl.DataFrame, calls: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """GPU work with the place of the API call that enqueued it; also how many ops found no call
    inside an iteration (work enqueued outside the ranges, e.g. model loading)."""
    calls1 = calls.unique("correlation_id", keep="first")
    graph = ops.group_by("correlation_id").len("_n")
    joined = (
        ops.join(calls1.select("correlation_id", "api_start", "it_rid", "step_rid"), on="correlation_id", how="left")
        .join(graph, on="correlation_id", how="left")
    )
    unplaced = int(joined["it_rid"].null_count())
    placed = joined.filter(pl.col("it_rid").is_not_null()).with_columns(
        (pl.col("graph_node").fill_null(0).ne(0) | (pl.col("_n") > 1) | (pl.col("kind") == "graph")).alias("graph")
    ).drop("_n")
    return placed, unplaced


def step_summary(placed: pl.DataFrame, calls: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """One row per (iteration, step) range in ``keys`` (it_rid, step_rid, step_start, step_end):
    counts and summed time of kernels / whole-graph launches / memcpys / memsets, the GPU's busy time (union of the
    intervals), span from first start to last end, the gaps inside the span, the launch-to-start
    latency of the first kernel (or graph), and the CUDA API calls made in the step."""
    key = ["it_rid", "step_rid"]
    ops = placed.sort("start")
    # Busy time = union of intervals: an op adds only what extends past the furthest end so far.
    ops = ops.with_columns(pl.col("end").cum_max().shift(1).over(key).alias("_reach"))
    ops = ops.with_columns(
        (pl.col("end") - pl.max_horizontal(pl.col("start"), pl.col("_reach").fill_null(pl.col("start"))))
        .clip(0).alias("_adds"),
        (pl.col("end") - pl.col("start")).alias("_dur"),
    )
    kernel = pl.col("kind") == "kernel"
    compute = pl.col("kind").is_in(["kernel", "graph"])  # a graph traced whole stands for its kernels
    agg = ops.group_by(key).agg(
        kernel.sum().cast(pl.Int32).alias("kernels"),
        (pl.col("kind") == "graph").sum().cast(pl.Int32).alias("graphs"),
        (pl.col("kind") == "memcpy").sum().cast(pl.Int32).alias("memcpys"),
        (pl.col("kind") == "memset").sum().cast(pl.Int32).alias("memsets"),
        pl.col("_dur").filter(kernel).sum().alias("kernel_ns"),
        pl.col("_dur").filter(pl.col("kind") == "graph").sum().alias("graph_ns"),
        pl.col("_dur").filter(pl.col("kind") == "memcpy").sum().alias("memcpy_ns"),
        pl.col("_dur").filter(pl.col("kind") == "memset").sum().alias("memset_ns"),
        pl.col("_adds").sum().alias("busy_ns"),
        pl.col("start").min().alias("gpu_first_ns"),
        pl.col("end").max().alias("gpu_last_ns"),
        (pl.col("start") - pl.col("api_start")).filter(compute).first().alias("launch_latency_ns"),
    ).with_columns((pl.col("gpu_last_ns") - pl.col("gpu_first_ns")).alias("span_ns"))
    agg = agg.with_columns((pl.col("span_ns") - pl.col("busy_ns")).alias("gap_ns"))
    api = calls.group_by(key).agg(pl.len().cast(pl.Int32).alias("api_calls"),
                                  (pl.col("api_end") - pl.col("api_start")).sum().alias("api_ns"))
    out = keys.join(agg, on=key, how="left", nulls_equal=True).join(api, on=key, how="left", nulls_equal=True)
    zero = ["kernels", "graphs", "memcpys", "memsets", "kernel_ns", "graph_ns", "memcpy_ns", "memset_ns", "busy_ns",
            "api_calls", "api_ns"]
    return out.with_columns(pl.col(c).fill_null(0) for c in zero)
