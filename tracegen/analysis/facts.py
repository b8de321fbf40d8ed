"""``Facts``: everything the rules read about one run, built once by ``collect_facts``, and the
small accessors the rules share (variant rows, statistics, iteration ranges, Nsight hints).

Vocabulary:

* *paced* variant: idle scenario with a gap (> 0 ms) before every inference (pacing sleep,
  spin or keepalive). Its *baseline* is the continuous (no-gap) variant with the same batch,
  launch, sync mode and pipeline (``attribution.find_baseline``).
* *continuous* variant: no gap (pacing ``none``): every batch-scenario variant and the idle
  scenario's 0 ms baseline. Steady-state rules (enqueue-, transfer-bound, unstable GPU time)
  look at those only, so idle effects do not leak into them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from tracegen.analysis.attribution import attribute, find_baseline, has_gpu_times, is_paced, measured
from tracegen.analysis.changepoints import detect_changepoints
from tracegen.analysis.clocks import iteration_telemetry, samples_to_iterations
from tracegen.analysis.scaling import batch_scaling
from tracegen.analysis.stats import iterations, latency_basis, variant_stats
from tracegen.analysis.tiers import detect_tiers, tier_summary
from tracegen.units import NS_PER_MS, as_float

MIN_POINTS_CHANGEPOINTS = 10  # measured iterations before change points / tiers are computed


@dataclass(frozen=True)
class Facts:
    """Everything the rules read about one run (built by ``collect_facts``)."""

    run_id: str
    manifest: dict
    variants: pl.DataFrame
    iters: pl.DataFrame  # stats.iterations: all iterations, warm-up flagged
    stats: pl.DataFrame  # stats.variant_stats
    tiers: dict[int, Any] = field(default_factory=dict)  # variant_id -> Tiers (levels, labels over measured)
    tier_summaries: dict[int, dict] = field(default_factory=dict)
    changepoints: dict[int, list[int]] = field(default_factory=dict)  # indices into measured iterations
    scaling: dict | None = None
    attribution: dict[int, dict] = field(default_factory=dict)
    telemetry: pl.DataFrame | None = None
    samples: pl.DataFrame | None = None  # attribution.samples_to_iterations
    iter_telemetry: pl.DataFrame | None = None  # attribution.iteration_telemetry
    budget_ms: float | None = None
    nsys: Any = None  # trace.nsys_tables.NsysTables after `tracegen nsys-import`, else None


# -- building the facts ----------------------------------------------------------------------------
def _baseline_p50(stats: pl.DataFrame, variants: pl.DataFrame, vid: int) -> float | None:
    base, kind = find_baseline(variants, stats, vid)
    if base is None or kind != "continuous":
        return None
    s = stats.filter(pl.col("variant_id") == base)
    return float(s["p50_ms"][0]) if s.height and s["p50_ms"][0] is not None else None


def _with_conveniences(summary: dict, t: Any, baseline: float | None, numbers: np.ndarray) -> dict:
    """The tier summary plus flat ``levels`` / ``shares`` / ``ratios`` lists (what the report's
    tier table and chart read) and onset/settle as recorded iteration numbers (the summary's
    ``onset``/``settle`` are positions among the measured iterations)."""
    out = dict(summary)
    levels = [float(x) for x in t.levels]
    out.setdefault("levels", levels)
    out.setdefault("shares", [float(x) for x in t.shares])
    out.setdefault("ratios", [x / baseline for x in levels] if baseline else None)
    for key in ("onset", "settle"):
        pos = summary.get(key)
        out[f"{key}_iteration"] = int(numbers[pos]) if isinstance(pos, (int, np.integer)) and 0 <= pos < numbers.size else None
    return out


def collect_facts(run: Any, *, budget_ms: float | None = None, iters: pl.DataFrame | None = None) -> Facts:
    """Everything the rules read about ``run`` (a ``trace.reader.Run``): per-variant statistics,
    change points and latency tiers of every variant's measured latency (ms), batch scaling and
    the attribution of the idle-delay variants. ``iters`` is ``stats.iterations`` of the run
    when the caller already has it (the report)."""
    if iters is None:
        iters = iterations(run.steps, latency_basis(run.manifest))
    stats = variant_stats(run.variants, iters)
    changepoints: dict[int, list[int]] = {}
    tier_objs: dict[int, Any] = {}
    tiers: dict[int, dict] = {}
    idle_ids = set(run.variants.filter(pl.col("scenario") == "idle")["variant_id"].to_list())
    ids = sorted(iters.select(pl.col("variant_id").filter(~pl.col("warmup")).unique()).to_series().to_list())
    series = []  # (variant, measured iterations, latency ms, continuous baseline p50 of an idle variant)
    for vid in ids:
        part = measured(iters, vid)  # a slice of the frame, not a copy of every measured row
        values = part["latency_ns"].cast(pl.Float64).to_numpy() / NS_PER_MS
        if values.size >= MIN_POINTS_CHANGEPOINTS:
            base = _baseline_p50(stats, run.variants, int(vid)) if vid in idle_ids else None
            series.append((int(vid), part, values, vid in idle_ids, base))
    for (vid, part, values, _, base), (cps, t, summary) in zip(series, _each(_series_facts, series)):
        changepoints[vid] = cps
        if t is not None:
            tier_objs[vid] = t
            tiers[vid] = _with_conveniences(summary, t, base, part["iteration"].to_numpy())
    samples = samples_to_iterations(iters, run.telemetry)
    per_iter_tel = iteration_telemetry(samples)
    scaling = batch_scaling(stats, run.telemetry, budget_ms=budget_ms)
    attribution = attribute(run.variants, iters, stats, run.telemetry, tier_objs, per_iter_tel)
    return Facts(
        run_id=run.id, manifest=run.manifest, variants=run.variants, iters=iters, stats=stats,
        tiers=tier_objs, tier_summaries=tiers, changepoints=changepoints, scaling=scaling,
        attribution=attribution, telemetry=run.telemetry, samples=samples, iter_telemetry=per_iter_tel,
        budget_ms=budget_ms, nsys=_nsys_tables(run),
    )


#: Points over all variants from which their change points and tiers are found in parallel
#: threads (numpy releases the GIL in its large operations: a second core cuts a 10^6-iteration
#: run's 1 s to 0.65 s); below, one after the other. The results are the same either way.
PARALLEL_POINTS = 200_000


def _series_facts(item: tuple) -> tuple[list[int], Any, dict | None]:
    """Change points, and for an idle variant its tiers and their summary, of one series."""
    _, _, values, idle, base = item
    cps = [int(c) for c in detect_changepoints(values)]
    if not idle:
        return cps, None, None
    t = detect_tiers(values)
    return cps, t, tier_summary(values, t, baseline=base)


def _each(fn: Callable[[tuple], Any], items: list[tuple]) -> list[Any]:
    if len(items) < 2 or sum(item[2].size for item in items) < PARALLEL_POINTS or (os.cpu_count() or 1) < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(fn, items))


def _nsys_tables(run: Any) -> Any:
    from tracegen.trace.nsys_tables import read_nsys_tables

    return read_nsys_tables(run.path, run.manifest) if getattr(run, "path", None) is not None else None


# -- accessors the rules share -------------------------------------------------------------------------
def row(f: Facts, vid: int) -> dict:
    return f.variants.filter(pl.col("variant_id") == vid).row(0, named=True)


def stat(f: Facts, vid: int, col: str) -> Any:
    s = f.stats.filter(pl.col("variant_id") == vid)
    return s[col][0] if s.height and col in s.columns else None


def name(f: Facts, vid: int) -> str:
    return row(f, vid)["name"]


def _ids(f: Facts, paced: bool) -> list[int]:
    have = set(f.stats.filter(pl.col("n") > 0)["variant_id"].to_list())
    return [r["variant_id"] for r in f.variants.sort("variant_id").iter_rows(named=True)
            if is_paced(r) == paced and r["variant_id"] in have]


def continuous_ids(f: Facts) -> list[int]:
    return _ids(f, paced=False)


def paced_ids(f: Facts) -> list[int]:
    return _ids(f, paced=True)


def gap_label(r: dict) -> str:
    return f"{r['idle_ms']:g} ms {r['pacing']} gap"


def schedule_of(f: Facts, vid: int) -> dict | None:
    """The gap schedule of a ``--schedule`` variant as the runner recorded it (spec, segments
    with their start iteration, change points as iteration numbers), else None."""
    for a in f.manifest.get("arrivals") or []:
        if a.get("variant_id") == vid and a.get("schedule"):
            return a["schedule"]
    return None


def median_by_gap(f: Facts, vid: int, schedule: dict) -> dict[float, float]:
    """Median latency (ms) of a scheduled variant's measured iterations per scheduled gap."""
    m = measured(f.iters, vid)
    numbers, y = m["iteration"].to_numpy(), m["latency_ns"].to_numpy() / NS_PER_MS
    out: dict[float, list] = {}
    for seg in schedule["segments"]:
        lo = int(seg["start_iteration"])
        inside = (numbers >= lo) & (numbers < lo + int(seg["iterations"]))
        out.setdefault(float(seg["gap_ms"]), []).append(y[inside])
    return {gap: float(np.median(np.concatenate(parts))) for gap, parts in sorted(out.items())
            if sum(p.size for p in parts)}


