"""`tracegen import table`: long-form per-step tables from any harness."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.importers.test_bad_input import check
from tracegen.analysis.stats import iterations, latency_basis, variant_stats
from tracegen.importers.table import TableOptions, import_table
from tracegen.trace.reader import read_run


def harness_rows(n: int = 40, gaps=(0, 20), seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for gap in gaps:
        for i in range(n):
            pre, inf, post = rng.uniform(0.4, 0.6), rng.uniform(2.0, 2.5) * (1.5 if gap and i > n // 2 else 1), 0.3
            rows += [{"model": "yolo", "idle_ms": gap, "iteration": i, "step": "sleep", "duration_ms": float(gap)},
                     {"model": "yolo", "idle_ms": gap, "iteration": i, "step": "pre", "duration_ms": pre},
                     {"model": "yolo", "idle_ms": gap, "iteration": i, "step": "inference", "duration_ms": inf,
                      "gpu_ms": inf * 0.9},
                     {"model": "yolo", "idle_ms": gap, "iteration": i, "step": "post", "duration_ms": post}]
    return rows


MAP = {"sleep": "idle", "pre": "preprocess", "inference": "infer", "post": "postprocess"}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_round_trip(tmp_path, fmt):
    rows = harness_rows()
    df = pl.DataFrame(rows)
    path = tmp_path / f"h.{fmt}"
    df.write_csv(path) if fmt == "csv" else df.write_parquet(path)
    result = import_table(path, TableOptions(step_map=MAP, warmup=3, gpu="gpu_ms"), out=tmp_path / "runs", run_id="t")
    run = read_run(result.run_dir)
    assert run.manifest["origin"]["kind"] == "table"
    assert run.variants["idle_ms"].to_list() == [0.0, 20.0] and run.variants["pacing"].to_list() == ["none", "sleep"]
    assert run.variants["warmup"].to_list() == [3, 3] and run.variants["iterations"].to_list() == [37, 37]
    assert "model=yolo" in run.variants["name"][0]
    it = iterations(run.steps, latency_basis(run.manifest))
    # latency = pre + inference + post of each iteration, as the table says
    src = df.with_columns(pl.col("idle_ms").cast(pl.Float64)).filter(pl.col("step") != "sleep").group_by("idle_ms", "iteration").agg(pl.col("duration_ms").sum().alias("ms"))
    got = it.join(run.variants.select("variant_id", "idle_ms"), on="variant_id").select("idle_ms", "iteration",
                                                                                      (pl.col("latency_ns") / 1e6).alias("got"))
    joined = src.join(got, on=["idle_ms", "iteration"])
    assert joined.height == 80
    np.testing.assert_allclose(joined["got"].to_numpy(), joined["ms"].to_numpy(), atol=1e-6)
    infer = run.steps.filter(pl.col("step") == "infer")
    assert infer["gpu_ns"].null_count() == 0
    stats = variant_stats(run.variants, it)
    measured = df.filter((pl.col("step") == "inference") & (pl.col("iteration") >= 3) & (pl.col("idle_ms") == 0))
    assert stats["infer_host_p50_ms"][0] == pytest.approx(measured["duration_ms"].median(), abs=1e-6)
    # no start column: the steps are laid end to end
    s = run.steps.sort("host_start_ns")
    assert (s["host_start_ns"].diff().drop_nulls() >= 0).all()


def test_table_with_start_and_units(tmp_path):
    rows = [{"it": i, "stage": st, "t0": 1_000 * (3 * i + k), "dur": 500 + k, "batch": b}
            for b in (1, 8) for i in range(12) for k, st in enumerate(("h2d", "infer", "d2h"))]
    path = tmp_path / "x.csv"
    pl.DataFrame(rows).write_csv(path)
    opts = TableOptions(iteration="it", step="stage", duration="dur", start="t0", unit="us")
    run = read_run(import_table(path, opts, out=tmp_path / "runs", run_id="u").run_dir)
    assert run.variants["scenario"].to_list() == ["batch", "batch"] and run.variants["batch"].to_list() == [1, 8]
    assert set(run.steps["host_ns"].to_list()) == {500_000, 501_000, 502_000}
    assert run.steps["host_start_ns"].min() == 0


def test_bad_tables(capsys, tmp_path):
    good = pl.DataFrame(harness_rows(5, gaps=(0,)))
    p = tmp_path / "nodur.csv"
    good.drop("duration_ms").write_csv(p)
    check(capsys, tmp_path, ["table", p, "--step-map", "sleep=idle,pre=preprocess,inference=infer,post=postprocess"],
          "lacks the column duration", "--duration-col")
    p = tmp_path / "text.csv"
    good.with_columns(pl.when(pl.col("iteration") == 2).then(pl.lit("fast")).otherwise(pl.col("duration_ms").cast(pl.String))
                      .alias("duration_ms")).write_csv(p)
    check(capsys, tmp_path, ["table", p, "--step-map", "sleep=idle,pre=preprocess,inference=infer,post=postprocess"],
          "holds text, not numbers", "'fast'")
    p = tmp_path / "steps.csv"
    good.write_csv(p)
    check(capsys, tmp_path, ["table", p], "are not tracegen steps", "--step-map")
    check(capsys, tmp_path, ["table", p, "--step-map", "sleep=nap"], "unknown step(s) nap")
    check(capsys, tmp_path, ["table", p, "--step-map", "oops"], "is not NAME=STEP")
    check(capsys, tmp_path, ["table", p, "--variant-cols", "model", "--step-map",
                             "sleep=idle,pre=preprocess,inference=infer,post=postprocess", "--duration-col", "nope"],
          "no column 'nope'")
    neg = tmp_path / "neg.csv"
    good.with_columns(-pl.col("duration_ms")).write_csv(neg)
    check(capsys, tmp_path, ["table", neg, "--step-map", "sleep=idle,pre=preprocess,inference=infer,post=postprocess"],
          "negative values")
    pq = tmp_path / "t.parquet"
    good.write_parquet(pq)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(pq.read_bytes()[:200])
    check(capsys, tmp_path, ["table", cut], "not a readable Parquet file, or is truncated")
    dup = tmp_path / "dup.csv"
    pl.concat([good, good]).write_csv(dup)
    check(capsys, tmp_path, ["table", dup, "--step-map", "sleep=idle,pre=preprocess,inference=infer,post=postprocess"],
          "appears 2 times")
    empty = tmp_path / "empty.csv"
    empty.write_text("iteration,step,duration\n")
    check(capsys, tmp_path, ["table", empty], "has no rows")
