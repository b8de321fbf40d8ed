"""``tracegen run --resume RUN_DIR``: continue an interrupted or killed run.

The run's own resolved settings (from its manifest) are planned again and must give the same
variants with the same model. Variants that completed keep their rows; the first incomplete one
and every later one run again from their first iteration (a partly measured variant is dropped,
so each variant's iterations come from one uninterrupted loop). The manifest's ``resumed`` list
says when, from which variant, and with which command. Host times continue after the last
recorded one, so the run keeps one clock.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import polars as pl

from tracegen.errors import ConfigError
from tracegen.run.config import build_config
from tracegen.run.plan import RunPlan, make_plan, variants_frame
from tracegen.run.record import RunRecord
from tracegen.run.signals import StopSignals
from tracegen.trace import schema as S
from tracegen.trace.atomic import write_parquet
from tracegen.trace.liveness import process_facts, writer_alive
from tracegen.trace.reader import read_manifest, read_run
from tracegen.trace.writer import RunWriter, utc_now

GAP_NS = 1_000_000_000  # between the last recorded time and the resumed part, on the run's clock


def resume_plan(run_dir: Path, command: list[str], signals: StopSignals) -> tuple[RunPlan, Callable, set[int]]:
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if manifest.get("status") == "running" and writer_alive(run_dir, manifest):
        proc = manifest.get("process", {})
        raise ConfigError(f"run {run_dir} is still running (pid {proc.get('pid')} on {proc.get('hostname')})",
                          "wait for it to end, or stop it first")
    run = read_run(run_dir)
    if run.status == "complete":
        raise ConfigError(f"run {run_dir} is already complete; there is nothing to resume",
                          "start a new run with `tracegen run`")
    settings = {**manifest.get("config", {}), "out": str(run_dir.parent), "run_id": run_dir.name, "nsys": False,
                "backend": (manifest.get("backend") or {}).get("name") or manifest.get("config", {}).get("backend")}
    try:
        config = build_config(flags=settings)
    except ConfigError as exc:
        raise ConfigError(f"the settings in {run_dir / S.MANIFEST} are not valid here ({exc.problem})",
                          "start a new run with `tracegen run`") from None
    plan = make_plan(config)
    _check_same(plan, run, run_dir)
    rows = run.variants.sort("variant_id")
    completed = set(rows.filter(pl.col("status") == "complete")["variant_id"].to_list())
    if len(completed) == len(plan.variants):
        raise ConfigError(f"every variant of {run_dir} is complete; there is nothing to resume",
                          "start a new run with `tracegen run`")
    first = min(v.variant_id for v in plan.variants if v.variant_id not in completed)
    progress = {vid: (int(n), "complete") for vid, n, st in rows.select("variant_id", "completed", "status").iter_rows()
                if st == "complete"}

    def opener(t0_ns: int) -> RunRecord:
        with signals.deferred():
            kept, end_ns = _keep_completed(run, completed)
            entry = {"utc": utc_now(), "from_variant": first, "kept_iterations": kept,
                     "previous_status": run.status, "previous_error": run.manifest.get("error"), "command": command}
            manifest.update(status="running", error=None, ended_utc=None, process=process_facts(),
                            resumed=[*manifest.get("resumed", []), entry])
            writer = RunWriter(run_dir, manifest, reopen=True)
            writer.write_manifest()
        record = RunRecord(writer, plan, signals, t0_ns - end_ns - GAP_NS, progress)
        with signals.deferred():
            writer.write_variants(variants_frame(plan.variants, progress))
        return record

    return plan, opener, completed


def _check_same(plan: RunPlan, run, run_dir: Path) -> None:
    recorded = run.variants.sort("variant_id")["name"].to_list()
    planned = [v.name for v in plan.variants]
    if recorded != planned:
        raise ConfigError(f"the settings of {run_dir} no longer give the variants it recorded",
                          "start a new run with `tracegen run`")
    sha = (run.manifest.get("model") or {}).get("sha256")
    if sha and sha != plan.model.sha256:
        raise ConfigError(f"the model {plan.model.spec} changed since {run_dir} was recorded (sha256 differs)",
                          "resume with the original model file, or start a new run")


def _keep_completed(run, completed: set[int]) -> tuple[int, int]:
    """Rewrite the steps and telemetry as one part each holding only what stays (rows of completed
    variants; telemetry sampled outside an incomplete one), swapped in with renames. Returns the
    iterations kept and the last recorded time on the run's clock."""
    steps = run.steps.filter(pl.col("variant_id").is_in(list(completed)))
    dropped = run.steps.filter(~pl.col("variant_id").is_in(list(completed)))["variant_id"].unique().to_list()
    telemetry = run.telemetry.filter(~pl.col("variant_id").is_in(dropped) | pl.col("variant_id").is_null())
    end = 0
    if run.steps.height:
        end = int(run.steps.select((pl.col("host_start_ns") + pl.col("host_ns")).max()).item())
    if run.telemetry.height:
        end = max(end, int(run.telemetry["t_ns"].max()))
    _swap_parts(run.path, S.STEPS_PARTS, S.STEPS, steps)
    _swap_parts(run.path, S.TELEMETRY_PARTS, S.TELEMETRY, telemetry)
    kept = int(steps.select("variant_id", "iteration").n_unique()) if steps.height else 0
    return kept, end


def _swap_parts(run_dir: Path, parts: str, merged: str, df: pl.DataFrame) -> None:
    fresh = run_dir / f".{parts}.resume"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    if df.height:
        write_parquet(fresh / "part-000001.parquet", df)
    old = run_dir / parts
    aside = run_dir / f".{parts}.old"
    shutil.rmtree(aside, ignore_errors=True)
    if old.exists():
        os.replace(old, aside)
    os.replace(fresh, old)
    if (run_dir / merged).exists():
        os.unlink(run_dir / merged)
    shutil.rmtree(aside, ignore_errors=True)
