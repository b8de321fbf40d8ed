"""The plan of a run: the grid of variants (DESIGN.md "One iteration": the cartesian grid), the
backend that runs them, and every check that can fail on bad input, done before anything is
written: backend requirements, options the backend cannot honour, and whether the plan fits in
memory and on disk."""

from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tracegen.backends.base import Backend, ModelSource
from tracegen.errors import BackendError, ConfigError
from tracegen.run.config import RunConfig, resolve
from tracegen.trace.schema import STEP_ORDER, VARIANTS_SCHEMA


@dataclass(frozen=True)
class Variant:
    variant_id: int
    scenario: str
    batch: int
    idle_ms: float
    pacing: str
    launch: str
    sync_mode: str
    pipeline: str
    warmup: int
    iterations: int
    # Arrival pattern of a paced variant (tracegen.run.arrivals: fixed | fps | poisson | burst:N);
    # with ``schedule`` (tracegen.run.schedule spec) its gap changes at known iterations and
    # ``idle_ms`` is the largest gap of the schedule. For fps, ``idle_ms`` is the frame interval.
    arrival: str = "fixed"
    schedule: str | None = None

    @property
    def name(self) -> str:
        """Compact label; also the NVTX range of the variant, so keep it readable in Nsight."""
        if self.pacing == "none":
            gap = "no-gap"
        elif self.schedule:
            gap = f"schedule[{self.schedule}]-{self.pacing}" + ("" if self.arrival == "fixed" else f"-{self.arrival}")
        else:
            from tracegen.run.arrivals import parse_arrival

            kind = "fps" if self.arrival == "fps" else self.arrival
            label = parse_arrival(kind).label(self.idle_ms) if kind != "fps" else _fps_label(self.idle_ms)
            gap = f"{label}-{self.pacing}"
        return f"{self.scenario} b{self.batch} {gap} {self.launch} sync-{self.sync_mode} {self.pipeline}"

    def row(self, completed: int = 0, status: str = "planned") -> dict:
        return {**asdict(self), "name": self.name, "completed": completed, "status": status}


def plan_variants(config: RunConfig) -> list[Variant]:
    """Batch scenario: every batch size without gaps. Idle scenario: every gap x pacing at
    ``idle_batch``; a 0 ms gap is the continuous baseline (pacing ``none``), measured once.
    Both over launch x sync mode x pipeline. Grouped by sync mode, which needs its own context."""
    out: list[Variant] = []
    for sync in config.sync_mode:
        for pipeline in config.pipeline:
            for launch in config.launch:
                if "batch" in config.scenarios:
                    for b in config.batch_sizes:
                        out.append(Variant(len(out), "batch", b, 0.0, "none", launch, sync, pipeline,
                                           config.warmup, config.batch_iterations))
                if "idle" in config.scenarios:
                    out += _idle_variants(config, len(out), launch, sync, pipeline)
    return out


def _fps_label(interval_ms: float) -> str:
    from tracegen.run.arrivals import Arrival

    return Arrival("fps").label(interval_ms)


def _idle_variants(config: RunConfig, first_id: int, launch: str, sync: str, pipeline: str) -> list[Variant]:
    """Fixed-pattern gaps of --idle-ms (0: the baseline), frame-rate deadlines of --fps, and one
    variant per pacing following --schedule."""
    arrival = config.arrival
    fps = config.fps or ()
    schedule = config.schedule
    out: list[Variant] = []

    def add(gap: float, pacing: str, kind: str, iterations: int, sched: str | None = None) -> None:
        out.append(Variant(first_id + len(out), "idle", config.idle_batch, gap, pacing, launch, sync, pipeline,
                           config.warmup, iterations, kind, sched))

    for gap in config.idle_ms:
        for pacing in (("none",) if gap == 0 else config.pacing):
            add(gap, pacing, "fixed" if gap == 0 else arrival, config.iterations)
    for rate in fps:
        for pacing in config.pacing:
            add(1000.0 / rate, pacing, "fps", config.iterations)
    if schedule:
        from tracegen.run.schedule import parse_schedule

        sched = parse_schedule(schedule)
        for pacing in config.pacing:
            add(sched.max_gap_ms, pacing, arrival, sched.iterations, sched.spec)
    return out


