"""Charts as pure functions: polars frames in, altair charts out (``report.render`` embeds them).

Data goes into each spec as a plain list of rows (``alt.Data(values=...)``), so no pandas is
involved; values are rounded for drawing only (tables and ``stats.json`` keep full precision).
Colours mean the same on every chart of a page: pacing for latency traces, step for breakdowns.
"""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import numpy as np
import polars as pl

from tracegen.report.downsample import downsample
from tracegen.trace.schema import PACINGS, STEP_ORDER

WIDTH = 1000
MAX_POINTS = 2000  # per drawn series; more is slower to draw and no more readable
PACING_COLORS = ("#4d4d4d", "#d95f02", "#1b9e77", "#7570b3")  # none, sleep, spin, keepalive
DRAWN_STEPS = tuple(s for s in STEP_ORDER if s != "idle")  # the gap is pacing, not work
STEP_COLORS = ("#e6ab02", "#a6761d", "#1b9e77", "#e7298a", "#d62728", "#7570b3")
PACING_ORDER = {p: i for i, p in enumerate(PACINGS)}


# -- helpers ------------------------------------------------------------------------------------

def _num(v: Any, digits: int = 4) -> Any:
    """JSON-safe number for a spec: NaN/inf become null, floats are rounded for size."""
    t = type(v)
    if t is float:  # most values of a big chart: the same as below, without the generic checks
        if v - v != 0.0:  # NaN or inf
            return None
        return int(v) if v.is_integer() and abs(v) < 2**53 else round(v, digits)
    if t is int or t is str or t is bool or v is None:
        return v
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return None
        return int(v) if v.is_integer() and abs(v) < 2**53 else round(v, digits)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _values(rows: list[dict[str, Any]]) -> dict[str, Any]:
    # A plain {"values": ...} rather than alt.Data: altair then skips validating every row,
    # which costs seconds on a long trace (measured: 0.38 s vs 0.01 s for 3,000 rows).
    return {"values": [{k: _num(v) for k, v in r.items()} for r in rows]}


def _is(kind: str) -> str:
    return f"datum.kind === '{kind}'"


def variant_label(row: dict[str, Any]) -> str:
    """Short label of what distinguishes idle variants from one another."""
    gap = "no gap" if row["pacing"] == "none" else f"{row['idle_ms']:g} ms {row['pacing']}"
    parts = [gap, row["launch"]]
    if row.get("batch", 1) != 1:
        parts.append(f"batch {row['batch']}")
    if row.get("sync_mode", "auto") != "auto":
        parts.append(f"sync {row['sync_mode']}")
    if row.get("pipeline", "full") != "full":
        parts.append(f"{row['pipeline']} only")
    return ", ".join(parts)


def idle_order(variants: pl.DataFrame) -> list[int]:
    """Variant ids in reading order: grouped by launch mode (and sync mode, batch, pipeline),
    inside a group the no-gap baseline first, then by gap and pacing, so each paced variant
    sits right under the baseline it is compared with."""
    rows = variants.to_dicts()
    rows.sort(key=lambda r: (r["launch"], r.get("sync_mode", ""), r["batch"], r.get("pipeline", ""),
                             r["pacing"] != "none", r["idle_ms"], PACING_ORDER.get(r["pacing"], 9), r["variant_id"]))
    return [r["variant_id"] for r in rows]


def _pacing_color(title: str | None = "pacing") -> alt.Color:
    return alt.Color("pacing:N", title=title, scale=alt.Scale(domain=list(PACINGS), range=list(PACING_COLORS)),
                     legend=alt.Legend(orient="top", symbolOpacity=1) if title else None)


def _y_range(ys: list[np.ndarray], levels: list[float]) -> tuple[float, float]:
    """Axis range that shows every tier but not a single cold-start spike squashing the rest:
    up to the 99.5th percentile (or the top tier) with a margin, or the true max if that is
    close anyway. Points above are drawn on the top edge as triangles."""
    allv = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.array([1.0])
    if allv.size == 0:
        allv = np.array([1.0])
    top = max(float(np.quantile(allv, 0.995)), max(levels, default=0.0)) * 1.08
    if allv.max() <= top * 1.1:
        top = float(allv.max()) * 1.02
    bottom = min(float(allv.min()), min(levels, default=math.inf)) * 0.96
    return bottom, top


# -- latency per iteration ------------------------------------------------------------------------

