"""The grid of variants a run measures (DESIGN.md "One iteration": the cartesian grid)."""

from __future__ import annotations

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

    @property
    def name(self) -> str:
        """Compact label; also the NVTX range of the variant, so keep it readable in Nsight."""
        gap = f"{self.idle_ms:g}ms-{self.pacing}" if self.pacing != "none" else "no-gap"
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
                    for gap in config.idle_ms:
                        for pacing in (("none",) if gap == 0 else config.pacing):
                            out.append(Variant(len(out), "idle", config.idle_batch, gap, pacing, launch, sync,
                                               pipeline, config.warmup, config.iterations))
    return out


def variants_frame(variants: list[Variant], progress: dict[int, tuple[int, str]] | None = None) -> pl.DataFrame:
    progress = progress or {}
    rows = [v.row(*progress.get(v.variant_id, (0, "planned"))) for v in variants]
    return pl.DataFrame(rows, schema=VARIANTS_SCHEMA, strict=False).select(list(VARIANTS_SCHEMA))
