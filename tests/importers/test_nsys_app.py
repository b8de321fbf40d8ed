"""An application's own NVTX-annotated report becomes a tracegen run; the CLI around both uses."""

from __future__ import annotations

import polars as pl
import pytest

from tests.analysis.runs import baseline, make_run
from tests.importers.fake_nsys import FakeReport, from_run
from tracegen.analysis.findings import analyze
from tracegen.cli import main
from tracegen.errors import ConfigError
from tracegen.importers.nsys_app import map_step, report_to_run
from tracegen.trace.nsys_tables import read_nsys_tables
from tracegen.trace.reader import read_run

FRAME_GAP = 20_000_000  # 20 ms between frames: the application sleeps to pace its video


def _app_report(path, frames=30, slow_from=None, names=("decode", "inference", "nms")):
    """A video loop in the default NVTX domain: frame > decode / inference / nms, eager kernels."""
    rep = FakeReport()
    t = 1_000_000_000
    for f in range(frames):
        start = t
        rep.range(t + 10, t + 300_000, names[0], 0, registered=False)
        c = rep.api(t + 100_000, t + 110_000, "cudaMemcpyAsync")
        rep.memcpy(t + 105_000, t + 180_000, c, 3 << 20, 1)
        t += 300_010
        inf_start = t
        for k in range(3):
            c = rep.api(t + 1_000 + 5_000 * k, t + 4_000 + 5_000 * k, "cudaLaunchKernel")
            dur = 200_000 * (2 if slow_from is not None and f >= slow_from else 1)
            ks = inf_start + 10_000 + 250_000 * k * (2 if slow_from is not None and f >= slow_from else 1)
            rep.kernel(ks, ks + dur, c, f"conv_{k}")
        rep.range(inf_start, inf_start + 20_000, names[1], 0, registered=False)
        t = inf_start + 20_010
        rep.range(t, t + 50_000, names[2], 0, registered=False)
        t += 50_010
        rep.range(start, t, "frame", 0, payload=None, registered=False)
        t += FRAME_GAP
    return rep.save(path)


def test_application_report_becomes_a_run(tmp_path):
    result = report_to_run(_app_report(tmp_path / "app.sqlite"), tmp_path / "runs", domain="(default)",
                           iteration_range="frame")
    run = read_run(result.run_dir)
    assert run.status == "complete" and run.variants.height == 1 and run.variants["idle_ms"][0] == 20.0
    steps = run.steps.with_columns(pl.col("step").cast(pl.String))
    assert set(steps["step"]) == {"idle", "preprocess", "infer", "postprocess"}
    infer = steps.filter(pl.col("step") == "infer")
    assert infer.height == 30 and (infer["host_ns"] == 20_000).all()
    # GPU time of a step = span of the work it launched: 3 kernels of 0.2 ms, 50 us apart
    assert (infer["gpu_ns"] == 2 * 250_000 + 200_000).all()
    pre = steps.filter(pl.col("step") == "preprocess")
    assert (pre["gpu_ns"] == 75_000).all()  # the frame upload
    idle = steps.filter(pl.col("step") == "idle").sort("iteration")
    assert idle["host_ns"][0] == 0 and (idle["host_ns"][1:] == FRAME_GAP).all()
    t = read_nsys_tables(run.path, run.manifest)
    assert set(t.steps["step"]) == {"decode", "inference", "nms"}  # the application's own names
    assert t.kernels.filter(pl.col("kind") == "kernel").height == 90
    analyze(run)  # the analysis takes it like any run


def test_slow_frames_show_in_the_imported_run(tmp_path):
    result = report_to_run(_app_report(tmp_path / "app.sqlite", frames=40, slow_from=20), tmp_path / "runs",
                           domain="(default)", iteration_range="frame", run_id="slow")
    steps = read_run(result.run_dir).steps.filter(pl.col("step") == "infer").sort("iteration")
    assert steps["gpu_ns"][:20].max() < steps["gpu_ns"][20:].min()


def test_unknown_step_names_need_a_mapping(tmp_path):
    rep = _app_report(tmp_path / "app.sqlite", frames=5, names=("grab", "net", "draw_boxes"))
    with pytest.raises(ConfigError, match=r"'grab'.*match no tracegen step.*--step NAME=STEP"):
        report_to_run(rep, tmp_path / "runs", domain="(default)", iteration_range="frame")
    result = report_to_run(rep, tmp_path / "runs", domain="(default)", iteration_range="frame",
                           step_map={"grab": "preprocess", "net": "infer"})
    assert "infer" in set(read_run(result.run_dir).steps["step"].cast(pl.String))


def test_step_name_aliases():
    assert map_step("Inference", {}) == "infer" and map_step("forward pass", {}) == "infer"
    assert map_step("preprocessing", {}) == "preprocess" and map_step("NMS", {}) == "postprocess"
    assert map_step("cudaStreamSynchronize wait", {}) is None and map_step("x", {"x": "sync"}) == "sync"


def test_cli_imports_into_a_run_and_reports_bad_input_in_one_line(tmp_path, capsys):
    run = make_run(tmp_path, [baseline(iterations=5, warmup=1)])
    rep = from_run(run, tmp_path / "r.sqlite")
    with pytest.raises(SystemExit) as done:
        main(["nsys-import", str(run.path), str(rep)])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "6 iterations, 24 kernels" in out and "infer" in out
    with pytest.raises(SystemExit) as done:
        main(["nsys-import", str(rep)])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "--iteration-range NAME" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as done:
        main(["nsys-import", str(run.path), str(tmp_path / "missing.nsys-rep")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "does not exist" in err and "Traceback" not in err


def test_imported_application_run_says_where_it_came_from(tmp_path):
    from tracegen.importers.common import origin_kind

    rep = _app_report(tmp_path / "app.sqlite", frames=4)
    run = read_run(report_to_run(rep, tmp_path / "runs", domain="(default)", iteration_range="frame").run_dir)
    assert origin_kind(run.manifest) == "nsys"
    assert run.manifest["origin"]["files"][0]["role"] == "report" and run.manifest["origin"]["iteration_range"] == "frame"