def latency_trace(iters: pl.DataFrame, variants: pl.DataFrame, variant_ids: list[int], *,
                  tiers: dict[int, dict] | None = None, changepoints: dict[int, list[int]] | None = None,
                  highlight: dict[int, list[tuple[int, int]]] | None = None, max_points: int = MAX_POINTS,
                  title: str = "", row_height: int = 110, cache: dict | None = None) -> alt.FacetChart | None:
    """Latency (ms) of every iteration, one row per variant in the order given, on one shared
    axis: warm-up shaded, tier levels as dashed rules, change points as thin vertical rules.

    ``changepoints`` are indices into each variant's measured iterations (as the analysis
    returns them); they are drawn at their iteration number (warm-up counted). ``highlight``
    shades inclusive iteration ranges per variant (a finding's iterations). Long series are
    downsampled per tier, keeping raw points around change points and tier onset/settle.
    ``cache`` (a dict kept by the caller) holds each variant's thinned series, so a page that
    draws one variant in several charts thins it once."""
    meta = {r["variant_id"]: r for r in variants.to_dicts()}
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    ys, all_levels = [], []
    for vid in variant_ids:
        if vid not in meta:
            continue
        row = meta[vid]
        tier = (tiers or {}).get(vid) or {}
        levels = [float(l) for l in tier.get("levels") or []]
        warm = int(row["warmup"])
        cps = [int(c) + warm for c in (changepoints or {}).get(vid, [])]
        marks = cps + [tier[k] for k in ("onset_iteration", "settle_iteration") if tier.get(k) is not None]
        key = (vid, tuple(marks), tuple(levels), max_points)
        if cache is None or key not in cache:
            v = iters.filter(pl.col("variant_id") == vid).sort("iteration")
            x = v["iteration"].to_numpy()
            y = v["latency_ns"].to_numpy() / 1e6
            measured = y[~v["warmup"].to_numpy()] if v["warmup"].sum() < v.height else y
            entry = (v.height, downsample(x, y, max_points=max_points, keep=list(np.searchsorted(x, marks)), levels=levels),
                     measured)
            if cache is not None:
                cache[key] = entry
        else:
            entry = cache[key]
        height, d, measured = entry
        if height == 0:
            continue
        label = variant_label(row)
        if label in labels:
            label = f"{label} (#{vid})"
        labels.append(label)
        common = {"variant": label, "pacing": row["pacing"]}
        rows += [{"kind": "pt", **common, "iteration": a, "latency_ms": b, "lo": c, "hi": e, "n": k}
                 for a, b, c, e, k in zip(*(d[c].tolist() for c in ("x", "y", "lo", "hi", "n")))]  # Python numbers: faster below
        rows += [{"kind": "tier", **common, "level_ms": l, "text": f"{l:.3g} ms"} for l in levels]
        rows += [{"kind": "cp", **common, "iteration": c} for c in cps]
        if warm:
            rows.append({"kind": "warm", **common, "start": 0, "end": warm})
        rows += [{"kind": "mark", **common, "start": a, "end": b + 1} for a, b in (highlight or {}).get(vid, [])]
        ys.append(measured)
        all_levels += levels
    if not labels:
        return None
    bottom, top = _y_range(ys, all_levels)
    for r in rows:  # what lies above the axis is marked on its top edge, true values in the tooltip
        if r["kind"] == "pt":
            r["max_ms"], r["over"] = r["hi"], bool(r["hi"] > top)
            r["clipped"] = bool(r["latency_ms"] > top)
            r["y"], r["hi"] = min(r["latency_ms"], top), min(r["hi"], top)
    x = alt.X("iteration:Q", title="iteration (warm-up first)", scale=alt.Scale(nice=False))
    y_scale = alt.Scale(domain=[bottom, top], nice=False, zero=False)
    tooltip = ["variant:N", "iteration:Q", alt.Tooltip("latency_ms:Q", title="latency (ms)", format=".3f"),
               alt.Tooltip("max_ms:Q", title="max (ms)", format=".3f"), alt.Tooltip("n:Q", title="iterations in this point")]
    base = alt.Chart()
    layers = [
        base.transform_filter(_is("warm")).mark_rect(color="#ececec").encode(x="start:Q", x2="end:Q"),
        base.transform_filter(_is("mark")).mark_rect(color="#fde68a", opacity=0.55).encode(x="start:Q", x2="end:Q"),
        base.transform_filter(_is("cp")).mark_rule(color="#888888", strokeWidth=1, opacity=0.45).encode(x=x),
        base.transform_filter(_is("pt") + " && datum.hi > datum.lo").mark_rule(opacity=0.25).encode(
            x=x, y=alt.Y("lo:Q", scale=y_scale), y2="hi:Q", color=_pacing_color()),
        base.transform_filter(_is("pt") + " && !datum.clipped").mark_circle(size=12, opacity=0.75).encode(
            x=x, y=alt.Y("y:Q", title="latency (ms)", scale=y_scale), color=_pacing_color(), tooltip=tooltip),
        base.transform_filter(_is("pt") + " && datum.over").mark_point(shape="triangle-up", filled=True, size=30).encode(
            x=x, y=alt.Y("hi:Q", scale=y_scale), color=_pacing_color(), tooltip=tooltip),
        base.transform_filter(_is("tier")).mark_rule(strokeDash=[5, 3], strokeWidth=1.2, color="#222222").encode(
            y=alt.Y("level_ms:Q", scale=y_scale), tooltip=[alt.Tooltip("level_ms:Q", title="tier level (ms)", format=".3f")]),
        base.transform_filter(_is("tier")).mark_text(align="left", dx=4, fontSize=10, color="#222222").encode(
            x=alt.value(WIDTH), y=alt.Y("level_ms:Q", scale=y_scale), text="text:N"),
    ]
    header = alt.Header(title=None, labelAngle=0, labelOrient="top", labelAnchor="start", labelAlign="left",
                        labelFontSize=12, labelFontWeight="bold")
    chart = alt.layer(*layers).properties(width=WIDTH, height=row_height)
    facet = chart.facet(row=alt.Row("variant:N", sort=labels, header=header), data=_values(rows), spacing=14)
    return facet.properties(title=title) if title else facet


