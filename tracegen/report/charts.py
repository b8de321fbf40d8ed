"""Charts as pure functions: polars frames in, Vega-Lite specs (dicts) out (``report.render``
embeds them). The specs are written directly (``report.vegalite``: altair's import and its
per-channel validation were a fifth of a big run's report), in the form altair wrote them.

Data goes into each spec as a plain list of rows, so no pandas is involved; values are rounded
for drawing only (tables and ``stats.json`` keep full precision).
Colours mean the same on every chart of a page: pacing for latency traces, step for breakdowns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from tracegen.report.downsample import downsample
from tracegen.report.vegalite import Spec, field, hconcat, layer, toplevel, unit, vconcat
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
    """Inline data, every number JSON-safe and rounded (``_num``)."""
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


def _pacing_color(title: str | None = "pacing") -> Spec:
    return field("pacing:N", title=title, scale={"domain": list(PACINGS), "range": list(PACING_COLORS)},
                 legend={"orient": "top", "symbolOpacity": 1} if title else None)


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
                  title: str = "", row_height: int = 110, cache: dict | None = None) -> Spec | None:
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
    x = field("iteration:Q", title="iteration (warm-up first)", scale={"nice": False})
    y_scale = {"domain": [bottom, top], "nice": False, "zero": False}
    tooltip = [field("variant:N"), field("iteration:Q"), field("latency_ms:Q", title="latency (ms)", format=".3f"),
               field("max_ms:Q", title="max (ms)", format=".3f"), field("n:Q", title="iterations in this point")]
    color = _pacing_color()
    pt = _is("pt")
    layers = [
        unit({"type": "rect", "color": "#ececec"}, {"x": field("start:Q"), "x2": field("end")}, filter=_is("warm")),
        unit({"type": "rect", "color": "#fde68a", "opacity": 0.55}, {"x": field("start:Q"), "x2": field("end")},
             filter=_is("mark")),
        unit({"type": "rule", "color": "#888888", "opacity": 0.45, "strokeWidth": 1}, {"x": x}, filter=_is("cp")),
        unit({"type": "rule", "opacity": 0.25}, {"color": color, "x": x, "y": field("lo:Q", scale=y_scale), "y2": field("hi")},
             filter=pt + " && datum.hi > datum.lo"),
        unit({"type": "circle", "opacity": 0.75, "size": 12},
             {"color": color, "tooltip": tooltip, "x": x, "y": field("y:Q", scale=y_scale, title="latency (ms)")},
             filter=pt + " && !datum.clipped"),
        unit({"type": "point", "filled": True, "shape": "triangle-up", "size": 30},
             {"color": color, "tooltip": tooltip, "x": x, "y": field("hi:Q", scale=y_scale)}, filter=pt + " && datum.over"),
        unit({"type": "rule", "color": "#222222", "strokeDash": [5, 3], "strokeWidth": 1.2},
             {"tooltip": [field("level_ms:Q", format=".3f", title="tier level (ms)")], "y": field("level_ms:Q", scale=y_scale)},
             filter=_is("tier")),
        unit({"type": "text", "align": "left", "color": "#222222", "dx": 4, "fontSize": 10},
             {"text": field("text:N"), "x": {"value": WIDTH}, "y": field("level_ms:Q", scale=y_scale)}, filter=_is("tier")),
    ]
    header = {"labelAlign": "left", "labelAnchor": "start", "labelAngle": 0, "labelFontSize": 12, "labelFontWeight": "bold",
              "labelOrient": "top", "title": None}
    spec = {"data": _values(rows), "facet": {"row": field("variant:N", header=header, sort=labels)},
            "spec": {"layer": layers, "height": row_height, "width": WIDTH}, "spacing": 14}
    if title:
        spec["title"] = title
    return toplevel(spec)


# -- batch scaling ---------------------------------------------------------------------------------

def series_label(r: dict[str, Any]) -> str:
    """What distinguishes batch-scenario variants of one batch size: launch (sync, pipeline)."""
    parts = [r["launch"], None if r.get("sync_mode", "auto") == "auto" else f"sync {r['sync_mode']}",
             None if r.get("pipeline", "full") == "full" else f"{r['pipeline']} only"]
    return ", ".join(p for p in parts if p)


def batch_scaling(stats: pl.DataFrame, *, budget_ms: float | None = None,
                  knee_batch: int | None = None) -> Spec | None:
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
    x = field("batch:Q", axis={"format": "d", "values": sorted({r["batch"] for r in rows})}, scale={"base": 2, "nice": False,
              "type": "log"}, title="batch size")
    color = field("series:N", legend={"orient": "top"}, title="launch")
    tooltip = [field("series:N"), field("batch:Q"), field("p50_ms:Q", format=".3f", title="p50 (ms)"),
               field("p99_ms:Q", format=".3f", title="p99 (ms)"),
               field("per_image_ms:Q", format=".3f", title="per image (ms)"),
               field("throughput_ips:Q", format=",.0f", title="images/s")]
    data = _values(rows)

    def base(mark: Spec, y: Spec) -> Spec:
        return unit(mark, {"color": color, "tooltip": tooltip, "x": x, "y": y}, data=data)

    line = {"type": "line", "point": True}
    latency = [base(line, field("p50_ms:Q", title="latency (ms): p50 solid, p99 dashed")),
               base({"type": "line", "opacity": 0.7, "strokeDash": [4, 3]}, field("p99_ms:Q"))]
    if budget_ms:
        budget = _values([{"budget": budget_ms, "text": f"budget {budget_ms:g} ms"}])
        latency += [unit({"type": "rule", "color": "#b42318", "strokeDash": [6, 3]}, {"y": field("budget:Q")}, data=budget),
                    unit({"type": "text", "align": "left", "color": "#b42318", "dx": 4, "dy": -6, "fontSize": 10},
                         {"text": field("text:N"), "x": {"value": 0}, "y": field("budget:Q")}, data=budget)]
    throughput = [base(line, field("throughput_ips:Q", title="throughput (images/s)"))]
    if knee_batch:
        knee = _values([{"batch": knee_batch, "text": f"knee: batch {knee_batch}"}])
        throughput += [unit({"type": "rule", "color": "#555555", "strokeDash": [2, 2]}, {"x": field("batch:Q")}, data=knee),
                       unit({"type": "text", "align": "left", "baseline": "top", "color": "#555555", "dx": 4, "fontSize": 10},
                            {"text": field("text:N"), "x": field("batch:Q"), "y": {"value": 2}}, data=knee)]
    per_image = base(line, field("per_image_ms:Q", title="per-image time (ms, p50 / batch)"))

    def sized(c: Spec, t: str) -> Spec:
        return {**c, "height": 230, "title": t, "width": panel}

    return toplevel(hconcat(sized(layer(*latency), "latency per batch"), sized(per_image, "time per image"),
                            sized(layer(*throughput), "throughput"), spacing=30))


# -- where the time goes -----------------------------------------------------------------------------

def step_breakdown(medians: pl.DataFrame, variants: pl.DataFrame, variant_ids: list[int] | None = None) -> Spec | None:
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
    enc = {
        "color": field("step:N", legend={"orient": "top"}, scale={"domain": list(DRAWN_STEPS), "range": list(STEP_COLORS)},
                       title="step"),
        "order": field("order:Q"),
        "tooltip": [field("variant:N"), field("clock:N"), field("step:N"),
                    field("median_ms:Q", format=".4f", title="median (ms)")],
        "x": field("median_ms:Q", stack="zero", title="median time per step (ms)"),
        "y": field("variant:N", axis={"labelLimit": 360}, sort=shown, title=None),
    }
    if two:
        enc["yOffset"] = field("clock:N", sort=["host", "GPU"], title="clock")
    chart = unit("bar", enc, data=_values(rows))
    if two:  # say which bar is which without a second legend: a letter inside the band
        labels = unit({"type": "text", "align": "right", "color": "#5f6b76", "dx": -3, "fontSize": 9},
                      {"text": field("clock:N"), "x": {"value": 0}, "y": field("variant:N", sort=shown),
                       "yOffset": field("clock:N", sort=["host", "GPU"])},
                      data=_values([{"variant": v, "clock": c} for v in shown for c in ("host", "GPU")]))
        chart = layer(chart, labels)
    return toplevel({**chart, "height": {"step": 28 if two else 18}, "width": WIDTH - 420})


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
                       iters: pl.DataFrame | None = None) -> Spec | None:
    """GPU SM clock, power and temperature and the CPU frequency over the run's time, one panel
    each (where recorded), with the variants as alternating bands behind them."""
    spans = _variant_spans(iters, variants) if iters is not None else []
    x = field("t_s:Q", scale={"nice": False}, title="time since run start (s)")
    panels = []
    for column, title in TELEMETRY_PANELS:
        if column not in telemetry.columns:
            continue
        t = telemetry.filter(pl.col(column).is_not_null()).sort("t_ns")
        if t.height < 2:
            continue
        layers = []
        if spans:
            layers.append(unit("rect", {"color": field("odd:N", legend=None, scale={"domain": [0, 1], "range": ["#f3f5f7", "#e4e8ec"]}),
                                        "tooltip": [field("variant:N")], "x": field("start:Q", scale={"nice": False}),
                                        "x2": field("end")}, data=_values(spans)))
        line = _values(_series_rows(t["t_ns"].to_numpy() / 1e9, t[column].to_numpy()))
        layers.append(unit({"type": "area", "color": "#175cd3", "opacity": 0.25},
                           {"x": x, "y": field("lo:Q"), "y2": field("hi")}, data=line))
        layers.append(unit({"type": "line", "color": "#175cd3", "interpolate": "step-after", "strokeWidth": 1.3},
                           {"tooltip": [field("t_s:Q", format=".2f", title="time (s)"), field("value:Q", title=title)],
                            "x": x, "y": field("value:Q", scale={"zero": False}, title=title)}, data=line))
        panels.append({**layer(*layers), "height": 110, "width": WIDTH})
    return toplevel(vconcat(*panels, spacing=12)) if panels else None


def clock_vs_latency(iters: pl.DataFrame, telemetry: pl.DataFrame, variants: pl.DataFrame,
                     variant_ids: list[int]) -> Spec | None:
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
    x = field("t_s:Q", scale={"nice": False, "zero": False}, title="time since run start (s)")
    upper = unit({"type": "point", "filled": True, "opacity": 0.75, "size": 14},
                 {"color": _pacing_color(), "shape": field("variant:N", legend={"orient": "top"}),
                  "tooltip": [field("variant:N"), field("t_s:Q", format=".3f"), field("latency_ms:Q", format=".3f")],
                  "x": x, "y": field("latency_ms:Q", scale={"zero": False}, title="latency (ms)")},
                 data=_values(lat_rows), height=180, width=WIDTH)
    lower = unit({"type": "line", "color": "#175cd3", "interpolate": "step-after"},
                 {"x": x, "y": field("value:Q", scale={"zero": False}, title=label)},
                 data=_values(_series_rows(tel["t_ns"].to_numpy() / 1e9, tel[column].to_numpy())), height=110, width=WIDTH)
    return toplevel(vconcat(upper, lower, spacing=10))
