"""Charts as pure functions: polars frames in, altair charts out (rendered by report.render)."""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import numpy as np
import polars as pl

from tracegen.report.downsample import downsample
from tracegen.trace.schema import STEP_ORDER

WIDTH = 720
STEP_COLORS = ["#bbbbbb", "#e6ab02", "#d95f02", "#1b9e77", "#e7298a", "#d62728", "#7570b3"]


def _values(rows: list[dict[str, Any]]) -> alt.Data:
    # JSON has no NaN: missing numbers become null.
    clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]
    return alt.Data(values=clean)


def variant_label(row: dict[str, Any]) -> str:
    """Short legend label: what distinguishes idle variants from one another."""
    parts = ["no gap" if row["pacing"] == "none" else f"{row['idle_ms']:g} ms {row['pacing']}", row["launch"]]
    if row.get("sync_mode", "auto") != "auto":
        parts.append(f"sync {row['sync_mode']}")
    if row.get("pipeline", "full") != "full":
        parts.append(row["pipeline"])
    return ", ".join(parts)


def latency_trace(iters: pl.DataFrame, variants: pl.DataFrame, variant_ids: list[int], *,
                  tiers: dict[int, dict] | None = None, changepoints: dict[int, list[int]] | None = None,
                  max_points: int = 1500, title: str = "") -> alt.LayerChart:
    """Latency per iteration (ms) of the given variants, warm-up shaded, tier levels as dashed
    rules and change points as vertical rules. Long series are downsampled for drawing."""
    lines, bands, rules, cps = [], [], [], []
    warmup = 0
    for row in variants.filter(pl.col("variant_id").is_in(variant_ids)).iter_rows(named=True):
        vid, label = row["variant_id"], variant_label(row)
        v = iters.filter(pl.col("variant_id") == vid).sort("iteration")
        if v.height == 0:
            continue
        warmup = max(warmup, row["warmup"])
        x = v["iteration"].to_numpy()
        y = v["latency_ns"].to_numpy() / 1e6
        measured_cps = [c + row["warmup"] for c in (changepoints or {}).get(vid, [])]
        d = downsample(x, y, max_points=max_points, keep=measured_cps)
        for xi, yi, lo, hi in zip(d["x"], d["y"], d["lo"], d["hi"]):
            lines.append({"iteration": float(xi), "latency_ms": float(yi), "lo": float(lo), "hi": float(hi), "variant": label})
        for level in (tiers or {}).get(vid, {}).get("levels", []):
            rules.append({"level_ms": float(level), "variant": label})
        for c in measured_cps:
            cps.append({"iteration": int(c), "variant": label})
    color = alt.Color("variant:N", title="variant", legend=alt.Legend(orient="bottom", columns=3))
    base = alt.Chart(_values(lines)).encode(x=alt.X("iteration:Q", title="iteration"), color=color)
    layers = []
    if warmup:
        layers.append(alt.Chart(_values([{"start": 0, "end": warmup}])).mark_rect(color="#eeeeee").encode(
            x="start:Q", x2="end:Q"))
    if len(lines) > len({r["variant"] for r in lines}) * 2 and any(r["hi"] != r["lo"] for r in lines):
        layers.append(base.mark_area(opacity=0.15).encode(y="lo:Q", y2="hi:Q"))
    layers.append(base.mark_line(strokeWidth=1.2, interpolate="step-after").encode(
        y=alt.Y("latency_ms:Q", title="latency (ms)", scale=alt.Scale(zero=False)),
        tooltip=["variant:N", "iteration:Q", alt.Tooltip("latency_ms:Q", format=".3f")]))
    if rules:
        layers.append(alt.Chart(_values(rules)).mark_rule(strokeDash=[4, 3]).encode(y="level_ms:Q", color=color))
    if cps:
        layers.append(alt.Chart(_values(cps)).mark_rule(opacity=0.6).encode(x="iteration:Q", color=color))
    return alt.layer(*layers).properties(width=WIDTH, height=260, title=title)