# -- batch scaling ---------------------------------------------------------------------------------

def series_label(r: dict[str, Any]) -> str:
    """What distinguishes batch-scenario variants of one batch size: launch (sync, pipeline)."""
    parts = [r["launch"], None if r.get("sync_mode", "auto") == "auto" else f"sync {r['sync_mode']}",
             None if r.get("pipeline", "full") == "full" else f"{r['pipeline']} only"]
    return ", ".join(p for p in parts if p)


def batch_scaling(stats: pl.DataFrame, *, budget_ms: float | None = None,
                  knee_batch: int | None = None) -> alt.HConcatChart | None:
    """Latency (p50 solid, p99 dashed), per-image time (p50 / batch) and throughput (images/s)
    against batch size on log2 axes, one line per launch mode; the latency budget and the knee
    as rules when given."""
    batch = stats.filter((pl.col("scenario") == "batch") & (pl.col("n") > 0)).sort("batch")
    if batch.height == 0:
        return None
    rows = [{"batch": r["batch"], "series": series_label(r), "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
             "per_image_ms": r["per_image_ms"], "throughput_ips": r["throughput_ips"]}
            for r in batch.iter_rows(named=True)]
    panel = (WIDTH - 60) // 3
    x = alt.X("batch:Q", title="batch size", scale=alt.Scale(type="log", base=2, nice=False),
              axis=alt.Axis(values=sorted({r["batch"] for r in rows}), format="d"))
    color = alt.Color("series:N", title="launch", legend=alt.Legend(orient="top"))
    tooltip = ["series:N", "batch:Q", alt.Tooltip("p50_ms:Q", title="p50 (ms)", format=".3f"),
               alt.Tooltip("p99_ms:Q", title="p99 (ms)", format=".3f"),
               alt.Tooltip("per_image_ms:Q", title="per image (ms)", format=".3f"),
               alt.Tooltip("throughput_ips:Q", title="images/s", format=",.0f")]
    base = alt.Chart(_values(rows)).encode(x=x, color=color, tooltip=tooltip)

    latency = [base.mark_line(point=True).encode(y=alt.Y("p50_ms:Q", title="latency (ms): p50 solid, p99 dashed")),
               base.mark_line(strokeDash=[4, 3], opacity=0.7).encode(y="p99_ms:Q")]
    if budget_ms:
        budget = alt.Chart(_values([{"budget": budget_ms, "text": f"budget {budget_ms:g} ms"}]))
        latency += [budget.mark_rule(color="#b42318", strokeDash=[6, 3]).encode(y="budget:Q"),
                    budget.mark_text(align="left", dx=4, dy=-6, color="#b42318", fontSize=10).encode(
                        x=alt.value(0), y="budget:Q", text="text:N")]
    throughput = [base.mark_line(point=True).encode(y=alt.Y("throughput_ips:Q", title="throughput (images/s)"))]
    if knee_batch:
        knee = alt.Chart(_values([{"batch": knee_batch, "text": f"knee: batch {knee_batch}"}]))
        throughput += [knee.mark_rule(color="#555555", strokeDash=[2, 2]).encode(x="batch:Q"),
                       knee.mark_text(align="left", dx=4, baseline="top", fontSize=10, color="#555555").encode(
                           x="batch:Q", y=alt.value(2), text="text:N")]
    per_image = base.mark_line(point=True).encode(y=alt.Y("per_image_ms:Q", title="per-image time (ms, p50 / batch)"))

    def sized(c, t):
        return c.properties(width=panel, height=230, title=t)

    return alt.hconcat(sized(alt.layer(*latency), "latency per batch"), sized(per_image, "time per image"),
                       sized(alt.layer(*throughput), "throughput"), spacing=30)


