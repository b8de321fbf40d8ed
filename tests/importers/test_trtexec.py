"""trtexec imports: real exports from NVIDIA's trt-engine-explorer (data/trtexec/README.md) and
logs laid out as trtexec prints them. The imported numbers must be the files' numbers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tracegen.analysis.stats import iterations, latency_basis, variant_stats
from tracegen.errors import ConfigError, TraceError
from tracegen.importers.layers import read_layers
from tracegen.importers.trtexec import TrtexecOptions, import_trtexec
from tracegen.trace.reader import read_run
from tests.importers.logtext import times_records, trtexec_log

DATA = Path(__file__).parent / "data" / "trtexec"
ENGINES = ("mobilenet", "mobilenet_v2_residuals")


def real(engine: str, kind: str) -> Path:
    suffix = ".json.gz" if kind == "timing" else ".json"
    return DATA / f"{engine}.qat.onnx.engine.{kind}{suffix}"


def load_times(engine: str) -> list[dict]:
    return json.loads(gzip.decompress(real(engine, "timing").read_bytes()))


def write_json(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """Each real engine imported with its profile, layer information and metadata."""
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for e in ENGINES:
        result = import_trtexec([real(e, "timing")], profiles=[real(e, "profile")], graphs=[real(e, "graph")],
                                metadata=[real(e, "profile.metadata"), real(e, "build.metadata")], out=out,
                                run_id=e, command=["tracegen", "import", "trtexec", "(test)"])
        runs[e] = read_run(result.run_dir)
    return runs


@pytest.mark.parametrize("engine", ENGINES)
def test_per_inference_numbers_are_the_files(real_runs, engine):
    run, records = real_runs[engine], load_times(engine)
    steps = run.steps
    infer = steps.filter(pl.col("step") == "infer").sort("iteration")
    assert infer.height == len(records)
    enq = np.array([round(r["endEnqMs"] * 1e6) - round(r["startEnqMs"] * 1e6) for r in records])
    np.testing.assert_array_equal(infer["host_ns"].to_numpy(), enq)
    np.testing.assert_allclose(infer["gpu_ns"].to_numpy() / 1e6, [r["computeMs"] for r in records], atol=1e-6)
    it = iterations(steps, latency_basis(run.manifest)).sort("iteration")
    np.testing.assert_allclose(it["latency_ns"].to_numpy() / 1e6, [r["latencyMs"] for r in records], rtol=1e-5, atol=2e-6)
    # --noDataTransfers in these files: no copies, and the manifest says so
    assert set(steps["step"].cast(str).unique()) == {"idle", "infer"}
    assert run.manifest["pipeline"]["not_applicable"]["h2d"].startswith("--noDataTransfers")
    # the idle gap is the GPU's: next start minus previous end
    idle = steps.filter(pl.col("step") == "idle").sort("iteration")
    gaps = [max(0.0, records[i]["startH2dMs"] - records[i - 1]["endD2hMs"]) for i in range(1, len(records))]
    np.testing.assert_allclose(idle["host_ns"].to_numpy() / 1e6, gaps, atol=2e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_parameters_engine_and_layers_reach_the_run(real_runs, engine):
    run = real_runs[engine]
    v = run.variants.row(0, named=True)
    meta = json.loads(real(engine, "profile.metadata").read_text())["inference_options"]
    assert (v["launch"] == "graph") == (meta["CUDA Graph"] == "Enabled")
    assert (v["sync_mode"] == "spin") == (meta["Spin-wait"] == "Enabled")
    assert v["pipeline"] == "infer" and v["batch"] == 1 and v["idle_ms"] == 0 and v["warmup"] == 0
    m = run.manifest
    assert m["origin"]["kind"] == "trtexec" and m["latency"]["basis"] == "gpu"
    assert m["gpu"]["name"] == "NVIDIA TITAN RTX" and m["backend"]["precision"] == "fp32+fp16+int8"
    graph = json.loads(real(engine, "graph").read_text())
    assert m["engine"]["layers"] == len(graph["Layers"])
    layers = read_layers(run.path, m)
    profile = json.loads(real(engine, "profile").read_text())
    assert layers.height == len(profile) - 1 and layers["profiled"][0] == profile[0]["count"]
    np.testing.assert_allclose(layers["total_ns"].to_numpy() / 1e6, [p["timeMs"] for p in profile[1:]], atol=1e-6)
    np.testing.assert_allclose(layers["share"].to_numpy() * 100, [p["percentage"] for p in profile[1:]], atol=1e-3)
    assert layers["layer_type"].null_count() == 0
    assert {f["role"] for f in m["origin"]["files"]} == {"times", "profile", "layer information", "metadata"}


def test_page_statistics_match_the_json(real_runs, tmp_path):
    from tracegen.report.site import build_site

    runs = list(real_runs.values())
    build_site([r.path for r in runs], tmp_path / "site")
    for engine, run in real_runs.items():
        records = load_times(engine)
        page = tmp_path / "site" / "runs" / run.id
        stats = json.loads((page / "stats.json").read_text())["variants"][0]
        lat = np.array([r["latencyMs"] for r in records])
        for key, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99)):
            assert stats[key] == pytest.approx(np.quantile(lat, q), rel=1e-5)
        assert stats["mean_ms"] == pytest.approx(lat.mean(), rel=1e-5)
        assert stats["infer_gpu_p50_ms"] == pytest.approx(np.median([r["computeMs"] for r in records]), rel=1e-6)
        enq = np.median([round(r["endEnqMs"] * 1e6) - round(r["startEnqMs"] * 1e6) for r in records]) / 1e6
        assert stats["infer_host_p50_ms"] == pytest.approx(enq, abs=1e-9)
        html = (page / "index.html").read_text()
        assert 'data-origin="trtexec"' in html and 'id="layers"' in html
        profile = json.loads(real(engine, "profile").read_text())[1:]
        slowest = max(profile, key=lambda p: p["timeMs"])["name"]
        assert slowest.replace("+", "").split()[0] in html  # the slowest layer is in the table (escaped text)


def test_two_files_two_variants_each_with_its_profile(tmp_path):
    times = [real(e, "timing") for e in ENGINES]
    result = import_trtexec(times, profiles=[real(e, "profile") for e in ENGINES],
                            graphs=[real(e, "graph") for e in ENGINES], out=tmp_path, run_id="two")
    run = read_run(result.run_dir)
    assert run.variants.height == 2 and run.variants["name"].n_unique() == 2
    counts = run.steps.filter(pl.col("step") == "infer").group_by("variant_id").len().sort("variant_id")["len"].to_list()
    assert counts == [len(load_times(e)) for e in ENGINES]
    layers = read_layers(run.path, run.manifest)
    assert sorted(layers["variant_id"].unique().to_list()) == [0, 1]
    # the second file's timeline follows the first
    ends = run.steps.group_by("variant_id").agg(pl.col("host_start_ns").min().alias("a"), pl.col("host_start_ns").max().alias("b")).sort("variant_id")
    assert ends["a"][1] >= ends["b"][0]


# -- logs -------------------------------------------------------------------------------------------

def test_log_sets_parameters_version_gpu_and_shapes(tmp_path):
    records = times_records(80, idle_ms=20)
    t = write_json(tmp_path / "idle20.json", records)
    log = tmp_path / "idle20.log"
    log.write_text(trtexec_log(records, idle_ms=20, cuda_graph=True, spin=False, shape="images=4x3x640x640"))
    run = read_run(import_trtexec([t], logs=[log], out=tmp_path / "runs", run_id="r").run_dir)
    v = run.variants.row(0, named=True)
    assert (v["idle_ms"], v["pacing"], v["launch"], v["sync_mode"], v["batch"], v["pipeline"]) == (20.0, "sleep", "graph", "blocking", 4, "full")
    m = run.manifest
    assert m["backend"]["versions"] == {"tensorrt": "10.8.0"} and m["backend"]["precision"] == "fp32+fp16"
    assert m["gpu"]["name"] == "NVIDIA H200" and m["gpu"]["app_sm_clock_mhz"] == 1980
    assert m["origin"]["variants"][0]["parameters"]["idle_ms"]["from"] == "log"
    assert m["origin"]["variants"][0]["trtexec_command"].startswith("trtexec --loadEngine=model.plan")
    assert set(run.steps["step"].cast(str).unique()) == {"idle", "h2d", "infer", "d2h"}
    idle = run.steps.filter(pl.col("step") == "idle")["host_ns"] / 1e6
    assert idle.median() == pytest.approx(20.01 + 0.004, abs=1e-3)  # idleTime + the host's 10 us + the enqueue lead
    h2d = run.steps.filter(pl.col("step") == "h2d")
    assert (h2d["gpu_ns"] == 62500).all()


def test_several_calls_pair_their_logs_by_name(tmp_path):
    files, logs = [], []
    for gap in (0, 5, 20):
        rec = times_records(40, idle_ms=gap)
        files.append(write_json(tmp_path / f"run_idle{gap}.times.json", rec))
        (tmp_path / f"run_idle{gap}.log").write_text(trtexec_log(rec, idle_ms=gap))
        logs.append(tmp_path / f"run_idle{gap}.log")
    run = read_run(import_trtexec(files, logs=list(reversed(logs)), out=tmp_path / "runs", run_id="r").run_dir)
    assert run.variants["idle_ms"].to_list() == [0.0, 5.0, 20.0]
    assert run.variants["pacing"].to_list() == ["none", "sleep", "sleep"]


def test_option_contradicting_the_log_is_an_error(tmp_path):
    rec = times_records(20)
    t = write_json(tmp_path / "t.json", rec)
    (tmp_path / "t.log").write_text(trtexec_log(rec, idle_ms=0))
    with pytest.raises(ConfigError, match="--idle-ms 20.0 contradicts the log"):
        import_trtexec([t], logs=[tmp_path / "t.log"], options=TrtexecOptions(idle_ms=20.0), out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_log_of_another_call_is_an_error(tmp_path):
    t = write_json(tmp_path / "t.json", times_records(20))
    (tmp_path / "t.log").write_text(trtexec_log(times_records(20, compute_ms=3.0)))
    with pytest.raises(TraceError, match="the log comes from another trtexec call"):
        import_trtexec([t], logs=[tmp_path / "t.log"], out=tmp_path / "runs")


def test_options_fill_in_without_log(tmp_path):
    t = write_json(tmp_path / "t.json", times_records(30, idle_ms=10, copies=False))
    opts = TrtexecOptions(idle_ms=10, cuda_graph=True, spin_wait=True, batch=8, precision="fp16", gpu="NVIDIA T4")
    run = read_run(import_trtexec([t], options=opts, out=tmp_path / "runs", run_id="r").run_dir)
    v = run.variants.row(0, named=True)
    assert (v["idle_ms"], v["launch"], v["sync_mode"], v["batch"], v["pipeline"]) == (10.0, "graph", "spin", 8, "infer")
    assert run.manifest["gpu"]["name"] == "NVIDIA T4"


def test_version_from_banner_of_tensorrt_8():
    from tracegen.importers.trtexec_log import _version_from_banner

    assert _version_from_banner("8601") == "8.6.1" and _version_from_banner("100800") == "10.8.0"


def test_profile_layers_in_the_log_check_the_profile(tmp_path):
    rec = times_records(20, compute_ms=0.4)
    t = write_json(tmp_path / "t.json", rec)
    (tmp_path / "t.log").write_text(trtexec_log(rec, profile_layers=["conv1", "relu1", "fc"]))
    with pytest.raises(TraceError, match="belongs to another engine"):
        import_trtexec([t], logs=[tmp_path / "t.log"], profiles=[real("mobilenet", "profile")], out=tmp_path / "runs")


def test_metadata_contradicted_by_an_option_warns_and_the_option_wins(tmp_path):
    result = import_trtexec([real("mobilenet", "timing")], metadata=[real("mobilenet", "profile.metadata")],
                            options=TrtexecOptions(cuda_graph=False), out=tmp_path, run_id="w")
    assert any("contradicts the metadata" in w for w in result.warnings)
    run = read_run(result.run_dir)
    assert run.variants["launch"][0] == "eager"
    assert run.manifest["origin"]["variants"][0]["parameters"]["cuda_graph"] == {"value": False, "from": "option"}


def test_side_files_that_fit_no_timing_file_are_an_error(tmp_path):
    from tracegen.importers.trtexec import assign

    times = [Path("a.json"), Path("b.json"), Path("c.json")]
    assert assign([Path("b.log")], times, "log") == [[], [Path("b.log")], []]
    assert assign([Path("x.log")], times, "log") == [[Path("x.log")]] * 3  # one for all
    assert assign([Path("x1"), Path("x2"), Path("x3")], times, "log") == [[Path("x1")], [Path("x2")], [Path("x3")]]
    with pytest.raises(ConfigError, match="cannot tell which timing file"):
        assign([Path("x.log"), Path("y.log")], times, "log")


def test_siblings_are_found_by_name(tmp_path, capsys):
    from tracegen.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["import", "trtexec", *map(str, (real(e, "timing") for e in ENGINES)), "--siblings",
              "--out", str(tmp_path), "--run-id", "sib"])
    assert exc.value.code == 0, capsys.readouterr().err
    run = read_run(tmp_path / "sib")
    roles = {(f["variant_id"], f["role"]) for f in run.manifest["origin"]["files"]}
    assert roles == {(v, r) for v in (0, 1) for r in ("times", "profile", "layer information", "metadata")}
    assert sorted(read_layers(run.path, run.manifest)["variant_id"].unique().to_list()) == [0, 1]