def per_variant(fn: Callable[[Any, int], Any]) -> Callable[[Any, int], Any]:
    """Compute ``fn(f, vid)`` once per Facts and variant: the rules ask for the same variant's
    tiers and gap penalty many times (9 and 7 times on an idle run), each a pass over its
    measured iterations. Kept in the instance (not a dataclass field, so ``Facts(**fields)``
    and ``dataclasses.replace`` start empty); the result is shared, callers do not change it."""

    @functools.wraps(fn)
    def once(f: Any, vid: int) -> Any:
        memo = f.__dict__.setdefault("_per_variant", {})  # a frozen dataclass's __dict__ still takes keys
        key = (fn.__qualname__, vid)
        if key not in memo:
            memo[key] = fn(f, vid)
        return memo[key]

    return once


def iteration_numbers(f: Facts, vid: int) -> np.ndarray:
    return measured(f.iters, vid)["iteration"].to_numpy()


def ranges(numbers: np.ndarray, mask: np.ndarray, *, max_gap: int = 5, keep: int = 5) -> tuple[tuple[int, int], ...]:
    """Inclusive (first, last) iteration numbers of the runs where ``mask`` holds, runs closer
    than ``max_gap`` merged; the ``keep`` longest (the earlier of equally long ones), in order."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return ()
    breaks = np.flatnonzero(np.diff(idx) > max_gap)
    first, last = idx[np.r_[0, breaks + 1]], idx[np.r_[breaks, idx.size - 1]]
    longest = np.sort(np.argsort(first - last, kind="stable")[:keep])
    return tuple((int(numbers[a]), int(numbers[b])) for a, b in zip(first[longest], last[longest]))


def fmt_ranges(rs: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in rs)


def nsys_hint(f: Facts, vid: int, rs: tuple[tuple[int, int], ...], steps: tuple[str, ...],
              compare: str | None = None) -> str:
    """Where to look in Nsight Systems (NVTX domain "tracegen")."""
    where = f"iterations {fmt_ranges(rs)}" if rs else "its iterations"
    cats = ", ".join(f'"{s}"' for s in steps)
    rows = "the CUDA rows beneath them" if has_gpu_times(f.iters) else "the thread's CPU samples and OS runtime rows"
    text = (f'NVTX domain "tracegen": open the range "{name(f, vid)}", {where} (iteration ranges carry the '
            f"iteration index as payload), and the step ranges with category {cats} and {rows}")
    if compare:
        text += f"; compare with {compare}"
    text += "."
    if has_gpu_times(f.iters):  # the exact commands; a CPU run has no CUDA rows to open
        rep = (f.manifest.get("nsys") or {}).get("report")
        if rep:
            text += (f" Commands: `nsys-ui RUN_DIR/{rep}`; `nsys stats -r nvtx_pushpop_trace,cuda_gpu_trace "
                     f"RUN_DIR/{rep}`; `tracegen nsys-import RUN_DIR` for per-step kernel tables.")
        else:
            text += (" Commands: re-run with `tracegen run --nsys` (same options; add `--nsys-variants` / "
                     "`--nsys-iterations` to capture only these), then `nsys-ui RUN_DIR/profile.nsys-rep` and "
                     "`tracegen nsys-import RUN_DIR` for per-step kernel tables.")
    return text


def max_sm_clock(f: Facts) -> tuple[float | None, str]:
    """The GPU's maximum SM clock and where it comes from: the manifest when recorded
    (``"manifest"``), else the highest SM clock sampled in this run (``"observed"``)."""
    gpu = f.manifest.get("gpu") or {}

    def walk(d: Any, path: str = "") -> float | None:
        if isinstance(d, dict):
            for k, v in d.items():
                r = walk(v, f"{path}.{k}".lower())
                if r is not None:
                    return r
        elif isinstance(d, (int, float)) and "max" in path and ("sm" in path or "graphics" in path) \
                and "mem" not in path.rsplit(".", 1)[-1]:
            return float(d)
        return None

    v = walk(gpu)
    if v:
        return v, "manifest"
    tel = f.telemetry
    if tel is not None and tel.height and "sm_clock_mhz" in tel.columns and tel["sm_clock_mhz"].null_count() < tel.height:
        return as_float(tel["sm_clock_mhz"].max()), "observed"
    return None, "unknown"