# -- where the time goes -----------------------------------------------------------------------------

def step_breakdown(medians: pl.DataFrame, variants: pl.DataFrame, variant_ids: list[int] | None = None) -> alt.Chart | None:
    """Median time per step, stacked in pipeline order, per variant: a host bar (wall time of
    each step on the host: enqueue, sync wait, ...) and, where the device reports it, a GPU bar
    (CUDA event time of the copies and the inference)."""
    ids = variant_ids if variant_ids is not None else variants.sort("variant_id")["variant_id"].to_list()
    names = dict(zip(variants["variant_id"].to_list(), variants["name"].to_list()))
    m = medians.filter(pl.col("variant_id").is_in(ids) & pl.col("step").is_in(list(DRAWN_STEPS)))
    if m.height == 0:
        return None
    clocks = {"host": "host", "gpu": "GPU"}
    rows = [{"variant": names.get(r["variant_id"], str(r["variant_id"])), "clock": clocks[r["clock"]],
             "step": r["step"], "median_ms": r["median_ms"], "order": DRAWN_STEPS.index(r["step"])}
            for r in m.iter_rows(named=True)]
    shown = [names.get(i, str(i)) for i in ids if i in set(m["variant_id"].to_list())]
    two = len({r["clock"] for r in rows}) > 1
    enc = dict(
        y=alt.Y("variant:N", title=None, sort=shown, axis=alt.Axis(labelLimit=360)),
        x=alt.X("median_ms:Q", title="median time per step (ms)", stack="zero"),
        color=alt.Color("step:N", title="step", scale=alt.Scale(domain=list(DRAWN_STEPS), range=list(STEP_COLORS)),
                        legend=alt.Legend(orient="top")),
        order=alt.Order("order:Q"),
        tooltip=["variant:N", "clock:N", "step:N", alt.Tooltip("median_ms:Q", title="median (ms)", format=".4f")],
    )
    if two:
        enc["yOffset"] = alt.YOffset("clock:N", sort=["host", "GPU"], title="clock")
    chart = alt.Chart(_values(rows)).mark_bar().encode(**enc)
    if two:  # say which bar is which without a second legend: a letter inside the band
        labels = alt.Chart(_values([{"variant": v, "clock": c} for v in shown for c in ("host", "GPU")])).mark_text(
            align="right", dx=-3, fontSize=9, color="#5f6b76").encode(
            y=alt.Y("variant:N", sort=shown), yOffset=alt.YOffset("clock:N", sort=["host", "GPU"]),
            x=alt.value(0), text="clock:N")
        chart = alt.layer(chart, labels)
    return chart.properties(width=WIDTH - 420, height=alt.Step(28 if two else 18))


# -- telemetry -----------------------------------------------------------------------------------------

TELEMETRY_PANELS = (("sm_clock_mhz", "SM clock (MHz)"), ("power_w", "GPU power (W)"),
                    ("temperature_c", "GPU temp. (°C)"), ("cpu_freq_mhz", "CPU freq. (MHz)"))


def _variant_spans(iters: pl.DataFrame, variants: pl.DataFrame) -> list[dict[str, Any]]:
    """Time span (s) of each variant, for shading behind telemetry."""
    if iters.height == 0:
        return []
    names = dict(zip(variants["variant_id"].to_list(), variants["name"].to_list()))
    spans = iters.group_by("variant_id").agg(
        (pl.col("start_ns").min() - pl.col("idle_ns").first().fill_null(0)).alias("t0"),
        (pl.col("start_ns") + pl.col("latency_ns")).max().alias("t1")).sort("t0")
    return [{"start": r["t0"] / 1e9, "end": r["t1"] / 1e9, "variant": names.get(r["variant_id"], "?"), "odd": i % 2}
            for i, r in enumerate(spans.iter_rows(named=True))]


def _series_rows(t_s: np.ndarray, values: np.ndarray) -> list[dict[str, Any]]:
    d = downsample(t_s, values, max_points=MAX_POINTS)
    return [{"t_s": a, "value": b, "lo": c, "hi": e} for a, b, c, e in zip(d["x"], d["y"], d["lo"], d["hi"])]


