"""nsys-import on a real export: the H200 run in ``data/h200-small-nsys`` (see data/README.md).

The expectations are not numbers copied from the file: each is recomputed here with plain SQL on
the export (a slow, obvious nested query) and compared with the columnar join's result.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from tracegen.importers.nsys import import_into_run
from tracegen.trace.nsys_tables import read_nsys_tables
from tracegen.trace.reader import read_run

DATA = Path(__file__).parent / "data" / "h200-small-nsys"
KEPT = [0, 1, 2, 40, 64]  # the iterations data/trim_export.py kept


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("real") / "h200-small-nsys"
    shutil.copytree(DATA, run_dir)
    result = import_into_run(run_dir)  # the run's own profile.sqlite, found by default
    run = read_run(run_dir)
    return result, run, read_nsys_tables(run_dir, run.manifest)


def _reference(step: str = "infer") -> pl.DataFrame:
    """Per (variant name, iteration): kernels / graph launches whose launching API call started
    inside that iteration's ``step`` range on the same thread, by nested SQL."""
    sql = """
    WITH r AS (SELECT e.start, e.end, e.globalTid AS tid, COALESCE(e.text, s.value) AS name, e.int64Value AS payload
               FROM NVTX_EVENTS e LEFT JOIN StringIds s ON s.id = e.textId WHERE e.eventType = 59),
         v AS (SELECT * FROM r WHERE name LIKE 'idle b1 %'),
         it AS (SELECT r.*, (SELECT v.name FROM v WHERE v.tid = r.tid AND v.start <= r.start AND v.end >= r.end) AS variant
                FROM r WHERE name = 'iteration'),
         st AS (SELECT r.start, r.end, r.tid, it.variant, it.payload AS iteration FROM r JOIN it
                ON r.tid = it.tid AND r.start >= it.start AND r.end <= it.end WHERE r.name = ?),
         g AS (SELECT correlationId, start, end, 'kernel' AS kind FROM CUPTI_ACTIVITY_KIND_KERNEL
               UNION ALL SELECT correlationId, start, end, 'graph' FROM CUPTI_ACTIVITY_KIND_GRAPH_TRACE)
    SELECT st.variant, st.iteration, g.kind, COUNT(*) AS n, SUM(g.end - g.start) AS ns, MIN(g.start - a.start) AS first
    FROM st JOIN CUPTI_ACTIVITY_KIND_RUNTIME a ON a.globalTid = st.tid AND a.start >= st.start AND a.start <= st.end
    JOIN g ON g.correlationId = a.correlationId GROUP BY 1, 2, 3
    """
    with sqlite3.connect(DATA / "profile.sqlite") as c:
        rows = c.execute(sql, (step,)).fetchall()
    return pl.DataFrame(rows, schema=["variant", "iteration", "kind", "n", "ns", "first"], orient="row")


def test_real_export_joins_every_kept_iteration(imported):
    result, run, t = imported
    assert result.unplaced_ops == 0 and result.iterations == 4 * len(KEPT)
    assert sorted(t.steps["iteration"].unique().to_list()) == KEPT
    assert set(t.steps["variant_id"].to_list()) == set(run.variants["variant_id"].to_list())


def test_kernel_counts_and_times_match_a_plain_sql_join(imported):
    _, run, t = imported
    ref = _reference().join(run.variants.select(pl.col("name").alias("variant"), "variant_id"), on="variant")
    infer = t.steps.filter(pl.col("step") == "infer")
    kernels = ref.filter(pl.col("kind") == "kernel").join(infer, on=["variant_id", "iteration"])
    graphs = ref.filter(pl.col("kind") == "graph").join(infer, on=["variant_id", "iteration"])
    assert kernels.height == 2 * len(KEPT) and graphs.height == 2 * len(KEPT)  # eager and graph variants
    assert (kernels["n"] == kernels["kernels"]).all() and (kernels["ns"] == kernels["kernel_ns"]).all()
    assert (graphs["n"] == graphs["graphs"]).all() and (graphs["ns"] == graphs["graph_ns"]).all()
    # Launch latency = first GPU start after the launching call, for the first op by start time.
    assert (graphs["first"] == graphs["launch_latency_ns"]).all()


def test_real_steps_line_up_with_the_runs_own_times(imported):
    _, run, t = imported
    both = t.steps.join(run.steps.with_columns(pl.col("step").cast(pl.String)), on=["variant_id", "iteration", "step"])
    assert both.height == t.steps.height
    # NVTX push and the runner's clock read are a few hundred ns apart: the offset is one constant.
    assert (both["range_start_ns"] - both["host_start_ns"]).abs().max() < 5_000
    assert ((both["range_ns"] - both["host_ns"]).abs() < 20_000).all()
    # The GPU work an infer step launched fits inside what the CUDA events around it measured.
    infer = both.filter(pl.col("step") == "infer")
    assert ((infer["busy_ns"] <= infer["gpu_ns"]) & (infer["busy_ns"] > 0)).all()


def test_eager_gaps_are_launch_bubbles_and_graphs_have_none(imported):
    _, run, t = imported
    launch = dict(run.variants.select("variant_id", "launch").iter_rows())
    infer = t.steps.filter(pl.col("step") == "infer").with_columns(
        pl.col("variant_id").replace_strict(launch).alias("launch"))
    eager, graph = infer.filter(pl.col("launch") == "eager"), infer.filter(pl.col("launch") == "graph")
    assert (graph["gap_ns"] == 0).all() and (graph["kernels"] == 0).all() and (graph["graphs"] == 1).all()
    # Eager batch 1 is launch-bound: the GPU idles between kernels longer than it computes.
    assert (eager["gap_ns"] > eager["kernel_ns"]).all()
    assert (eager["span_ns"] == eager["busy_ns"] + eager["gap_ns"]).all()
