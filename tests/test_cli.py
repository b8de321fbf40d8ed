"""The CLI as a user meets it: one-line errors with exit status 2, no traceback, runs kept safe."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracegen.trace import schema as S
from tracegen.trace.reader import read_run

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "builtin:tiny", "--backend", "onnxruntime", "--threads", "1", "--batch-sizes", "1,2",
        "--idle-ms", "0,2", "--pacing", "spin", "--iterations", "6", "--batch-iterations", "3", "--warmup", "1", "-q"]


def tracegen(*args, cwd=None, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TRACEGEN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "tracegen", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def assert_one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "--model", "missing.onnx"], ["missing.onnx not found"]),
        (["run", "--model", "builtin:huge"], ["unknown built-in model 'huge'", "builtin:tiny"]),
        (["run", "--batch-sizes", "0"], ["--batch-sizes must be at least 1"]),
        (["run", "--batch-sizes", "-2"], ["--batch-sizes must be at least 1"]),
        (["run", "--scenario", "stress"], ["unknown --scenario 'stress'"]),
        (["run", "--pacing", "nap"], ["unknown --pacing 'nap'"]),
        (["run", "--frobnicate"], ["No such option", "--help"]),
        (["run", "--config", "nope.toml"], ["config file nope.toml not found"]),
        (["report", "no-such-dir"], ["no-such-dir does not exist"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, words):
    assert_one_line_error(tracegen(*args, cwd=tmp_path), *words)


def test_not_onnx_file(tmp_path):
    (tmp_path / "m.onnx").write_text("hello")
    assert_one_line_error(tracegen("run", "--model", "m.onnx", cwd=tmp_path), "not an ONNX model")


def test_output_path_is_a_file(tmp_path):
    (tmp_path / "out").write_text("precious")
    assert_one_line_error(tracegen("run", *FAST, "--out", "out", cwd=tmp_path), "is a file")
    assert (tmp_path / "out").read_text() == "precious"


def test_existing_run_is_not_touched(tmp_path):
    first = tracegen("run", *FAST, "--out", "runs", "--run-id", "keep", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    manifest = (tmp_path / "runs/keep" / S.MANIFEST).read_bytes()
    steps = (tmp_path / "runs/keep" / S.STEPS).read_bytes()
    again = tracegen("run", *FAST, "--out", "runs", "--run-id", "keep", cwd=tmp_path)
    assert_one_line_error(again, "already exists")
    assert (tmp_path / "runs/keep" / S.MANIFEST).read_bytes() == manifest
    assert (tmp_path / "runs/keep" / S.STEPS).read_bytes() == steps


def test_corrupt_run_in_report(tmp_path):
    ok = tracegen("run", *FAST, "--out", "runs", "--run-id", "r", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    data = (tmp_path / "runs/r" / S.STEPS).read_bytes()
    (tmp_path / "runs/r" / S.STEPS).write_bytes(data[:100])
    assert_one_line_error(tracegen("report", "runs/r", cwd=tmp_path), "unreadable or truncated")


def test_newer_schema_in_report(tmp_path):
    ok = tracegen("run", *FAST, "--out", "runs", "--run-id", "r", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    path = tmp_path / "runs/r" / S.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = 99
    path.write_text(json.dumps(manifest))
    assert_one_line_error(tracegen("report", "runs/r", cwd=tmp_path), "schema 99", "upgrade tracegen")


def test_sigint_mid_variant_keeps_completed_iterations(tmp_path):
    """Ctrl-C in the middle of a long variant: flushed and in-memory iterations survive, the
    manifest says interrupted, and the report still builds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "tracegen", "run", "--model", "builtin:tiny", "--backend", "onnxruntime",
            "--threads", "1", "--scenario", "idle", "--idle-ms", "5", "--pacing", "sleep", "--iterations", "100000",
            "--warmup", "2", "--flush-every", "10", "--out", "runs", "--run-id", "cut", "-q"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "runs/cut" / S.STEPS_PARTS
    deadline = time.time() + 60
    def flushed_parts():
        return len(list(parts.glob("part-*.parquet"))) if parts.exists() else 0

    while time.time() < deadline and flushed_parts() < 3:
        time.sleep(0.05)
    time.sleep(0.13)  # land mid-variant, between flushes
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    run = read_run(tmp_path / "runs/cut")
    assert run.status == "interrupted"
    n = run.steps["iteration"].n_unique()
    assert n >= 30
    # Every recorded iteration is whole: each has all four CPU steps.
    per_iter = run.steps.group_by("iteration").len()
    assert per_iter["len"].unique().to_list() == [4]
    assert run.variants["status"].to_list() == ["interrupted"]
    assert run.variants["completed"].to_list() == [n]
    site = tracegen("report", "runs/cut", "--out", "site", cwd=tmp_path)
    assert site.returncode == 0, site.stderr
    page = (tmp_path / "site/runs/cut/index.html").read_text()
    assert "interrupted" in page.lower()


@pytest.mark.parametrize("backend, words", [("tensorrt", "tensorrt is not installed"), ("torch", "not installed")])
def test_gpu_backend_without_its_libraries(tmp_path, backend, words):
    from tracegen.optional import available

    if available("torch") and backend == "torch":
        pytest.skip("torch is installed here")
    proc = tracegen("run", "--backend", backend, "--out", "runs", cwd=tmp_path)
    assert_one_line_error(proc, words, "pip install")
    assert not (tmp_path / "runs").exists()


def _tree_digest(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("out", [".", "runs/..", "runs/r", "runs/r/site"])
def test_report_never_touches_runs_whatever_the_out(tmp_path, out):
    """`report -o .` beside runs/ once replaced every run with its page: now a one-line refusal,
    and every byte of the run stays as it was."""
    ok = tracegen("run", *FAST, "--out", "runs", "--run-id", "r", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    before = _tree_digest(tmp_path / "runs")
    assert_one_line_error(tracegen("report", "--out", out, cwd=tmp_path), "--out")
    assert _tree_digest(tmp_path / "runs") == before
    assert read_run(tmp_path / "runs/r").manifest["run_id"] == "r"
    assert not (tmp_path / "index.html").exists()