def batch_scaling(stats: pl.DataFrame) -> alt.HConcatChart:
    """Per-image time and throughput against batch size (log2 axes), one line per launch mode."""
    rows = []
    for r in stats.filter((pl.col("scenario") == "batch") & (pl.col("n") > 0)).sort("batch").iter_rows(named=True):
        series = ", ".join(p for p in (r["launch"], None if r["sync_mode"] == "auto" else f"sync {r['sync_mode']}",
                                       None if r["pipeline"] == "full" else r["pipeline"]) if p)
        rows.append({"batch": r["batch"], "per_image_ms": r["per_image_ms"], "throughput_ips": r["throughput_ips"],
                     "p50_ms": r["p50_ms"], "series": series})
    base = alt.Chart(_values(rows)).encode(
        x=alt.X("batch:Q", scale=alt.Scale(type="log", base=2), title="batch size"),
        color=alt.Color("series:N", title="launch", legend=alt.Legend(orient="bottom")),
        tooltip=["batch:Q", alt.Tooltip("per_image_ms:Q", format=".3f"), alt.Tooltip("throughput_ips:Q", format=",.0f"),
                 alt.Tooltip("p50_ms:Q", format=".3f")],
    )
    per_image = base.mark_line(point=True).encode(y=alt.Y("per_image_ms:Q", title="per-image time (ms, p50 / batch)"))
    throughput = base.mark_line(point=True).encode(y=alt.Y("throughput_ips:Q", title="throughput (images/s)"))
    return alt.hconcat(per_image.properties(width=WIDTH // 2 - 30, height=240, title="per-image time"),
                       throughput.properties(width=WIDTH // 2 - 30, height=240, title="throughput"))


def step_breakdown(medians: pl.DataFrame, variants: pl.DataFrame, clock: str = "host") -> alt.Chart:
    """Median time per step for each variant, stacked in pipeline order (the idle gap excluded)."""
    names = dict(zip(variants["variant_id"], variants["name"]))
    order = [s for s in STEP_ORDER if s != "idle"]
    rows = [{"variant": names.get(r["variant_id"], str(r["variant_id"])), "step": r["step"], "median_ms": r["median_ms"],
             "order": order.index(r["step"])}
            for r in medians.filter((pl.col("clock") == clock) & (pl.col("step") != "idle")).iter_rows(named=True)]
    return alt.Chart(_values(rows)).mark_bar().encode(
        y=alt.Y("variant:N", title=None, sort=None),
        x=alt.X("median_ms:Q", title=f"median {clock} time per step (ms)", stack="zero"),
        color=alt.Color("step:N", scale=alt.Scale(domain=list(STEP_ORDER), range=STEP_COLORS),
                        legend=alt.Legend(orient="bottom")),
        order=alt.Order("order:Q"),
        tooltip=["variant:N", "step:N", alt.Tooltip("median_ms:Q", format=".4f")],
    ).properties(width=WIDTH - 200, height=max(60, 22 * len(names)))


def telemetry_timeline(telemetry: pl.DataFrame, variants: pl.DataFrame) -> alt.VConcatChart | None:
    """GPU SM clock and power, or CPU frequency, over the run's time, coloured by variant."""
    names = dict(zip(variants["variant_id"], variants["name"]))
    panels = []
    for column, title, source in (("sm_clock_mhz", "SM clock (MHz)", "gpu"), ("power_w", "GPU power (W)", "gpu"),
                                  ("cpu_freq_mhz", "CPU frequency (MHz, mean of cores)", "cpu")):
        if column not in telemetry.columns:
            continue
        t = telemetry.filter(pl.col(column).is_not_null())
        if t.height == 0 or t[column].n_unique() < 1:
            continue
        x = (t["t_ns"].to_numpy() / 1e9)
        d = downsample(x, t[column].to_numpy(), max_points=1500)
        vid = t["variant_id"].to_list()
        idx = np.searchsorted(x, d["x"], side="left").clip(0, len(x) - 1)
        rows = [{"t_s": float(a), "value": float(b), "variant": names.get(vid[i], "between variants")}
                for a, b, i in zip(d["x"], d["y"], idx)]
        panels.append(alt.Chart(_values(rows)).mark_point(size=8, filled=True).encode(
            x=alt.X("t_s:Q", title="time since run start (s)"), y=alt.Y("value:Q", title=title, scale=alt.Scale(zero=False)),
            color=alt.Color("variant:N", legend=None), tooltip=["variant:N", "t_s:Q", "value:Q"],
        ).properties(width=WIDTH, height=120))
    return alt.vconcat(*panels) if panels else None


def clock_vs_latency(iters: pl.DataFrame, telemetry: pl.DataFrame, variants: pl.DataFrame,
                     variant_ids: list[int]) -> alt.VConcatChart | None:
    """Latency of the given variants and the GPU SM clock (or CPU frequency) on one time axis,
    so a clock drop can be matched to the iterations it slowed."""
    column = "sm_clock_mhz" if telemetry["sm_clock_mhz"].drop_nulls().len() else "cpu_freq_mhz"
    label = "SM clock (MHz)" if column == "sm_clock_mhz" else "CPU frequency (MHz)"
    names = dict(zip(variants["variant_id"], variants["name"]))
    lat = iters.filter(pl.col("variant_id").is_in(variant_ids)).sort("start_ns")
    if lat.height == 0:
        return None
    t0, t1 = lat["start_ns"].min(), lat["start_ns"].max()
    tel = telemetry.filter(pl.col(column).is_not_null() & pl.col("t_ns").is_between(t0, t1))
    lat_rows = [{"t_s": r["start_ns"] / 1e9, "latency_ms": r["latency_ns"] / 1e6, "variant": names.get(r["variant_id"])}
                for r in lat.select("start_ns", "latency_ns", "variant_id").iter_rows(named=True)]
    tel_rows = [{"t_s": r["t_ns"] / 1e9, "value": r[column]} for r in tel.select("t_ns", column).iter_rows(named=True)]
    x = alt.X("t_s:Q", title="time since run start (s)", scale=alt.Scale(zero=False))
    top = alt.Chart(_values(lat_rows)).mark_point(size=10, filled=True).encode(
        x=x, y=alt.Y("latency_ms:Q", title="latency (ms)", scale=alt.Scale(zero=False)),
        color=alt.Color("variant:N", legend=alt.Legend(orient="bottom"))).properties(width=WIDTH, height=180)
    bottom = alt.Chart(_values(tel_rows)).mark_line(interpolate="step-after").encode(
        x=x, y=alt.Y("value:Q", title=label, scale=alt.Scale(zero=False))).properties(width=WIDTH, height=110)
    return alt.vconcat(top, bottom)
