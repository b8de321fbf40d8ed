"""What the GPU did in slow iterations against fast ones, from an imported Nsight Systems report
(``nsys_steps.parquet`` / ``nsys_kernels.parquet``, see ``tracegen.importers.nsys``).

A *comparison* pairs a slow set of iterations with a fast one: the slowest latency tier of a
variant against its fastest tier, or a paced variant (a gap before every inference) against its
continuous baseline. For both sets it takes medians per iteration of

* compute: the summed kernel time (a CUDA graph traced as a whole counts as its kernels),
* bubbles: time inside the CUDA-event window of the infer step when no kernel of it ran
  (event GPU time - busy time), and the gaps between the step's own kernels,
* launch latency: from the launching API call to the first kernel's start,

and per kernel (name + occurrence within the iteration, so a network's repeated convolutions
pair up) the median duration in each set. The verdict, with its thresholds:

* ``clocks``: compute grew by >= COMPUTE_MIN (5 %) and carries >= COMPUTE_SHARE (25 %) of the
  extra latency, and kernels holding >= UNIFORM_SHARE (70 %) of the fast compute time grew within
  half of the overall ratio's excess of it: every kernel slower by about the same factor, which
  is what a lower SM clock does;
* ``few-kernels``: compute grew, but FEW_KERNELS (3) kernels carry >= FEW_SHARE (60 %) of the
  extra compute: memory (HBM clock, cache misses) or contention from other work on the GPU;
* ``mixed``: compute grew, neither pattern;
* ``host``: compute did not grow, and the bubbles (or launch latency plus gaps) carry >=
  HOST_SHARE (50 %) of the extra latency: the GPU waited for the host (launch path, wake-up);
* ``outside-gpu``: neither compute nor bubbles explain it: the time went to host-only steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

COMPUTE_MIN = 0.05
COMPUTE_SHARE = 0.25
UNIFORM_SHARE = 0.70
FEW_KERNELS = 3
FEW_SHARE = 0.60
HOST_SHARE = 0.50
MIN_ITERATIONS = 3  # iterations with kernel data needed in each set
PACED_SLOWER = 1.05  # a paced variant is compared with its baseline when its p50 is >= 5 % higher


@dataclass(frozen=True)
class Comparison:
    """A slow and a fast set of iterations and what the GPU did in each (ms, medians)."""

    kind: str  # "tiers" (within one variant) | "gap" (paced variant vs continuous baseline)
    slow_variant: int
    fast_variant: int
    slow_iterations: tuple[int, ...]
    fast_iterations: tuple[int, ...]
    numbers: dict  # latency / compute / bubble / gap / launch medians, fast and slow, in ms
    kernels: pl.DataFrame  # per kernel key: name, occurrence, fast_us, slow_us, ratio, delta_us
    verdict: str
    per_kernel: bool  # False when graphs were traced as a whole (no per-kernel table)
    examples: tuple[int, int] = (0, 0)  # (slow, fast) iteration of median latency in its set
    notes: list[str] = field(default_factory=list)

    @property
    def extra_ms(self) -> float:
        return self.numbers["latency_slow_ms"] - self.numbers["latency_fast_ms"]


def per_iteration(steps: pl.DataFrame, iters: pl.DataFrame) -> pl.DataFrame:
    """One row per (variant_id, iteration) with kernel data: compute, gaps, launch latency of the
    infer step, busy time, and the run's latency and infer event time (ns)."""
    by_it = steps.group_by("variant_id", "iteration").agg(
        (pl.col("kernel_ns") + pl.col("graph_ns")).sum().alias("compute_ns"),
        pl.col("gap_ns").fill_null(0).sum().alias("gaps_ns"),
        pl.col("busy_ns").filter(pl.col("step") == "infer").sum().alias("infer_busy_ns"),
        pl.col("launch_latency_ns").filter(pl.col("step") == "infer").first().alias("launch_ns"),
        (pl.col("kernels") + pl.col("graphs")).sum().alias("ops"),
        pl.col("graphs").sum().alias("graphs"),
    ).filter(pl.col("ops") > 0)
    cols = ["variant_id", "iteration", "latency_ns"] + (["infer_gpu_ns"] if "infer_gpu_ns" in iters.columns else [])
    out = by_it.join(iters.select(cols), on=["variant_id", "iteration"], how="inner")
    if "infer_gpu_ns" in out.columns:
        out = out.with_columns((pl.col("infer_gpu_ns") - pl.col("infer_busy_ns")).clip(0).alias("bubble_ns"))
    else:
        out = out.with_columns(pl.lit(None, pl.Int64).alias("bubble_ns"))
    return out


def kernel_keys(kernels: pl.DataFrame) -> pl.DataFrame:
    """Kernels (and whole graphs) with ``occurrence``: the how-many-th of its name in its iteration."""
    k = kernels.filter(pl.col("kind").is_in(["kernel", "graph"])).sort("variant_id", "iteration", "start_ns")
    return k.with_columns(pl.int_range(pl.len()).over("variant_id", "iteration", "name").alias("occurrence"))


def _med_ms(df: pl.DataFrame, col: str) -> float | None:
    if col not in df.columns or df[col].null_count() == df.height:
        return None
    v = df[col].median()
    return None if v is None else float(v) / 1e6