def telemetry_timeline(telemetry: pl.DataFrame, variants: pl.DataFrame,
                       iters: pl.DataFrame | None = None) -> alt.VConcatChart | None:
    """GPU SM clock, power and temperature and the CPU frequency over the run's time, one panel
    each (where recorded), with the variants as alternating bands behind them."""
    spans = _variant_spans(iters, variants) if iters is not None else []
    x = alt.X("t_s:Q", title="time since run start (s)", scale=alt.Scale(nice=False))
    panels = []
    for column, title in TELEMETRY_PANELS:
        if column not in telemetry.columns:
            continue
        t = telemetry.filter(pl.col(column).is_not_null()).sort("t_ns")
        if t.height < 2:
            continue
        layers = []
        if spans:
            layers.append(alt.Chart(_values(spans)).mark_rect().encode(
                x=alt.X("start:Q", scale=alt.Scale(nice=False)), x2="end:Q",
                color=alt.Color("odd:N", scale=alt.Scale(domain=[0, 1], range=["#f3f5f7", "#e4e8ec"]), legend=None),
                tooltip=["variant:N"]))
        line = alt.Chart(_values(_series_rows(t["t_ns"].to_numpy() / 1e9, t[column].to_numpy())))
        layers.append(line.mark_area(opacity=0.25, color="#175cd3").encode(x=x, y="lo:Q", y2="hi:Q"))
        layers.append(line.mark_line(interpolate="step-after", strokeWidth=1.3, color="#175cd3").encode(
            x=x, y=alt.Y("value:Q", title=title, scale=alt.Scale(zero=False)),
            tooltip=[alt.Tooltip("t_s:Q", title="time (s)", format=".2f"), alt.Tooltip("value:Q", title=title)]))
        panels.append(alt.layer(*layers).properties(width=WIDTH, height=110))
    return alt.vconcat(*panels, spacing=12) if panels else None


def clock_vs_latency(iters: pl.DataFrame, telemetry: pl.DataFrame, variants: pl.DataFrame,
                     variant_ids: list[int]) -> alt.VConcatChart | None:
    """Latency of the given variants and the GPU SM clock (or CPU frequency) on one time axis,
    so a clock drop can be matched to the iterations it slowed."""
    column, label = next(((c, lab) for c, lab in (("sm_clock_mhz", "SM clock (MHz)"), ("cpu_freq_mhz", "CPU frequency (MHz)"))
                          if c in telemetry.columns and telemetry[c].drop_nulls().len()), (None, None))
    lat = iters.filter(pl.col("variant_id").is_in(variant_ids) & ~pl.col("warmup")).sort("start_ns")
    if column is None or lat.height == 0:
        return None
    meta = {r["variant_id"]: r for r in variants.to_dicts()}
    lat_rows = []
    for vid in variant_ids:
        v = lat.filter(pl.col("variant_id") == vid)
        if v.height:
            d = downsample(v["start_ns"].to_numpy() / 1e9, v["latency_ns"].to_numpy() / 1e6, max_points=MAX_POINTS)
            lat_rows += [{"t_s": a, "latency_ms": b, "variant": variant_label(meta[vid]), "pacing": meta[vid]["pacing"]}
                         for a, b in zip(d["x"], d["y"])]
    t0, t1 = lat["start_ns"].min(), lat["start_ns"].max()
    tel = telemetry.filter(pl.col(column).is_not_null() & pl.col("t_ns").is_between(t0, t1)).sort("t_ns")
    x = alt.X("t_s:Q", title="time since run start (s)", scale=alt.Scale(zero=False, nice=False))
    top = alt.Chart(_values(lat_rows)).mark_point(filled=True, size=14, opacity=0.75).encode(
        x=x, y=alt.Y("latency_ms:Q", title="latency (ms)", scale=alt.Scale(zero=False)), color=_pacing_color(),
        shape=alt.Shape("variant:N", legend=alt.Legend(orient="top")),
        tooltip=["variant:N", alt.Tooltip("t_s:Q", format=".3f"), alt.Tooltip("latency_ms:Q", format=".3f")],
    ).properties(width=WIDTH, height=180)
    bottom = alt.Chart(_values(_series_rows(tel["t_ns"].to_numpy() / 1e9, tel[column].to_numpy()))).mark_line(
        interpolate="step-after", color="#175cd3").encode(
        x=x, y=alt.Y("value:Q", title=label, scale=alt.Scale(zero=False))).properties(width=WIDTH, height=110)
    return alt.vconcat(top, bottom, spacing=10)
