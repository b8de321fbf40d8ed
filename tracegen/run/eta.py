"""How long the whole run will take, from its first second: the plan's gaps plus measured work.

A variant's time is its planned idle time (the gaps its arrival pattern and schedule will wait;
for frame-rate pacing the frame interval bounds each iteration) plus its iterations times the
cost of one iteration's work. The cost is measured as the run goes: the same batch, launch and
pipeline when a variant like it has run, else the nearest measured batch scaled linearly (an
upper bound: batching is sublinear), else a prior. So the first estimate is mostly the plan's
gaps, which dominate a paced run, and it sharpens as variants finish.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

PRIOR_ITERATION_S = 0.003  # one iteration's work before anything was measured (batch 1)


@dataclass(frozen=True)
class PlannedVariant:
    variant_id: int
    iterations: int  # warm-up included
    idle_s: float  # planned waiting over all iterations
    frame_interval_s: float | None  # frame-rate pacing: an iteration takes at least this long
    key: tuple  # (launch, pipeline, ...) variants that cost the same per iteration at equal batch
    batch: int


class RunEta:
    def __init__(self, plan: Iterable[PlannedVariant], clock: Callable[[], float] = time.monotonic):
        self.plan = {p.variant_id: p for p in plan}
        self._clock = clock
        self._start = clock()
        self._cost: dict[tuple, float] = {}  # (key, batch) -> seconds of work per iteration
        self._done: set[int] = set()
        self._current: tuple[int, int] | None = None  # variant id, iterations done

    # -- measurements ------------------------------------------------------------------------------
    def observe(self, variant_id: int, done: int, work_s_per_iteration: float | None = None) -> None:
        """Progress of the running variant; with its measured work per iteration when known."""
        p = self.plan[variant_id]
        if work_s_per_iteration is not None and work_s_per_iteration > 0:
            self._cost[(p.key, p.batch)] = work_s_per_iteration
        self._current = (variant_id, done)

    def finish(self, variant_id: int) -> None:
        self._done.add(variant_id)
        if self._current and self._current[0] == variant_id:
            self._current = None

    # -- estimates ---------------------------------------------------------------------------------
    def cost(self, p: PlannedVariant) -> float:
        exact = self._cost.get((p.key, p.batch))
        if exact is not None:
            return exact
        same = [(b, c) for (k, b), c in self._cost.items() if k == p.key]
        pool = same or [(b, c) for (_, b), c in self._cost.items()]
        if not pool:
            return PRIOR_ITERATION_S * p.batch
        below = [bc for bc in pool if bc[0] <= p.batch]
        b, c = max(below) if below else min(pool)
        return c * max(1.0, p.batch / b)

    def variant_seconds(self, p: PlannedVariant, iterations: int | None = None) -> float:
        n = p.iterations if iterations is None else iterations
        work = self.cost(p) * n
        share = n / p.iterations if p.iterations else 0.0
        if p.frame_interval_s is not None:
            return max(work, p.frame_interval_s * n)
        return work + p.idle_s * share

    def total_s(self) -> float:
        """The whole run as planned, with what was measured so far."""
        return sum(self.variant_seconds(p) for p in self.plan.values())

    def remaining_s(self) -> float:
        left = 0.0
        for vid, p in self.plan.items():
            if vid in self._done:
                continue
            if self._current and self._current[0] == vid:
                left += self.variant_seconds(p, max(0, p.iterations - self._current[1]))
            else:
                left += self.variant_seconds(p)
        return left

    def elapsed_s(self) -> float:
        return self._clock() - self._start


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