def compare(kind: str, slow: tuple[int, list[int]], fast: tuple[int, list[int]], it_table: pl.DataFrame,
            keyed: pl.DataFrame) -> Comparison | None:
    """Compare the iterations ``slow`` = (variant, iterations) with ``fast``; None when either has
    fewer than MIN_ITERATIONS iterations with kernel data."""
    def pick(vid: int, its: list[int], df: pl.DataFrame) -> pl.DataFrame:
        return df.filter((pl.col("variant_id") == vid) & pl.col("iteration").is_in(its))

    s_it, f_it = pick(*slow, it_table), pick(*fast, it_table)
    if s_it.height < MIN_ITERATIONS or f_it.height < MIN_ITERATIONS:
        return None
    n: dict = {}
    for label, part in (("slow", s_it), ("fast", f_it)):
        for col, key in (("latency_ns", "latency"), ("compute_ns", "compute"), ("bubble_ns", "bubble"),
                         ("gaps_ns", "gaps"), ("launch_ns", "launch")):
            n[f"{key}_{label}_ms"] = _med_ms(part, col)
        n[f"iterations_{label}"] = part.height
    whole_graphs = bool(s_it["graphs"].sum() + f_it["graphs"].sum())
    ks = pick(*slow, keyed).group_by("name", "occurrence").agg(pl.col("duration_ns").median().alias("slow_ns"))
    kf = pick(*fast, keyed).group_by("name", "occurrence").agg(pl.col("duration_ns").median().alias("fast_ns"))
    table = (
        kf.join(ks, on=["name", "occurrence"], how="inner")
        .with_columns((pl.col("slow_ns") / pl.col("fast_ns")).alias("ratio"),
                      ((pl.col("slow_ns") - pl.col("fast_ns")) / 1e3).alias("delta_us"),
                      (pl.col("fast_ns") / 1e3).alias("fast_us"), (pl.col("slow_ns") / 1e3).alias("slow_us"))
        .select("name", "occurrence", "fast_us", "slow_us", "ratio", "delta_us")
        .sort("delta_us", descending=True)
    )
    verdict, notes = _verdict(n, table, whole_graphs)
    return Comparison(kind, slow[0], fast[0], tuple(int(i) for i in s_it["iteration"].sort()),
                      tuple(int(i) for i in f_it["iteration"].sort()), n, table, verdict, not whole_graphs,
                      (_typical(s_it), _typical(f_it)), notes)


def _typical(part: pl.DataFrame) -> int:
    """The iteration whose latency is closest to the set's median (the one to draw)."""
    med = part["latency_ns"].median()
    return int(part.with_columns((pl.col("latency_ns") - med).abs().alias("_d")).sort("_d", "iteration")["iteration"][0])


def _verdict(n: dict, table: pl.DataFrame, whole_graphs: bool) -> tuple[str, list[str]]:
    notes: list[str] = []
    extra = (n["latency_slow_ms"] or 0) - (n["latency_fast_ms"] or 0)
    d_compute = (n["compute_slow_ms"] or 0) - (n["compute_fast_ms"] or 0)
    # The GPU waiting for the host: the infer step's event window minus its busy time (this holds
    # the launch path's delay), or, without events, launch latency plus the gaps between kernels.
    d = {k: (n[f"{k}_slow_ms"] or 0) - (n[f"{k}_fast_ms"] or 0) for k in ("bubble", "launch", "gaps")}
    d_host = max(d["bubble"], d["launch"] + d["gaps"])
    if extra <= 0:
        return "none", notes
    fast_compute = n["compute_fast_ms"] or 0
    if fast_compute > 0 and d_compute >= COMPUTE_MIN * fast_compute and d_compute >= COMPUTE_SHARE * extra:
        if whole_graphs or table.height == 0:
            notes.append("CUDA graphs were traced as a whole: record with --cuda-graph-trace=node to see which "
                         "kernels grew")
            return "mixed", notes
        total_fast = float(table["fast_us"].sum())
        ratio = (n["compute_slow_ms"] or 0) / fast_compute
        lo, hi = 1 + 0.5 * (ratio - 1), 1 + 1.5 * (ratio - 1)
        uniform = float(table.filter(pl.col("ratio").is_between(lo, hi))["fast_us"].sum()) / total_fast if total_fast else 0
        grown = table.filter(pl.col("delta_us") > 0)["delta_us"]
        top = float(grown.head(FEW_KERNELS).sum()) / float(grown.sum()) if grown.len() and grown.sum() > 0 else 0
        if uniform >= UNIFORM_SHARE:
            return "clocks", notes
        if top >= FEW_SHARE:
            return "few-kernels", notes
        return "mixed", notes
    if d_host >= HOST_SHARE * extra:
        return "host", notes
    return "outside-gpu", notes


def comparisons(f, tables) -> list[Comparison]:
    """Every slow/fast comparison the run's kernel data supports (``f``: analysis Facts)."""
    from tracegen.analysis.attribution import find_baseline, measured
    from tracegen.analysis.facts import is_paced, row, stat

    it_table = per_iteration(tables.steps, f.iters)
    keyed = kernel_keys(tables.kernels)
    out: list[Comparison] = []
    for vid, t in sorted(f.tiers.items()):
        if len(t.levels) < 2:
            continue
        numbers = measured(f.iters, vid)["iteration"].to_numpy()
        labels = np.asarray(t.labels)
        slow = numbers[labels == labels.max()].tolist()
        fast = numbers[labels == labels.min()].tolist()
        c = compare("tiers", (vid, slow), (vid, fast), it_table, keyed)
        if c is not None:
            out.append(c)
    for r in f.variants.iter_rows(named=True):
        vid = r["variant_id"]
        if not is_paced(r):
            continue
        base, how = find_baseline(f.variants, f.stats, vid)
        p, b = stat(f, vid, "p50_ms"), stat(f, base, "p50_ms") if base is not None else None
        if base is None or how != "continuous" or not p or not b or p < PACED_SLOWER * b:
            continue
        slow = measured(f.iters, vid)["iteration"].to_list()
        fast = measured(f.iters, base)["iteration"].to_list()
        c = compare("gap", (vid, slow), (base, fast), it_table, keyed)
        if c is not None and row(f, vid):
            out.append(c)
    return out
