"""`tracegen nsys-import` on exports with known contents: the join, the tables, the errors."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from tests.analysis.runs import baseline, make_run, paced
from tests.importers.fake_nsys import Plan, from_run
from tracegen.errors import TraceError
from tracegen.importers.nsys import import_into_run, resolve_export
from tracegen.trace import schema as S
from tracegen.trace.nsys_tables import read_nsys_tables
from tracegen.trace.reader import read_manifest


def _run(tmp_path, specs=None):
    specs = specs or [baseline(iterations=12, warmup=2), paced("keepalive", 5, iterations=12, warmup=2)]
    return make_run(tmp_path, specs)


def _tables(run):
    return read_nsys_tables(run.path, read_manifest(run.path))


def test_every_step_gets_the_gpu_work_it_launched(tmp_path):
    run = _run(tmp_path)
    plan = Plan(kernels=5, latency=4_000, gap=1_500, keepalive_memsets=3)
    result = import_into_run(run.path, from_run(run, tmp_path / "r.sqlite", plan))
    t = _tables(run)
    n_iter = run.steps.select("variant_id", "iteration").n_unique()
    assert result.iterations == n_iter and result.kernels == 5 * n_iter and result.unplaced_ops == 0
    infer = t.steps.filter(pl.col("step") == "infer")
    assert infer.height == n_iter
    assert infer["kernels"].to_list() == [5] * n_iter
    assert infer["launch_latency_ns"].to_list() == [4_000] * n_iter
    assert infer["gap_ns"].to_list() == [4 * 1_500] * n_iter
    assert (infer["span_ns"] == infer["busy_ns"] + infer["gap_ns"]).all()
    # Summed kernel time equals the kernels' own durations, per step.
    per_kernel = t.kernels.filter(pl.col("kind") == "kernel").group_by("variant_id", "iteration").agg(
        pl.col("duration_ns").sum().alias("sum"))
    both = infer.join(per_kernel, on=["variant_id", "iteration"])
    assert (both["kernel_ns"] == both["sum"]).all()
    # Copies land in h2d / d2h with their direction; keep-alive memsets in the paced variant's idle step.
    h2d = t.kernels.filter(pl.col("step") == "h2d")
    assert set(h2d["name"]) == {"memcpy HtoD"} and h2d.height == n_iter and (h2d["bytes"] == 1 << 20).all()
    assert set(t.kernels.filter(pl.col("step") == "d2h")["name"]) == {"memcpy DtoH"}
    idle = t.steps.filter(pl.col("step") == "idle")
    assert idle.filter(pl.col("variant_id") == 1)["memsets"].to_list() == [3] * 14
    assert idle.filter(pl.col("variant_id") == 0)["memsets"].sum() == 0
    # Steps without GPU work: zeros, and no span.
    pre = t.steps.filter(pl.col("step") == "preprocess")
    assert pre["kernels"].sum() == 0 and pre["span_ns"].null_count() == pre.height
    # The sync step's API time is the wait.
    sync = t.steps.filter(pl.col("step") == "sync").join(
        run.steps.filter(pl.col("step") == "sync").select("variant_id", "iteration", "host_ns"),
        on=["variant_id", "iteration"])
    assert ((sync["api_ns"] - sync["host_ns"]).abs() <= 10).all()


def test_run_clock_lines_up_with_steps_parquet(tmp_path):
    run = _run(tmp_path)
    import_into_run(run.path, from_run(run, tmp_path / "r.sqlite", Plan(offset=7_000_000_000)))
    t = _tables(run)
    both = t.steps.join(run.steps.with_columns(pl.col("step").cast(pl.String)), on=["variant_id", "iteration", "step"])
    assert both.height == run.steps.height  # every step of the run has its row
    # The fake's NVTX pushes drift by 10 ns per step; the median offset keeps every step within that.
    assert (both["range_start_ns"] - both["host_start_ns"]).abs().max() <= 10 * run.steps.height
    assert abs(read_manifest(run.path)["nsys_import"]["clock_offset_ns"] - 7_000_000_000) <= 10 * run.steps.height


def test_graph_kernels_share_the_graph_launch_and_land_in_infer(tmp_path):
    run = _run(tmp_path, [baseline(iterations=6, warmup=1, launch="graph")])
    import_into_run(run.path, from_run(run, tmp_path / "r.sqlite", Plan(graph=True, kernels=6, latency=5_000, gap=700)))
    t = _tables(run)
    ks = t.kernels.filter(pl.col("kind") == "kernel")
    assert ks.height == 6 * 7 and ks["graph"].all() and set(ks["step"]) == {"infer"}
    assert ks.group_by("variant_id", "iteration").agg(pl.col("correlation_id").n_unique())["correlation_id"].to_list() \
        == [1] * 7
    infer = t.steps.filter(pl.col("step") == "infer")
    assert infer["launch_latency_ns"].to_list() == [5_000] * 7 and infer["gap_ns"].to_list() == [5 * 700] * 7


def test_import_is_repeatable_and_versioned(tmp_path):
    run = _run(tmp_path)
    rep = from_run(run, tmp_path / "r.sqlite")
    import_into_run(run.path, rep)
    first = _tables(run).steps
    import_into_run(run.path, rep)
    assert _tables(run).steps.equals(first)
    manifest = read_manifest(run.path)
    assert manifest["nsys_import"]["version"] == S.NSYS_TABLES_VERSION
    assert manifest["nsys_import"]["domain"] == "tracegen"
    manifest["nsys_import"]["version"] = S.NSYS_TABLES_VERSION + 1
    (run.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TraceError, match="newer than the 1 this tracegen reads"):
        _tables(run)


def test_report_of_another_run_is_refused(tmp_path):
    run = _run(tmp_path)
    other = make_run(tmp_path / "o", [paced("spin", 7, iterations=5, warmup=1)], run_id="other")
    rep = from_run(other, tmp_path / "other.sqlite")
    with pytest.raises(TraceError, match="does not belong to"):
        import_into_run(run.path, rep)
    assert not (run.path / S.NSYS_STEPS).exists()


# -- bad exports: one clear message each, nothing written -------------------------------------------
def _broken_export(tmp_path, run, **save):
    """The export ``from_run`` writes for ``run``, saved again with tables or columns taken out."""
    import sqlite3

    good = from_run(run, tmp_path / "good.sqlite")
    bad = tmp_path / "bad.sqlite"
    src, dst = sqlite3.connect(good), sqlite3.connect(bad)
    src.backup(dst)
    for table in save.get("drop_tables", ()):
        dst.execute(f"DROP TABLE {table}")
    for table, col in save.get("rename", {}).items():
        dst.execute(f'ALTER TABLE {table} RENAME COLUMN "{col}" TO "{col}_v2"')
    dst.commit()
    src.close()
    dst.close()
    return bad


@pytest.mark.parametrize("drop, message", [
    (("NVTX_EVENTS",), "has no NVTX ranges.*nsys profile -t cuda,nvtx"),
    (("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY", "CUPTI_ACTIVITY_KIND_MEMSET"),
     "has no CUDA kernels or copies.*-t cuda,nvtx"),
    (("CUPTI_ACTIVITY_KIND_RUNTIME", "CUPTI_ACTIVITY_KIND_DRIVER"), "no CUDA API calls"),
])
def test_exports_without_nvtx_kernels_or_api_calls(tmp_path, drop, message):
    run = _run(tmp_path, [baseline(iterations=4, warmup=1)])
    with pytest.raises(TraceError, match=message):
        import_into_run(run.path, _broken_export(tmp_path, run, drop_tables=drop))
    assert not (run.path / S.NSYS_STEPS).exists() and "nsys_import" not in read_manifest(run.path)


@pytest.mark.parametrize("table, column", [("CUPTI_ACTIVITY_KIND_KERNEL", "correlationId"),
                                           ("NVTX_EVENTS", "domainId"), ("CUPTI_ACTIVITY_KIND_RUNTIME", "globalTid")])
def test_export_with_a_differing_schema_names_table_column_and_version(tmp_path, table, column):
    run = _run(tmp_path, [baseline(iterations=4, warmup=1)])
    bad = _broken_export(tmp_path, run, rename={table: column})
    with pytest.raises(TraceError, match=rf"table {table} lacks column {column}; this export.s schema \(0.fake\) differs.*"
                                         r"nsys export --type sqlite"):
        import_into_run(run.path, bad)


def test_export_with_empty_kernel_tables(tmp_path):
    run = _run(tmp_path, [baseline(iterations=4, warmup=1)])
    bad = _broken_export(tmp_path, run)
    import sqlite3

    with sqlite3.connect(bad) as c:
        for t in ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY", "CUPTI_ACTIVITY_KIND_MEMSET"):
            c.execute(f"DELETE FROM {t}")
    with pytest.raises(TraceError, match="no CUDA kernels, copies or memsets"):
        import_into_run(run.path, bad)


def test_missing_domain_lists_the_domains_present(tmp_path):
    run = _run(tmp_path, [baseline(iterations=4, warmup=1)])
    rep = from_run(run, tmp_path / "r.sqlite")
    with pytest.raises(TraceError, match=r"no NVTX ranges in the domain 'mine' \(domains present: .*torch.*tracegen"):
        import_into_run(run.path, rep, domain="mine")


def test_not_a_database_and_wrong_suffix(tmp_path):
    bad = tmp_path / "x.sqlite"
    bad.write_text("not sqlite")
    run = _run(tmp_path, [baseline(iterations=4, warmup=1)])
    with pytest.raises(TraceError, match="is not an SQLite database"):
        import_into_run(run.path, bad)
    other = tmp_path / "x.json"
    other.write_text("{}")
    with pytest.raises(TraceError, match="neither an .nsys-rep report nor an .sqlite export"):
        resolve_export(other)


def test_nsys_rep_without_nsys_on_path_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    rep = tmp_path / "profile.nsys-rep"
    rep.write_bytes(b"\0")
    with pytest.raises(TraceError, match="`nsys` is not on PATH.*nsys export --type sqlite -o profile.sqlite"):
        resolve_export(rep)


def test_run_without_report_says_how_to_get_one(tmp_path):
    run = _run(tmp_path, [baseline(iterations=4, warmup=1)])
    with pytest.raises(TraceError, match="has no Nsight Systems report.*tracegen run --nsys"):
        import_into_run(run.path)


def test_tracegen_domain_without_its_name_row_is_still_found(tmp_path):
    """A focused capture can begin after the domain was named: its eventType 75 row is missing."""
    import sqlite3

    run = _run(tmp_path, [baseline(iterations=4, warmup=1)])
    bad = _broken_export(tmp_path, run)
    with sqlite3.connect(bad) as c:
        c.execute("DELETE FROM NVTX_EVENTS WHERE eventType = 75 AND text = 'tracegen'")
    assert import_into_run(run.path, bad).iterations == 5
