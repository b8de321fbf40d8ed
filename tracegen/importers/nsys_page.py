"""The run page's "GPU kernels" section (``templates/sections/kernels.html``), for runs with an
imported Nsight Systems report: per-step medians of the GPU work, the kernels that changed
between slow and fast iterations, and a timeline of one slow and one fast iteration side by side.

The site calls ``kernels_section(run, findings, charts)``; it returns None for runs without
imported tables, so the page is unchanged for them.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from tracegen.importers.nsys_summary import step_medians
from tracegen.trace.nsys_tables import read_nsys_tables

KIND_COLORS = {"kernel": "#1b9e77", "graph": "#66a61e", "memcpy": "#d95f02", "memset": "#7570b3"}
MAX_OPS = 3000  # per drawn iteration; an eager network has a few hundred


def pick_iterations(run, tables, findings) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(variant, iteration) of a slow and a fast iteration: the kernel-time finding's typical ones,
    else the p90 and p10 latency iterations of the variant with the most GPU work."""
    for f in findings:
        if f.id == "kernel-time":
            e = f.evidence
            return (e["slow_variant_id"], e["slow_example"]), (e["fast_variant_id"], e["fast_example"])
    st = tables.steps
    if st.height == 0:
        return None
    per_it = st.group_by("variant_id", "iteration").agg(
        (pl.col("kernel_ns") + pl.col("graph_ns") + pl.col("memcpy_ns")).sum().alias("gpu"),
        (pl.col("range_ns").filter(pl.col("step") != "idle")).sum().alias("lat"))
    vid = int(per_it.group_by("variant_id").agg(pl.col("gpu").sum()).sort("gpu", descending=True)["variant_id"][0])
    mine = per_it.filter(pl.col("variant_id") == vid).sort("lat")
    if mine.height == 0:
        return None
    return (vid, int(mine["iteration"][int(0.9 * (mine.height - 1))])), (vid, int(mine["iteration"][int(0.1 * (mine.height - 1))]))


def timeline_chart(tables, picks: list[tuple[str, int, int]]) -> Any:
    """The GPU operations and the step ranges of each picked (label, variant, iteration), on a
    common axis: microseconds since the iteration's first work step began (the idle gap before
    it, and any keep-alive work in it, are left out: they would dwarf the inference)."""
    rows: list[dict[str, Any]] = []
    for label, vid, it in picks:
        steps = tables.steps.filter((pl.col("variant_id") == vid) & (pl.col("iteration") == it)
                                    & (pl.col("step") != "idle"))
        if steps.height == 0:
            continue
        t0 = int(steps["range_start_ns"].min())
        for r in steps.iter_rows(named=True):
            rows.append({"lane": f"{label}: steps", "start_us": (r["range_start_ns"] - t0) / 1e3,
                         "end_us": (r["range_start_ns"] + r["range_ns"] - t0) / 1e3, "name": r["step"], "kind": "step",
                         "us": r["range_ns"] / 1e3})
        ops = tables.kernels.filter((pl.col("variant_id") == vid) & (pl.col("iteration") == it)
                                    & (pl.col("step") != "idle")).sort("start_ns")
        for r in ops.head(MAX_OPS).iter_rows(named=True):
            rows.append({"lane": f"{label}: GPU", "start_us": (r["start_ns"] - t0) / 1e3,
                         "end_us": (r["start_ns"] + r["duration_ns"] - t0) / 1e3, "name": r["name"], "kind": r["kind"],
                         "us": r["duration_ns"] / 1e3})
    if not rows:
        return None
    import altair as alt  # only for runs with imported nsys tables (the import costs ~0.5 s)

    data = {"values": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]}
    kinds = ["step", *KIND_COLORS]
    colors = ["#bbbbbb", *KIND_COLORS.values()]
    return alt.Chart(data).mark_bar(height=14).encode(
        x=alt.X("start_us:Q", title="µs since the iteration's first work step began"),
        x2="end_us:Q",
        y=alt.Y("lane:N", title=None, sort=list(dict.fromkeys(r["lane"] for r in rows))),
        color=alt.Color("kind:N", scale=alt.Scale(domain=kinds, range=colors), title="what"),
        tooltip=[alt.Tooltip("lane:N"), alt.Tooltip("name:N"), alt.Tooltip("kind:N"),
                 alt.Tooltip("us:Q", title="µs", format=",.1f"), alt.Tooltip("start_us:Q", title="start µs", format=",.1f")],
    ).properties(width=820, height=40 * len({r["lane"] for r in rows})).interactive(bind_y=False)


def kernels_section(run, findings, charts) -> dict[str, Any] | None:
    """What ``sections/kernels.html`` shows, or None when the run has no imported nsys tables."""
    tables = read_nsys_tables(run.path, run.manifest)
    if tables is None:
        return None
    names = dict(run.variants.select("variant_id", "name").iter_rows())
    med = step_medians(tables.steps)
    rows = [{**r, "kernels": int(round(r["kernels"] or 0)), "name": names.get(r["variant_id"], str(r["variant_id"]))}
            for r in med.iter_rows(named=True)]
    picked = pick_iterations(run, tables, findings)
    chart, picks = "", []
    if picked:
        (sv, si), (fv, fi) = picked
        picks = [("slow", sv, si), ("fast", fv, fi)]
        chart = charts.add(timeline_chart(tables, [(f"{lbl}, it {i}", v, i) for lbl, v, i in picks]), "kernels")
    finding = next((f for f in findings if f.id == "kernel-time"), None)
    info = tables.info
    return {
        "rows": rows, "chart": chart,
        "picks": [{"label": lbl, "variant": names.get(v, str(v)), "iteration": i} for lbl, v, i in picks],
        "kernels": (finding.evidence.get("kernels_slowed") or []) if finding else [],
        "commands": (finding.evidence.get("nsys_commands") or []) if finding else [],
        "export": info.get("export") or {}, "unplaced": info.get("unplaced_ops", 0),
        "graphs": int(tables.steps["graphs"].sum()),
    }