def with_arrival_defaults(config: RunConfig) -> RunConfig:
    """``--fps`` or ``--schedule`` without ``--idle-ms``: no fixed-gap variants beside them
    (``--fps`` keeps the 0 ms baseline to compare with)."""
    fps, schedule = config.fps, config.schedule
    if config.idle_ms is not None or not (fps or schedule):
        return config
    return dataclasses.replace(config, idle_ms=(0.0,) if fps else ())


def variants_frame(variants: list[Variant], progress: dict[int, tuple[int, str]] | None = None) -> pl.DataFrame:
    progress = progress or {}
    rows = [v.row(*progress.get(v.variant_id, (0, "planned"))) for v in variants]
    return pl.DataFrame(rows, schema=VARIANTS_SCHEMA, strict=False).select(list(VARIANTS_SCHEMA))


# -- the plan, validated -------------------------------------------------------------------------
@dataclass(frozen=True)
class RunPlan:
    config: RunConfig  # resolved: device defaults filled in
    model: ModelSource
    backend_name: str
    backend_cls: type[Backend]
    variants: list[Variant]
    pre_spec: Any = "host"  # where pre/postprocessing run, as given (for the manifest) ...
    post_spec: Any = "host"
    pre: Any = "host"  # ... and loaded (a user's step is its function)
    post: Any = "host"
    notes: tuple[str, ...] = ()  # what the user should know before the run starts (rich markup)

    @property
    def by_sync_mode(self) -> dict[str, list[Variant]]:
        """Variants grouped by sync mode, in order: each group needs its own device context."""
        groups: dict[str, list[Variant]] = {}
        for v in self.variants:
            groups.setdefault(v.sync_mode, []).append(v)
        return groups


def make_plan(requested: RunConfig) -> RunPlan:
    """Resolve the backend and defaults, load the model, plan the variants and check them all."""
    from tracegen.backends.registry import backend_class, resolve_backend
    from tracegen.models.fit import auto_backend, check_backend_runs, fit_fixed_batch
    from tracegen.models.shapes import plan_for
    from tracegen.models.source import load_model, model_kind

    backend_name = resolve_backend(requested.backend, model_kind=model_kind(requested.model))
    cls = backend_class(backend_name)
    from tracegen.prepost.pipeline import load_user_steps, resolve_modes

    config = resolve(with_arrival_defaults(requested), cls.device_kind)
    model = load_model(config.model)
    if config.backend == "auto" and auto_backend(model.kind, backend_name) != backend_name:
        backend_name = auto_backend(model.kind, backend_name)
        cls = backend_class(backend_name)
        config = resolve(with_arrival_defaults(requested), cls.device_kind)
    check_backend_runs(model, backend_name)
    if model.kind != "engine" or config.shapes or config.inputs:  # an engine's inputs only TensorRT knows
        model = model.with_plan(plan_for(model, shapes=config.shapes, inputs_file=config.inputs))
    check_requirements(cls)
    check_options(config, cls, model)
    config, batch_note = fit_fixed_batch(model, config)
    from tracegen.optional import available

    gpu = cls.device_kind != "host"
    device_ok = gpu and available("cupy")
    pre_spec, post_spec = resolve_modes(config.preprocess, config.postprocess, gpu=gpu, device_ok=device_ok)
    notes = (f"[yellow]{batch_note}[/]",) if batch_note else ()
    if gpu and not device_ok and None in (config.preprocess, config.postprocess):
        notes += ("[yellow]CuPy is not installed: pre/postprocessing run on the host "
                 "(pip install cupy-cuda12x or cupy-cuda13x for device pre/postprocessing)[/]",)
    pre, post = load_user_steps(pre_spec, post_spec)
    variants = plan_variants(config)
    if not variants:
        raise ConfigError("the options select no variants", "give at least one --scenario")
    plan = RunPlan(config, model, backend_name, cls, variants, pre_spec, post_spec, pre, post, notes)
    check_size(plan)
    return plan


