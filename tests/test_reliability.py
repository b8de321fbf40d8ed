"""Issue 13 as a user meets it: option abuse, unwritable outputs, signals at every stage, SIGKILL,
resume, and analyze as a CI gate. Each test names the case of the README's reliability table."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from tracegen.trace import schema as S
from tracegen.trace.reader import read_run

from tests.test_cli import FAST, ROOT, assert_one_line_error, tracegen

SLOW_IDLE = ["--model", "builtin:tiny", "--backend", "onnxruntime", "--threads", "1", "--scenario", "idle",
             "--idle-ms", "0,5", "--pacing", "sleep", "--warmup", "2", "-q"]


def _spawn(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tracegen", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def _wait_for(predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _parts(run_dir: Path) -> int:
    d = run_dir / S.STEPS_PARTS
    return len(list(d.glob("part-*.parquet"))) if d.exists() else 0


# -- option abuse and plan size: one line, exit 2, nothing written --------------------------------
@pytest.mark.parametrize("args, words", [
    (["--batch-iterations", "99999999999999999999"], ["--batch-iterations must be at most 2147483647"]),
    (["--batch-sizes", "100000"], ["host memory", "batch 100000", "lower"]),
    (["--iterations", "1e9"], ["--iterations takes a whole number, got '1e9'"]),
    (["--scenario", "idle", "--iterations", "2000000000"], ["on disk", "free"]),
    (["--idle-ms", "nan"], ["--idle-ms must be between 0 and 3600000 ms"]),
])
def test_huge_or_bad_plans_are_refused_before_anything_is_written(tmp_path, args, words):
    assert_one_line_error(tracegen("run", "--out", "runs", *args, cwd=tmp_path), *words)
    assert not (tmp_path / "runs").exists()


def _unwritable(tmp_path) -> Path:
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        return locked / "out"
    probe = Path("/sys/tracegen-probe")  # read-only even for root
    if probe.exists() or os.access("/sys", os.W_OK) and not _mkdir_fails(probe):
        pytest.skip("no unwritable directory available to root here")
    return probe / "out"


def _mkdir_fails(path: Path) -> bool:
    try:
        path.mkdir()
    except OSError:
        return True
    path.rmdir()
    return False


@pytest.mark.parametrize("command", ["run", "report"])
def test_unwritable_out_is_one_line(tmp_path, small_run_copy, command):
    out = _unwritable(tmp_path)
    args = ["run", *FAST, "--out", out] if command == "run" else ["report", small_run_copy, "--out", out]
    assert_one_line_error(tracegen(*args, cwd=tmp_path), str(out.parent))
    assert not out.exists()


def test_control_characters_in_paths_are_escaped(tmp_path):
    proc = tracegen("report", "no\x1b[31msuch\ndir", cwd=tmp_path)
    assert_one_line_error(proc, "no\\x1b[31msuch\\x0adir does not exist")
    assert "\x1b" not in proc.stderr


# -- signals at every stage: exit 130 --------------------------------------------------------------
def test_sigterm_before_the_loop_starts_exits_130(tmp_path):
    proc = _spawn(["run", *SLOW_IDLE, "--iterations", "50", "--out", "runs", "--run-id", "early"], tmp_path)
    time.sleep(0.8)  # importing and planning, before any iteration
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    if (tmp_path / "runs/early").exists():  # the signal came after the directory: it says so
        assert read_run(tmp_path / "runs/early").status == "interrupted"


def test_sigterm_during_the_final_merge_exits_130_and_keeps_the_run_whole(tmp_path, monkeypatch):
    """The merge holds signals: the run ends complete on disk, the command with 130."""
    from tracegen.run import build_config, run_benchmark
    import tracegen.trace.writer as writer

    original = writer.merge_parts

    def merge_and_get_killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(writer, "merge_parts", merge_and_get_killed)
    config = build_config(flags=dict(model="builtin:tiny", backend="onnxruntime", scenarios="idle", idle_ms="0",
                                     iterations=5, warmup=1, threads=1, out=str(tmp_path), run_id="m"))
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(config, progress=False)
    run = read_run(tmp_path / "m")
    assert run.status == "complete" and run.steps["iteration"].n_unique() == 6


# -- SIGKILL: bounded loss, no variant left `running`, resume -------------------------------------
def test_sigkill_loses_at_most_flush_seconds_and_resume_completes_the_run(tmp_path):
    proc = _spawn(["run", *SLOW_IDLE, "--iterations", "100000", "--flush-every", "100000", "--flush-seconds", "0.3",
                   "--out", "runs", "--run-id", "k"], tmp_path)
    run_dir = tmp_path / "runs/k"
    assert _wait_for(lambda: _parts(run_dir) >= 3), proc.stderr.read() if proc.poll() is not None else "no parts"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = time.time()
    run = read_run(run_dir)
    assert run.status == "interrupted" and "ended without finishing" in run.manifest["error"]
    assert "running" not in run.variants["status"].to_list()
    # The last flushed step ended at most --flush-seconds (plus one iteration and the write) before the kill.
    parts = sorted((run_dir / S.STEPS_PARTS).glob("part-*.parquet"))
    assert killed_at - parts[-1].stat().st_mtime < 0.3 + 1.0
    kept = run.steps["iteration"].n_unique()
    assert kept >= 30  # flushed by time, although --flush-every is 100000

    # Resume: same settings, a shorter variant would be a new run, so shorten nothing: stop it again
    # after it has started, then check that the manifest says it resumed from variant 0.
    again = _spawn(["run", "--resume", "runs/k", "-q"], tmp_path)
    assert _wait_for(lambda: "resumed" in json.loads((run_dir / S.MANIFEST).read_text())
                     and json.loads((run_dir / S.MANIFEST).read_text())["status"] == "running")
    again.send_signal(signal.SIGINT)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 130, err
    manifest = json.loads((run_dir / S.MANIFEST).read_text())
    assert manifest["resumed"][0]["from_variant"] == 0
    assert manifest["resumed"][0]["previous_status"] == "interrupted"


def test_resume_continues_from_the_first_incomplete_variant(tmp_path):
    from tracegen.run import build_config, run_benchmark

    config = build_config(flags=dict(model="builtin:tiny", backend="onnxruntime", scenarios="idle", idle_ms="0,1,2",
                                     pacing="spin", iterations=6, warmup=1, threads=1, out=str(tmp_path), run_id="r"))
    done = run_benchmark(config, progress=False)
    assert done.status == "complete"
    run_dir = done.run_dir
    # Make it look killed during variant 1: its rows half there, it and variant 2 not complete.
    steps = pl.read_parquet(run_dir / S.STEPS)
    first = steps.filter(pl.col("variant_id") == 0)
    partial = steps.filter((pl.col("variant_id") == 1) & (pl.col("iteration") < 3))
    (run_dir / S.STEPS).unlink()
    (run_dir / S.STEPS_PARTS).mkdir()
    pl.concat([first, partial]).write_parquet(run_dir / S.STEPS_PARTS / "part-000001.parquet")
    variants = pl.read_parquet(run_dir / S.VARIANTS).with_columns(
        pl.when(pl.col("variant_id") == 0).then(pl.lit("complete")).when(pl.col("variant_id") == 1)
        .then(pl.lit("running")).otherwise(pl.lit("planned")).alias("status"))
    variants.write_parquet(run_dir / S.VARIANTS)
    manifest = json.loads((run_dir / S.MANIFEST).read_text())
    manifest.update(status="running", process={**manifest["process"], "pid": 2**22 + 7})
    (run_dir / S.MANIFEST).write_text(json.dumps(manifest))
    before = first.filter(pl.col("step") == "infer")["host_ns"].to_list()

    result = run_benchmark(None, resume=run_dir, command=["tracegen", "run", "--resume", str(run_dir)], progress=False)
    assert result.status == "complete" and result.variants_done == 2
    run = read_run(run_dir)
    assert run.variants["status"].to_list() == ["complete"] * 3
    per = run.steps.group_by("variant_id").agg(pl.col("iteration").n_unique().alias("n")).sort("variant_id")
    assert per["n"].to_list() == [7, 7, 7]  # variant 1 measured again from its first iteration
    assert run.steps.filter((pl.col("variant_id") == 0) & (pl.col("step") == "infer"))["host_ns"].to_list() == before
    resumed = run.manifest["resumed"]
    assert resumed[0]["from_variant"] == 1 and resumed[0]["kept_iterations"] == 7
    # One clock: the resumed variants start after everything kept.
    kept_end = first.select((pl.col("host_start_ns") + pl.col("host_ns")).max()).item()
    assert run.steps.filter(pl.col("variant_id") > 0)["host_start_ns"].min() > kept_end


def test_resume_refuses_a_complete_run_and_other_options(tmp_path, small_run_copy):
    assert_one_line_error(tracegen("run", "--resume", small_run_copy, cwd=tmp_path), "already complete")
    assert_one_line_error(tracegen("run", "--resume", small_run_copy, "--iterations", "5", cwd=tmp_path),
                          "leave out --iterations")


# -- analyze as a CI gate ---------------------------------------------------------------------------
def test_analyze_exit_codes_and_run_status(tmp_path, small_run_copy):
    ok = tracegen("analyze", small_run_copy, "--json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["run"]["status"] == "complete"
    assert_one_line_error(tracegen("analyze", small_run_copy, "--budget-ms", "nan", cwd=tmp_path), "--budget-ms")
    assert_one_line_error(tracegen("analyze", small_run_copy, "--budget-ms", "-5", cwd=tmp_path), "--budget-ms")
    # An interrupted run: flagged in the JSON, and not a pass for --fail-on.
    manifest = json.loads((small_run_copy / S.MANIFEST).read_text())
    manifest.update(status="interrupted", error="stopped by Ctrl-C or SIGTERM; completed iterations were kept")
    (small_run_copy / S.MANIFEST).write_text(json.dumps(manifest))
    flagged = json.loads(tracegen("analyze", small_run_copy, "--json", cwd=tmp_path).stdout)["run"]
    assert flagged["status"] == "interrupted" and flagged["complete"] is False
    gate = tracegen("analyze", small_run_copy, "--fail-on", "critical", cwd=tmp_path)
    assert gate.returncode in (1, 2) and (gate.returncode == 1 or "is interrupted" in gate.stderr)


def test_analyze_with_zero_measured_iterations_is_exit_2(tmp_path, small_run_copy):
    steps = pl.read_parquet(small_run_copy / S.STEPS).filter(pl.col("warmup"))
    steps.write_parquet(small_run_copy / S.STEPS)
    assert_one_line_error(tracegen("analyze", small_run_copy, "--fail-on", "info", cwd=tmp_path),
                          "no measured iterations")


def test_analyze_internal_error_is_exit_2_not_1(small_run_copy, monkeypatch, capsys):
    import tracegen.analysis.findings as findings
    from tracegen.cli import main

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(findings, "analyze", broken)
    monkeypatch.delenv("TRACEGEN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", str(small_run_copy), "--fail-on", "info"])
    assert exit_.value.code == 2
    assert "internal error: RuntimeError: boom" in capsys.readouterr().err


def test_the_readme_reliability_table_names_real_tests():
    import re

    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Reliability"):text.index("## On a GPU")]
    current, named = None, 0
    for ref in re.findall(r"`(tests/[^`]+|::[^`]+)`", table):
        if ref.startswith("tests/"):
            current, _, name = ref.partition("::")
        else:
            name = ref[2:]
        source = (ROOT / current).read_text()
        assert not name or f"def {name}" in source, f"{current}::{name}"
        named += bool(name)
    assert named >= 25
