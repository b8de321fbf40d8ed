"""The timed loop: run every variant of the grid and record each step of each iteration.

The runner owns ordering and bookkeeping only. Devices own streams/events/copies, backends own
the model, samplers own telemetry, the writer owns files. Everything that allocates happens
before a variant's loop; the loop reads the clock, calls the step, and stores integers into
preallocated arrays.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import secrets
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

import tracegen
from tracegen.backends.base import Backend, Bindings, Device, ModelSource, StepTimer
from tracegen.backends.registry import backend_class, make_device, resolve_backend
from tracegen.run.config import RunConfig, resolve
from tracegen.errors import BackendError, ConfigError, TracegenError
from tracegen.run.inputs import FrameSource
from tracegen.models.source import load_model
from tracegen.telemetry import cpu as cpu_telemetry
from tracegen.telemetry.nvtx import Ranges
from tracegen.trace import schema as S
from tracegen.trace.manifest import host_info, library_versions
from tracegen.trace.writer import RunWriter, create_run_dir
from tracegen.optional import available
from tracegen.prepost.host import host_library
from tracegen.prepost.pipeline import (Pipeline, build_pipeline, describe, engine_only, load_user_steps, resolve_modes,
                                      step_order)
from tracegen.run.variant_pacing import arrivals_manifest, make_variant_pacer, run_eta
from tracegen.run.plan import Variant, plan_variants, variants_frame, with_arrival_defaults
from tracegen.run.progress import ProgressBar
from tracegen.run.result import RunResult

_STEP_CODE = {name: i for i, name in enumerate(S.STEP_ORDER)}


class Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into the same clean stop as Ctrl-C."""


class _StopSignals:
    """Ctrl-C and SIGTERM stop the run, but never in the middle of writing to disk: a signal that
    arrives inside ``deferred()`` is held until the write is done (so no part is written twice
    and no iteration is lost)."""

    def __init__(self):
        self._deferring = False
        self._pending: type[KeyboardInterrupt] | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame):
        exc = KeyboardInterrupt if signum == signal.SIGINT else Interrupted
        if self._deferring:
            self._pending = exc
            return
        raise exc()

    def __enter__(self):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread: leave signals alone
            self._previous.clear()
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    @contextmanager
    def deferred(self):
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            pending, self._pending = self._pending, None
            if pending is not None:
                raise pending()


def new_run_id(model: ModelSource, backend: str) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    short = model.spec.split(":", 1)[1] if model.spec.startswith("builtin:") else Path(model.spec).stem
    short = "".join(c if c.isalnum() or c in "-_" else "-" for c in short)[:24]
    return f"{stamp}-{short}-{backend}-{secrets.token_hex(2)}"


# -- one variant ---------------------------------------------------------------------------------
@dataclass
class _Step:
    name: str
    work: Callable[[], Any]
    timer: StepTimer | None  # device timer around the work, if it runs on the device


def _plan_steps(variant: Variant, device: Device, backend: Backend, bindings: Bindings, frames: np.ndarray,
                pacer: Callable[[], None], pre: Any, post: Any) -> tuple[list[_Step], Pipeline]:
    """The idle gap, then the pipeline's steps (tracegen.prepost.pipeline), device ones timed."""
    if variant.pipeline == "full":
        pipe = build_pipeline(device=device, bindings=bindings, enqueue=backend.enqueue, frames=frames, pre=pre, post=post)
    else:
        pipe = engine_only(device=device, enqueue=backend.enqueue)
    gpu = device.kind != "host"
    steps = [_Step("idle", pacer, None)]
    steps += [_Step(s.name, s.work, device.timer() if gpu and s.on_device else None) for s in pipe.steps]
    return steps, pipe