def check_requirements(cls: type[Backend]) -> None:
    from tracegen.backends.registry import cuda_gpu_count
    from tracegen.optional import require

    for module in cls.requires:
        require(module)
    if cls.device_kind == "cuda" and cuda_gpu_count() == 0:
        raise BackendError(f"the {cls.name} backend needs an NVIDIA GPU, and none was found",
                           "use --backend onnxruntime (CPU), or check the driver with nvidia-smi")


def check_options(c: RunConfig, cls: type[Backend], model: ModelSource) -> None:
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
    check_arrivals(c, cls)  # a fixed-batch model runs its batch only (models.fit.fit_fixed_batch)


def check_arrivals(c: RunConfig, cls: type[Backend]) -> None:
    from tracegen.run.arrivals import parse_arrival
    from tracegen.run.schedule import parse_schedule

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


# Bytes of one step row in the part files (measured: ~9 B merged, zstd; parts compress less),
# and room for the parts and the merged file side by side at the end of the run.
DISK_BYTES_PER_ROW = 16
MERGE_FACTOR = 2


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**29 else f"{n / 2**20:.0f} MiB"


def _tensor_bytes(shape: tuple, dtype: str, batch: int) -> int:
    import numpy as np

    dims = [int(d) for d in shape[1:] if isinstance(d, int) and d > 0]
    try:
        itemsize = np.dtype(dtype or "float32").itemsize
    except TypeError:
        itemsize = 4
    return batch * math.prod(dims) * itemsize if len(dims) == len(shape) - 1 else 0


def plan_memory_bytes(plan: RunPlan) -> int:
    """Host memory tracegen itself allocates for the largest variant: input and output buffers
    (plus a staging copy of each on GPUs), the input frames and the loop's rows. The backend's own
    working memory (activations, engine) comes on top and is not counted."""
    from tracegen.run.loop import Chunk

    m, c = plan.model, plan.config
    copies = 2 if plan.backend_cls.device_kind != "host" else 1
    steps = len(STEP_ORDER)
    worst = 0
    for v in plan.variants:
        buffers = copies * (_tensor_bytes(m.input_shape, m.input_dtype, v.batch)
                            + _tensor_bytes(m.output_shape, m.output_dtype, v.batch))
        total = v.warmup + v.iterations
        rows = min(total, c.flush_every) * Chunk.bytes_per_iteration(steps) + 8 * total
        worst = max(worst, buffers + rows)
    frames = 4 * 3 * math.prod(int(d) * 3 // 2 for d in m.image_shape[1:]) if len(m.input_shape) == 4 else 0
    return worst + frames


def plan_disk_bytes(plan: RunPlan) -> int:
    rows = sum((v.warmup + v.iterations) * len(STEP_ORDER) for v in plan.variants)
    return rows * DISK_BYTES_PER_ROW * MERGE_FACTOR


def _existing_parent(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def check_size(plan: RunPlan, available_memory: int | None = None, free_disk: int | None = None) -> None:
    """Refuse a plan that cannot fit in memory or on the disk of ``--out``, before writing."""
    fix = "lower --iterations / --batch-iterations / --batch-sizes or the number of variants"
    need = plan_memory_bytes(plan)
    if available_memory is None:
        try:
            import psutil

            available_memory = int(psutil.virtual_memory().available)
        except Exception:  # noqa: BLE001 - unknown: only the disk is checked
            available_memory = None
    if available_memory is not None and need > available_memory:
        biggest = max(plan.variants, key=lambda v: (v.batch, v.warmup + v.iterations))
        raise ConfigError(f"the plan needs {_gib(need)} of host memory (batch {biggest.batch}, "
                          f"{biggest.warmup + biggest.iterations} iterations) and {_gib(available_memory)} is available", fix)
    disk = plan_disk_bytes(plan)
    if free_disk is None:
        try:
            free_disk = shutil.disk_usage(_existing_parent(Path(plan.config.out))).free
        except OSError:
            free_disk = None
    if free_disk is not None and disk > free_disk:
        rows = disk // (DISK_BYTES_PER_ROW * MERGE_FACTOR)
        raise ConfigError(f"the plan records {rows:,} step rows (about {_gib(disk)} on disk while the run ends) and "
                          f"{plan.config.out} has {_gib(free_disk)} free", f"{fix}, or pass --out on a larger disk")
