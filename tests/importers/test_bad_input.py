"""Bad input to `tracegen import ...`: one line naming the problem and the fix, exit status 2,
no traceback, and no run directory left behind."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.importers.logtext import times_records
from tests.test_cli import assert_one_line_error, tracegen
from tracegen.cli import main

DATA = Path(__file__).parent / "data" / "trtexec"
TIMES = DATA / "mobilenet.qat.onnx.engine.timing.json.gz"
PROFILE = DATA / "mobilenet.qat.onnx.engine.profile.json"
GRAPH = DATA / "mobilenet.qat.onnx.engine.graph.json"
OTHER_PROFILE = DATA / "mobilenet_v2_residuals.qat.onnx.engine.profile.json"


def run_cli(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code, capsys.readouterr().err


def check(capsys, tmp_path, args, *words):
    out = tmp_path / "runs"
    code, err = run_cli(capsys, "import", *args, "--out", out)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir()), "a failed import left files behind"


def _dump(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_json_that_is_not_trtexec_output(capsys, tmp_path):
    check(capsys, tmp_path, ["trtexec", _dump(tmp_path / "x.json", {"hello": 1})], "not trtexec --exportTimes output",
          "--exportTimes=FILE")
    check(capsys, tmp_path, ["trtexec", PROFILE], "looks like --exportProfile output", "--profile")
    check(capsys, tmp_path, ["trtexec", GRAPH], "looks like --exportLayerInfo output", "--graph")
    check(capsys, tmp_path, ["trtexec", _dump(tmp_path / "e.json", [])], "holds no inferences")


def test_truncated_files(capsys, tmp_path):
    text = gzip.decompress(TIMES.read_bytes())
    cut = tmp_path / "cut.json"
    cut.write_bytes(text[: len(text) // 2])
    check(capsys, tmp_path, ["trtexec", cut], "not valid JSON", "truncated")
    cutgz = tmp_path / "cut.json.gz"
    cutgz.write_bytes(TIMES.read_bytes()[:5000])
    check(capsys, tmp_path, ["trtexec", cutgz], "damaged or truncated gzip")
    prof = tmp_path / "p.json"
    prof.write_bytes(PROFILE.read_bytes()[:3000])
    check(capsys, tmp_path, ["trtexec", TIMES, "--profile", prof], "not valid JSON")
    # a profile cut at a record boundary still parses, but no longer adds up to 100 %
    doc = json.loads(PROFILE.read_text())
    check(capsys, tmp_path, ["trtexec", TIMES, "--profile", _dump(tmp_path / "half.json", doc[: len(doc) // 2])],
          "percentages add up to")


def test_profile_of_another_engine(capsys, tmp_path):
    check(capsys, tmp_path, ["trtexec", TIMES, "--profile", OTHER_PROFILE, "--graph", GRAPH],
          "belongs to another engine", "pass the profile exported with the engine")
    # without layer information: a profile whose layers add up to far more than the GPU time
    doc = json.loads(PROFILE.read_text())
    for layer in doc[1:]:
        layer["timeMs"] *= 20
        layer["averageMs"] *= 20
    check(capsys, tmp_path, ["trtexec", TIMES, "--profile", _dump(tmp_path / "big.json", doc)],
          "belongs to another engine or input shape")


def test_other_versions_and_edited_records(capsys, tmp_path):
    old = [{"startInMs": 1.0, "endInMs": 1.1, "startComputeMs": 1.1, "endComputeMs": 2.0, "startOutMs": 2.0,
            "endOutMs": 2.1, "inMs": 0.1, "computeMs": 0.9, "outMs": 0.1, "latencyMs": 1.1, "endToEndMs": 1.1}]
    check(capsys, tmp_path, ["trtexec", _dump(tmp_path / "trt7.json", old)], "TensorRT 7", "TensorRT 8 or newer")
    rec = times_records(10)
    del rec[3]["computeMs"]
    check(capsys, tmp_path, ["trtexec", _dump(tmp_path / "m.json", rec)], "inference 3 lacks computeMs")
    rec = times_records(10)
    rec[2]["computeMs"] = "fast"
    check(capsys, tmp_path, ["trtexec", _dump(tmp_path / "s.json", rec)], "non-numeric computeMs")
    rec = times_records(10)
    rec[4]["latencyMs"] *= 2
    check(capsys, tmp_path, ["trtexec", _dump(tmp_path / "l.json", rec)], "latencyMs != h2dMs + computeMs + d2hMs")
    check(capsys, tmp_path, ["trtexec", tmp_path / "missing.json"], "not found")


def test_log_that_is_not_a_trtexec_log(capsys, tmp_path):
    (tmp_path / "x.log").write_text("hello\nworld\n")
    check(capsys, tmp_path, ["trtexec", TIMES, "--log", tmp_path / "x.log"], "is not a trtexec log")


def test_subprocess_one_line_exit_2(tmp_path):
    """The real entry point, as a shell user runs it."""
    proc = tracegen("import", "trtexec", PROFILE, "--out", tmp_path / "runs", cwd=tmp_path)
    assert_one_line_error(proc, "looks like --exportProfile output")
    assert not (tmp_path / "runs").exists()
