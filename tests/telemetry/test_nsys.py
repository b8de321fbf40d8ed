"""``--nsys``: the command line, the missing-nsys error, and a re-run under a stand-in nsys."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from tracegen.run import build_config
from tracegen.errors import TracegenError
from tracegen.telemetry import nsys

ROOT = Path(__file__).resolve().parents[2]
RUN_ARGS = ["--model", "builtin:tiny", "--backend", "onnxruntime", "--scenario", "idle", "--idle-ms", "0",
            "--pacing", "sleep", "--iterations", "3", "--warmup", "1", "--threads", "1", "-q"]


def test_command_traces_cuda_nvtx_and_os_runtime_and_never_overwrites(tmp_path):
    cmd = nsys.nsys_command("/opt/nsys", tmp_path / "base", ["run", "--model", "builtin:tiny"])
    assert cmd[:9] == ["/opt/nsys", "profile", "-t", "cuda,nvtx,osrt", "--cuda-graph-trace=node", "--force-overwrite",
                       "false", "-o", str(tmp_path / "base")]
    assert cmd[9:] == [sys.executable, "-m", "tracegen", "run", "--model", "builtin:tiny"]


def test_child_arguments_drop_nsys_and_pin_the_run_id():
    assert nsys.child_arguments(["--model", "x", "--nsys"], "r1") == ["--model", "x", "--run-id", "r1"]
    assert nsys.child_arguments(["--run-id=mine", "--nsys"], "r1") == ["--run-id=mine"]


def test_missing_nsys_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not nsys.nsys_available()
    config = build_config(flags=dict(model="builtin:tiny", backend="onnxruntime", out=str(tmp_path / "runs"), nsys=True))
    with pytest.raises(TracegenError, match="`nsys` is not on PATH.*install Nsight Systems"):
        nsys.run_under_nsys(config, ["tracegen", "run", "--nsys"])
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_rerun_under_a_stand_in_nsys_keeps_the_report_in_the_run(monkeypatch, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "nsys"
    # Skips "profile -t X --cuda-graph-trace=node --force-overwrite false -o BASE", runs the rest, writes BASE.nsys-rep.
    fake.write_text('#!/bin/sh\nshift 7\nbase="$1"; shift\n"$@"; rc=$?\necho fake > "$base.nsys-rep"\nexit $rc\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "runs"
    config = build_config(flags=dict(model="builtin:tiny", backend="onnxruntime", scenarios="idle", idle_ms="0",
                                     pacing="sleep", iterations=3, warmup=1, threads=1, out=str(out), run_id="prof",
                                     nsys=True))
    result = nsys.run_under_nsys(config, ["tracegen", "run", *RUN_ARGS, "--out", str(out), "--run-id", "prof", "--nsys"])
    assert result.status == "complete" and result.run_dir == out / "prof"
    assert (out / "prof" / nsys.REPORT_NAME).read_text() == "fake\n"
    manifest = json.loads((out / "prof" / "manifest.json").read_text())
    assert manifest["nsys"]["report"] == nsys.REPORT_NAME and manifest["nsys"]["exit_status"] == 0
    assert "--nsys" not in manifest["nsys"]["command"]
    assert not list(out.glob(".*.nsys*"))
