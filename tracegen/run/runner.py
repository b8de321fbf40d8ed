"""A run in stages: plan and validate (``plan``) -> open the device and backend of each sync mode
(``session``) -> the timed loop of each variant (``loop``) -> files and progress (``record``,
``progress``). This module only orders them and turns the way a run ends into its status.

Everything that can fail on bad input happens in the plan, before anything is written; the run
directory appears once the first backend is up, so a backend that cannot run here leaves nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tracegen.backends.base import Backend, Device
from tracegen.errors import TracegenError
from tracegen.run.config import RunConfig
from tracegen.models.feed import feeder_for, frames_for
from tracegen.run.loop import TimedLoop
from tracegen.run.plan import RunPlan, Variant, make_plan
from tracegen.run.progress import ProgressBar
from tracegen.run.record import RunRecord, new_run_id
from tracegen.run.result import RunResult
from tracegen.run.session import Telemetry, engine, prepared
from tracegen.run.signals import StopSignals
from tracegen.run.steps import plan_steps
from tracegen.run.variant_pacing import make_variant_pacer, run_eta
from tracegen.telemetry import cpu as cpu_telemetry
from tracegen.telemetry.nvtx import Ranges


class Runner:
    def __init__(self, config: RunConfig | None, *, command: list[str] | None = None, console=None,
                 progress: bool = True, resume: Path | None = None):
        self.requested = config
        self.command = command or []
        self.console = console
        self.show_progress = progress
        self.resume_dir = resume
        self.ranges = Ranges()
        self.signals = StopSignals()

    def run(self) -> RunResult:
        with self.signals:  # from the first moment: a signal at any stage ends as "interrupted"
            if self.resume_dir is not None:
                from tracegen.run.resume import resume_plan

                plan, opener, completed = resume_plan(self.resume_dir, self.command, self.signals)
            else:
                plan, completed = make_plan(self.requested), set()
                run_id = plan.config.run_id or new_run_id(plan.model, plan.backend_name)
                opener = lambda t0: RunRecord.create(plan, run_id, self.command, self.signals, t0)  # noqa: E731
            result = self._record(plan, opener, completed)
            self.signals.raise_pending()  # a signal held during the final writes
            return result

    def _record(self, plan: RunPlan, opener, completed: set[int]) -> RunResult:
        """Run every variant not in ``completed``, one device context per sync mode."""
        record: RunRecord | None = None
        telemetry: Telemetry | None = None
        status, error = "complete", None
        done = 0
        groups = {mode: todo for mode, variants in plan.by_sync_mode.items()
                  if (todo := [v for v in variants if v.variant_id not in completed])}
        try:
            eta = run_eta([v for v in plan.variants if v.variant_id not in completed], plan.config.seed)
            with ProgressBar(self.console, self.show_progress, len(plan.variants), eta, len(completed)) as bar:
                for note in plan.notes:
                    bar.say(note)
                for mode, variants in groups.items():
                    with engine(plan, mode) as (device, backend):
                        if record is None:  # the run directory appears once a backend is up
                            record = opener(time.perf_counter_ns())
                            telemetry = Telemetry(device, plan.config, warn=lambda t: bar.say(f"[yellow]{t}[/]"))
                            record.update_manifest(telemetry=telemetry.manifest())
                            telemetry.start(record.t0_ns)
                        record.update_manifest(gpu=device.info() if device.kind != "host" else None,
                                               backend={**backend.info(), "name": plan.backend_name})
                        for v in variants:
                            self._variant(plan, v, device, backend, record, telemetry, bar)
                            done += 1
        except KeyboardInterrupt:
            status, error = "interrupted", "stopped by Ctrl-C or SIGTERM; completed iterations were kept"
        except TracegenError as exc:
            status, error = "failed", str(exc)
            raise
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if record is not None:
                record.finish(status, error, telemetry.stop() if telemetry is not None else [])
        if record is None:  # interrupted before the run directory existed: nothing to report
            raise KeyboardInterrupt
        return RunResult(record.dir, record.writer.manifest["run_id"], status, done, record.iterations, error)

    def _variant(self, plan: RunPlan, v: Variant, device: Device, backend: Backend, record: RunRecord,
                 telemetry: Telemetry, bar: ProgressBar) -> None:
        config = plan.config
        with prepared(backend, v.batch, v.launch) as bindings:
            # Every input is written once here; the image input (if any) is refilled by the
            # pipeline's preprocess step each iteration, the others are only copied.
            feeder = feeder_for(plan.model.plan, bindings, v.batch, seed=config.seed)
            frames, pre = frames_for(feeder, bindings, plan.pre, config.seed)
            pacer = make_variant_pacer(v, device, config.seed)
            steps, pipe = plan_steps(v, device, backend, bindings, frames, pacer, pre, plan.post)
            try:
                self._loop(config, v, steps, device, record, telemetry, bar)
            finally:
                device.synchronize()  # nothing of this variant in flight when its buffers go
                pipe.close()

    def _loop(self, config: RunConfig, v: Variant, steps, device: Device, record: RunRecord, telemetry: Telemetry,
              bar: ProgressBar) -> None:
        total = v.warmup + v.iterations
        telemetry.set_variant(v.variant_id)
        record.variant_status(v, 0, "running")
        task = bar.start_variant(v, total)
        loop: TimedLoop

        def progress(done: int, row: int) -> None:
            if row >= 0:
                telemetry.cpu.last_core = int(loop.chunk.core[row, 0])  # lets telemetry read this core's clock
            bar.advance(task, done, v, loop.recent_work_s(row, max(1, total // 100)))

        loop = TimedLoop(steps, device.timer, flush=lambda chunk, rows: record.flush(chunk, rows, v, telemetry.drain()),
                         flush_every=config.flush_every, flush_seconds=config.flush_seconds, ranges=self.ranges,
                         current_core=cpu_telemetry.current_core, progress=progress)
        self.ranges.push_variant(v.name)
        try:
            loop.run(total)
        except KeyboardInterrupt:
            record.variant_status(v, loop.done, "interrupted")
            bar.end_variant(task, v, loop.done, interrupted=True)
            raise
        except BaseException:
            record.variant_status(v, loop.done, "failed")
            raise
        finally:
            self.ranges.pop()
        record.variant_status(v, loop.done, "complete")
        bar.end_variant(task, v, loop.done, work_ns=loop.work_ns)


def run_benchmark(config: RunConfig | None, *, command: list[str] | None = None, console=None, progress: bool = True,
                  resume: Path | None = None) -> RunResult:
    """Run the benchmark ``config`` describes (or continue the run in ``resume``); the Python API
    behind ``tracegen run``."""
    return Runner(config, command=command or list(sys.argv), console=console, progress=progress, resume=resume).run()
