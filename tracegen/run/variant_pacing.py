"""A planned variant's arrivals: its pacer, what the manifest records about them, and the plan
the run's ETA starts from."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tracegen.run.arrivals import arrival_of, make_arrival_pacer, plan_gaps, waiter
from tracegen.run.eta import PlannedVariant, RunEta
from tracegen.run.schedule import parse_schedule


def _schedule(v):
    return parse_schedule(v.schedule) if v.schedule else None


def _seed(seed: int, v) -> list[int]:
    """Poisson gaps differ between variants and repeat between runs with the same --seed."""
    return [int(seed), int(v.variant_id)]


def make_variant_pacer(v, device, seed: int = 0) -> Callable[[], None]:
    return make_arrival_pacer(arrival_of(v.arrival), v.idle_ms, v.pacing, lambda p: waiter(p, device),
                              warmup=v.warmup, iterations=v.iterations, schedule=_schedule(v), seed=_seed(seed, v))


def arrivals_manifest(variants) -> list[dict[str, Any]]:
    """Per paced idle variant: the pattern and, with a schedule, its segments and the true change
    points (iteration numbers, warm-up included), so analysis and tests know where they are."""
    out = []
    for v in variants:
        if v.scenario != "idle" or v.pacing == "none":
            continue
        entry: dict[str, Any] = {"variant_id": v.variant_id, "arrival": v.arrival, "gap_ms": v.idle_ms}
        if v.arrival == "fps":
            entry["fps"] = 1000.0 / v.idle_ms
            entry["gap_ms"] = None
            entry["frame_interval_ms"] = v.idle_ms
        elif v.arrival == "poisson":
            entry["mean_gap_ms"] = v.idle_ms
        sched = _schedule(v)
        if sched is not None:
            entry["gap_ms"] = None
            entry["schedule"] = sched.describe(v.warmup, v.pacing)
        out.append(entry)
    return out


def run_eta(variants, seed: int = 0) -> RunEta:
    plan = []
    for v in variants:
        n = v.warmup + v.iterations
        interval = None
        idle_s = 0.0
        if v.pacing != "none":
            if v.arrival == "fps":
                interval = v.idle_ms / 1000.0
            else:
                gaps, _ = plan_gaps(arrival_of(v.arrival), v.idle_ms, v.pacing, warmup=v.warmup,
                                    iterations=v.iterations, schedule=_schedule(v), seed=_seed(seed, v))
                idle_s = float(np.sum(gaps)) / 1000.0
        plan.append(PlannedVariant(v.variant_id, n, idle_s, interval, (v.launch, v.pipeline, v.sync_mode), v.batch))
    return RunEta(plan)