class _Recorder:
    """Per-iteration rows of host timestamps, GPU times and cores, in preallocated arrays."""

    def __init__(self, steps: list[_Step], capacity: int):
        n = len(steps)
        self.codes = np.array([_STEP_CODE[s.name] for s in steps], dtype=np.int8)
        self.marks = np.zeros((capacity, 2 * n), dtype=np.int64)  # start, end per step
        self.gpu = np.full((capacity, n), -1, dtype=np.int64)
        self.core = np.full((capacity, n), -1, dtype=np.int16)
        self.iteration = np.zeros(capacity, dtype=np.int32)

    def frame(self, start: int, end: int, variant: Variant, t0_ns: int) -> pl.DataFrame:
        """Long-format rows of iterations ``start..end`` (schema: trace.schema.STEPS_SCHEMA)."""
        n, rows = len(self.codes), end - start
        marks = self.marks[start:end].reshape(rows, n, 2)
        iteration = np.repeat(self.iteration[start:end], n)
        names = pl.Series(list(S.STEP_ORDER), dtype=S.STEP_DTYPE)
        return pl.DataFrame({
            "variant_id": np.full(rows * n, variant.variant_id, dtype=np.int32),
            "iteration": iteration,
            "warmup": iteration < variant.warmup,
            "step": names.gather(np.tile(self.codes, rows).astype(np.uint32)),
            "host_start_ns": marks[:, :, 0].ravel() - t0_ns,
            "host_ns": (marks[:, :, 1] - marks[:, :, 0]).ravel(),
            "gpu_ns": self.gpu[start:end].ravel(),
            "cpu_core": self.core[start:end].ravel(),
        }).with_columns(  # -1 marks "none" in the arrays
            pl.when(pl.col("gpu_ns") >= 0).then(pl.col("gpu_ns")).alias("gpu_ns"),
            pl.when(pl.col("cpu_core") >= 0).then(pl.col("cpu_core")).alias("cpu_core"),
        )


