"""The files of a run while it is recorded: the manifest, the variant rows with their progress,
the steps and telemetry parts, the heartbeat. Every write happens with stop signals held, so a
Ctrl-C never tears a file or loses the rows being written."""

from __future__ import annotations

import datetime as _dt
import secrets
from pathlib import Path
from typing import Any

import tracegen
from tracegen.backends.base import ModelSource
from tracegen.prepost.host import host_library
from tracegen.prepost.pipeline import describe, step_order
from tracegen.run.loop import Chunk
from tracegen.run.plan import RunPlan, Variant, variants_frame
from tracegen.run.signals import StopSignals
from tracegen.run.variant_pacing import arrivals_manifest
from tracegen.trace import schema as S
from tracegen.trace.liveness import Heartbeat, process_facts
from tracegen.trace.manifest import host_info, library_versions
from tracegen.trace.writer import RunWriter, create_run_dir


def new_run_id(model: ModelSource, backend: str) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    short = model.spec.split(":", 1)[1] if model.spec.startswith("builtin:") else Path(model.spec).stem
    short = "".join(c if c.isalnum() or c in "-_" else "-" for c in short)[:24]
    return f"{stamp}-{short}-{backend}-{secrets.token_hex(2)}"


def manifest_for(plan: RunPlan, run_id: str, command: list[str]) -> dict[str, Any]:
    c = plan.config
    gpu = plan.backend_cls.device_kind != "host"
    return {
        "schema_version": S.SCHEMA_VERSION,
        "tracegen_version": tracegen.__version__,
        "run_id": run_id,
        "command": command,
        "config": c.to_dict(),
        "host": host_info(),
        "gpu": None,
        "backend": {"name": plan.backend_name, "precision": c.precision},
        "libraries": library_versions(),
        "model": plan.model.manifest(),
        "pipeline": {
            "steps": step_order(plan.pre, plan.post, gpu),
            **describe(plan.pre_spec, plan.post_spec),
            "host_library": host_library() if plan.pre_spec == "host" else None,
            "not_applicable": {} if gpu else {
                "h2d": "CPU backend: the input already lives in host memory",
                "d2h": "CPU backend: the output is written to host memory",
                "sync": "CPU backend: inference returns when done, nothing to wait for",
            },
        },
        "clock": "host times are time.perf_counter_ns since run start; GPU times from CUDA events",
        "arrivals": arrivals_manifest(plan.variants),
        "variants_planned": len(plan.variants),
        "flush": {"every_iterations": c.flush_every, "every_seconds": c.flush_seconds},
        "process": process_facts(),
    }


class RunRecord:
    def __init__(self, writer: RunWriter, plan: RunPlan, signals: StopSignals, t0_ns: int,
                 progress: dict[int, tuple[int, str]] | None = None):
        self.writer = writer
        self.plan = plan
        self.signals = signals
        self.t0_ns = t0_ns  # perf_counter_ns of the run's time zero
        self.progress: dict[int, tuple[int, str]] = dict(progress or {})
        self.iterations = 0  # recorded by this process, warm-up included
        self.heartbeat = Heartbeat(writer.dir).start()

    @classmethod
    def create(cls, plan: RunPlan, run_id: str, command: list[str], signals: StopSignals, t0_ns: int) -> RunRecord:
        with signals.deferred():
            run_dir = create_run_dir(Path(plan.config.out) / run_id)
            writer = RunWriter(run_dir, manifest_for(plan, run_id, command))
            writer.write_variants(variants_frame(plan.variants))
        return cls(writer, plan, signals, t0_ns)

    @property
    def dir(self) -> Path:
        return self.writer.dir

    def update_manifest(self, **fields: Any) -> None:
        with self.signals.deferred():
            self.writer.update_manifest(**fields)

    def variant_status(self, v: Variant, done: int, status: str) -> None:
        self.progress[v.variant_id] = (done, status)
        if status != "running":
            self.iterations += done
        with self.signals.deferred():
            self.writer.write_variants(variants_frame(self.plan.variants, self.progress))

    def flush(self, chunk: Chunk, rows: int, v: Variant, telemetry_rows: list[dict]) -> None:
        with self.signals.deferred():
            if rows > 0:
                self.writer.append_steps(chunk.frame(rows, v.variant_id, v.warmup, self.t0_ns))
            self.writer.append_telemetry(telemetry_rows)

    def finish(self, status: str, error: str | None, telemetry_rows: list[dict]) -> None:
        """Final writes; a signal arriving now is held until they are done (the caller raises it)."""
        with self.signals.deferred(raise_pending=False):
            try:
                self.writer.append_telemetry(telemetry_rows)
                self.writer.write_variants(variants_frame(self.plan.variants, self.progress))
                self.writer.finish(status, error)
            finally:
                self.heartbeat.stop()
