"""The grid of variants a run measures (DESIGN.md "One iteration": the cartesian grid)."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import polars as pl

from tracegen.run.config import RunConfig
from tracegen.trace.schema import VARIANTS_SCHEMA


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