# -- the run -------------------------------------------------------------------------------------
class Runner:
    def __init__(self, config: RunConfig, *, command: list[str] | None = None, console=None, progress: bool = True):
        self.requested = config
        self.command = command or []
        self.console = console
        self.show_progress = progress
        self.ranges = Ranges()
        self.t0_ns = 0
        self.samplers: list = []
        self.writer: RunWriter | None = None
        self.progress_counts: dict[int, tuple[int, str]] = {}
        self.iterations_recorded = 0
        self.signals = _StopSignals()

    # ---- set-up ----
    def prepare(self) -> None:
        """Everything that can fail on bad input, before anything is written."""
        config = self.requested
        backend_name = resolve_backend(config.backend, model_kind=self._model_kind_hint(config.model))
        cls = backend_class(backend_name)
        self.config = config = resolve(with_arrival_defaults(config), cls.device_kind)
        self.model = load_model(config.model)
        if config.backend == "auto" and self.model.kind == "engine" and backend_name != "tensorrt":
            backend_name, cls = "tensorrt", backend_class("tensorrt")
        self.backend_name, self.backend_cls = backend_name, cls
        self._check_requirements(cls)
        self._validate(cls)
        gpu = cls.device_kind != "host"
        device_ok = gpu and available("cupy")
        modes = resolve_modes(config.preprocess, config.postprocess, gpu=gpu, device_ok=device_ok)
        if gpu and not device_ok and None in (config.preprocess, config.postprocess):
            self._say("[yellow]CuPy is not installed: pre/postprocessing run on the host "
                      "(pip install cupy-cuda12x or cupy-cuda13x for device pre/postprocessing)[/]")
        self.pre_spec, self.post_spec = modes  # as given, for the manifest
        self.pre, self.post = load_user_steps(*modes)
        self.variants = plan_variants(config)
        if not self.variants:
            raise ConfigError("the options select no variants", "give at least one --scenario")

    @staticmethod
    def _model_kind_hint(spec: str | None) -> str:
        from tracegen.models.source import ENGINE_SUFFIXES

        return "engine" if spec and Path(spec).suffix.lower() in ENGINE_SUFFIXES else "onnx"

    def _check_requirements(self, cls: type[Backend]) -> None:
        from tracegen.backends.registry import cuda_gpu_count
        from tracegen.optional import require

        for module in cls.requires:
            require(module)
        if cls.device_kind == "cuda" and cuda_gpu_count() == 0:
            raise BackendError(f"the {cls.name} backend needs an NVIDIA GPU, and none was found",
                               "use --backend onnxruntime (CPU), or check the driver with nvidia-smi")

    def _validate(self, cls: type[Backend]) -> None:
        c = self.config
        for launch in c.launch:
            if launch not in cls.launches:
                raise ConfigError(f"the {cls.name} backend has no {launch!r} launch mode", f"use --launch {','.join(cls.launches)}")
        if c.precision not in cls.precisions:
            raise ConfigError(f"the {cls.name} backend does not run {c.precision}", f"use --precision {','.join(cls.precisions)}")
        if cls.device_kind == "host":
            if any(m != "auto" for m in c.sync_mode):
                raise ConfigError("--sync-mode applies to GPU backends (how the host waits for the GPU)", "leave it out on the CPU")
            if "idle" in c.scenarios and "keepalive" in c.pacing:
                raise ConfigError("--pacing keepalive needs a GPU backend", "use --pacing sleep,spin on the CPU")
        self._validate_arrivals(cls)
        fixed = self.model.input_shape[0] if self.model.input_shape else None
        if isinstance(fixed, int) and fixed > 0:
            sizes = set(c.batch_sizes if "batch" in c.scenarios else ()) | ({c.idle_batch} if "idle" in c.scenarios else set())
            if sizes != {fixed}:
                raise ConfigError(
                    f"model {self.model.spec} has a fixed batch size of {fixed}",
                    f"use --batch-sizes {fixed} --idle-batch {fixed}, or export the model with a dynamic batch dimension",
                )

    def _validate_arrivals(self, cls: type[Backend]) -> None:
        from tracegen.run.arrivals import parse_arrival
        from tracegen.run.schedule import parse_schedule

        c = self.config
        arrival = parse_arrival(c.arrival)
        schedule = c.schedule
        if (schedule or c.fps) and "idle" not in c.scenarios:
            raise ConfigError("--fps and --schedule pace the idle scenario, which this run leaves out",
                              "add --scenario idle")
        if schedule:
            sched = parse_schedule(schedule)
            if cls.device_kind == "host" and "keepalive" in sched.pacings:
                raise ConfigError("--schedule uses keepalive, which needs a GPU backend", "use sleep or spin on the CPU")
        if arrival.kind == "fps":
            raise ConfigError("frame-rate pacing is its own option", "use --fps 30")

    def _manifest(self, run_id: str) -> dict[str, Any]:
        c = self.config
        gpu = "host" != self.backend_cls.device_kind
        return {
            "schema_version": S.SCHEMA_VERSION,
            "tracegen_version": tracegen.__version__,
            "run_id": run_id,
            "command": self.command,
            "config": c.to_dict(),
            "host": host_info(),
            "gpu": None,
            "backend": {"name": self.backend_name, "precision": c.precision},
            "libraries": library_versions(),
            "model": self.model.manifest(),
            "pipeline": {
                "steps": step_order(self.pre, self.post, gpu),
                **describe(self.pre_spec, self.post_spec),
                "host_library": host_library() if self.pre_spec == "host" else None,
                "not_applicable": {} if gpu else {
                    "h2d": "CPU backend: the input already lives in host memory",
                    "d2h": "CPU backend: the output is written to host memory",
                    "sync": "CPU backend: inference returns when done, nothing to wait for",
                },
            },
            "clock": "host times are time.perf_counter_ns since run start; GPU times from CUDA events",
            "arrivals": arrivals_manifest(self.variants),
            "variants_planned": len(self.variants),
        }

    # ---- run ----
    def run(self) -> RunResult:
        self.prepare()
        run_id = self.config.run_id or new_run_id(self.model, self.backend_name)
        groups: dict[str, list[Variant]] = {}
        for v in self.variants:
            groups.setdefault(v.sync_mode, []).append(v)
        # Activate the first group's backend before creating the run directory, so that a
        # backend that cannot run here (missing library, engine for another GPU) leaves nothing.
        first_mode = next(iter(groups))
        device, backend = self._activate(first_mode)
        try:
            run_dir = create_run_dir(Path(self.config.out) / run_id)
        except BaseException:
            self._deactivate(device, backend)
            raise
        self.writer = RunWriter(run_dir, self._manifest(run_id))
        self.writer.write_variants(variants_frame(self.variants))
        status, error = "complete", None
        self.t0_ns = time.perf_counter_ns()
        self._start_samplers(device)
        done = 0
        try:
            with self.signals, self._progress() as bar:
                for i, (mode, variants) in enumerate(groups.items()):
                    if i > 0:
                        device, backend = self._activate(mode)
                    try:
                        self.writer.update_manifest(gpu=device.info() if device.kind != "host" else None,
                                                    backend={**backend.info(), "name": self.backend_name})
                        for v in variants:
                            self._run_variant(v, device, backend, bar)
                            done += 1
                    finally:
                        self._deactivate(device, backend)
        except KeyboardInterrupt:
            status, error = "interrupted", "stopped by Ctrl-C or SIGTERM; completed iterations were kept"
        except TracegenError as exc:
            status, error = "failed", str(exc)
            raise
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._finish(status, error)
        return RunResult(run_dir, run_id, status, done, self.iterations_recorded, error)

    def _activate(self, sync_mode: str) -> tuple[Device, Backend]:
        device = make_device(self.backend_cls.device_kind, sync_mode=sync_mode, device_index=self.config.device_index)
        backend = self.backend_cls(self.model, precision=self.config.precision, threads=self.config.threads)
        backend.expect_batches(sorted({v.batch for v in self.variants}))
        try:
            device.activate()
            backend.activate(device)
        except BaseException:
            self._deactivate(device, backend)
            raise
        return device, backend

    @staticmethod
    def _deactivate(device: Device, backend: Backend) -> None:
        try:
            backend.deactivate()
        finally:
            device.deactivate()

    def _start_samplers(self, device: Device) -> None:
        interval = self.config.telemetry_ms / 1000.0
        cpu = cpu_telemetry.CpuSampler(interval)
        self.samplers = [cpu]
        gpu_flag = False
        if device.kind != "host":
            try:
                from tracegen.telemetry.nvml import GpuSampler

                self.samplers.append(GpuSampler(self.config.device_index, interval))
                gpu_flag = True
            except Exception as exc:  # noqa: BLE001 - telemetry is optional, the run is not
                self._say(f"[yellow]GPU telemetry unavailable ({exc}); recording without it[/]")
        self.writer.update_manifest(telemetry={"cpu_frequency": cpu.exposes_frequency, "gpu": gpu_flag,
                                               "interval_ms": self.config.telemetry_ms})
        for s in self.samplers:
            s.start(self.t0_ns)

    def _finish(self, status: str, error: str | None) -> None:
        rows: list[dict] = []
        for s in self.samplers:
            rows.extend(s.stop())
            s.close()
        if self.writer is not None:
            self.writer.append_telemetry(rows)
            self.writer.write_variants(variants_frame(self.variants, self.progress_counts))
            self.writer.finish(status, error)

    def _flush(self, rec: _Recorder, start: int, end: int, variant: Variant) -> None:
        with self.signals.deferred():
            if end > start:
                self.writer.append_steps(rec.frame(start, end, variant, self.t0_ns))
            rows: list[dict] = []
            for s in self.samplers:
                rows.extend(s.drain())
            self.writer.append_telemetry(rows)

    def _run_variant(self, v: Variant, device: Device, backend: Backend, bar) -> None:
        bindings = backend.prepare(v.batch, v.launch)
        pipe = None
        try:
            frames = FrameSource(tuple(bindings.host_input.shape[1:]), seed=self.config.seed).frames
            pacer = make_variant_pacer(v, device, self.config.seed)
            steps, pipe = _plan_steps(v, device, backend, bindings, frames, pacer, self.pre, self.post)
            self._loop(v, steps, device, bar)
        finally:
            try:
                if pipe is not None:
                    device.synchronize()  # nothing of this variant in flight when its buffers go
                    pipe.close()
            finally:
                backend.release()

    def _loop(self, v: Variant, steps: list[_Step], device: Device, bar) -> None:
        total = v.warmup + v.iterations
        capacity = total  # one row per iteration; flushed in slices of flush_every
        rec = _Recorder(steps, capacity)
        marks, gpu, core = rec.marks, rec.gpu, rec.core
        now = time.perf_counter_ns
        getcpu = cpu_telemetry.current_core or (lambda: -1)
        ranges = self.ranges
        # Two timers per device step, alternating by iteration: the previous iteration's times are
        # read just before this iteration's sync, while the GPU still works, instead of after the
        # sync, when every microsecond spent reading would add to the iteration's wall time.
        pairs = {k: (s.timer, device.timer()) for k, s in enumerate(steps) if s.timer is not None}
        timed = list(pairs.items())
        plan = [(2 * k, s.name, s.work, pairs.get(k)) for k, s in enumerate(steps)]
        pending = -1  # iteration whose device times are still to be read

        def read_device_times(i: int) -> None:
            parity = i & 1
            for k, pair in timed:
                ns = pair[parity].elapsed_ns()
                gpu[i, k] = -1 if ns is None else ns

        flush_every = self.config.flush_every
        cpu_sampler = self.samplers[0]
        for s in self.samplers:
            s.set_variant(v.variant_id)
        self.progress_counts[v.variant_id] = (0, "running")
        self.writer.write_variants(variants_frame(self.variants, self.progress_counts))
        task = bar.start_variant(v, total)
        flushed = done = 0
        ranges.push_variant(v.name)
        try:
            for it in range(total):
                ranges.push_iteration(it)
                parity = it & 1
                for col, name, work, pair in plan:
                    if pending >= 0 and name == "sync":
                        read_device_times(pending)  # synchronised one iteration ago
                        pending = -1
                    ranges.push_step(name)
                    a = now()
                    if pair is None:
                        work()
                    else:
                        timer = pair[parity]
                        timer.start()
                        work()
                        timer.stop()
                    b = now()
                    ranges.pop()
                    marks[it, col] = a
                    marks[it, col + 1] = b
                    core[it, col >> 1] = getcpu()
                if timed:
                    pending = it
                ranges.pop()
                rec.iteration[it] = it
                done = it + 1
                if done - flushed >= flush_every:
                    if pending >= 0:
                        read_device_times(pending)
                        pending = -1
                    try:
                        self._flush(rec, flushed, done, v)
                    finally:  # also when a signal held during the write is raised at its end
                        flushed = done
                if done % bar.stride == 0:
                    bar.advance(task, done, v, rec)
                    cpu_sampler.last_core = int(core[it, 0])  # lets telemetry read this core's clock
        except KeyboardInterrupt:
            self._read_pending(read_device_times, pending)
            self._flush(rec, flushed, done, v)
            self._record_progress(v, done, "interrupted")
            bar.end_variant(task, v, done, interrupted=True)
            raise
        except BaseException:
            self._read_pending(read_device_times, pending)
            self._flush(rec, flushed, done, v)
            self._record_progress(v, done, "failed")
            raise
        finally:
            ranges.pop()
        if pending >= 0:
            read_device_times(pending)
        self._flush(rec, flushed, done, v)
        self._record_progress(v, done, "complete")
        bar.end_variant(task, v, done, rec=rec)

    @staticmethod
    def _read_pending(read, pending: int) -> None:
        """Read the last synchronised iteration's device times on the way out of a stopped loop."""
        if pending >= 0:
            try:
                read(pending)
            except Exception:  # noqa: BLE001 - a failed device keeps its rows, without GPU times
                pass

    def _record_progress(self, v: Variant, done: int, status: str) -> None:
        self.progress_counts[v.variant_id] = (done, status)
        self.iterations_recorded += done
        with self.signals.deferred():
            self.writer.write_variants(variants_frame(self.variants, self.progress_counts))

    # ---- terminal ----
    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)

    @contextmanager
    def _progress(self):
        bar = ProgressBar(self.console, enabled=self.show_progress, n_variants=len(self.variants),
                          eta=run_eta(self.variants, self.config.seed))
        with bar:
            yield bar


def run_benchmark(config: RunConfig, *, command: list[str] | None = None, console=None, progress: bool = True) -> RunResult:
    """Run the benchmark ``config`` describes; the Python API behind ``tracegen run``."""
    return Runner(config, command=command or list(sys.argv), console=console, progress=progress).run()
