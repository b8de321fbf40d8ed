"""A comparison (``report.compare.compare``) as a page, as JSON and in the terminal."""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

import altair as alt

from tracegen.report.charts import WIDTH, _values
from tracegen.report.render import ChartSet, render, vega_javascript

RUN_COLORS = ("#98a2b3", "#175cd3")  # A grey, B blue on every compare chart


def chart(cmp: dict[str, Any]) -> alt.LayerChart | None:
    """p50 of A and B per matched variant on one axis, the 95 % interval of B's shift as a bar
    around B's point, p99 as open ticks."""
    rows = []
    for v in cmp["variants"]:
        m = v["metrics"]
        for side, name in (("a", cmp["a"]["id"]), ("b", cmp["b"]["id"])):
            rows.append({"variant": v["label"], "run": f"{side.upper()}: {name}", "p50_ms": m["p50_ms"][side],
                         "p99_ms": m["p99_ms"][side], "verdict": v["verdict"]})
        if v.get("ci_ms") and m["p50_ms"]["a"] is not None:
            rows.append({"variant": v["label"], "run": "interval", "lo": m["p50_ms"]["a"] + v["ci_ms"][0],
                         "hi": m["p50_ms"]["a"] + v["ci_ms"][1]})
    if not rows:
        return None
    order = [v["label"] for v in cmp["variants"]]
    runs = [f"A: {cmp['a']['id']}", f"B: {cmp['b']['id']}"]
    y = alt.Y("variant:N", sort=order, title=None, axis=alt.Axis(labelLimit=300))
    color = alt.Color("run:N", scale=alt.Scale(domain=runs, range=list(RUN_COLORS)), legend=alt.Legend(orient="top", title=None))
    base = alt.Chart(_values(rows))
    tip = ["run:N", "variant:N", alt.Tooltip("p50_ms:Q", format=".3f"), alt.Tooltip("p99_ms:Q", format=".3f")]
    layers = [
        base.transform_filter("datum.run === 'interval'").mark_rule(color="#175cd3", strokeWidth=6, opacity=0.25).encode(
            y=y, x=alt.X("lo:Q"), x2="hi:Q"),
        base.transform_filter("datum.run !== 'interval'").mark_circle(size=70, opacity=0.9).encode(
            y=y, x=alt.X("p50_ms:Q", title="latency (ms): p50 filled, p99 open; band: 95 % interval of B's p50",
                         scale=alt.Scale(zero=False)), color=color, tooltip=tip),
        base.transform_filter("datum.run !== 'interval'").mark_point(shape="diamond", size=50, filled=False).encode(
            y=y, x="p99_ms:Q", color=color, tooltip=tip),
    ]
    return alt.layer(*layers).properties(width=WIDTH - 320, height=max(60, 26 * len(order)))


def page_html(cmp: dict[str, Any], *, root: str = "", run_links: bool = False) -> str:
    charts = ChartSet()
    chart_html = charts.add(chart(cmp), "compare")
    links = {}
    if run_links:
        links = {s: f"{root}runs/{urllib.parse.quote(cmp[s]['id'])}/index.html" for s in ("a", "b")}
    return render("compare.html", cmp=cmp, chart_html=chart_html, links=links, root=root, neighbours=("", ""),
                  charts_json=charts.script_blocks(), vega_js=vega_javascript(), counts=verdict_counts(cmp))


def verdict_counts(cmp: dict[str, Any]) -> dict[str, int]:
    out = {"slower": 0, "faster": 0, "same": 0, "untested": 0}
    for v in cmp["variants"]:
        out[v["verdict"]] = out.get(v["verdict"], 0) + 1
    return out


def write_compare(cmp: dict[str, Any], dest: Path, *, root: str = "", auto: bool = False) -> Path:
    """``dest/index.html`` and ``dest/compare.json``; ``auto`` marks the site's own pages (which
    a later report may replace or remove) and links the run pages beside them."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    page = dest / "index.html"
    for path, text in ((page, page_html(cmp, root=root, run_links=auto)),
                       (dest / "compare.json", json.dumps({**cmp, "auto": auto}, indent=2))):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return page


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:+.1f} %"


def print_compare(console: Any, cmp: dict[str, Any], regressed: list[dict[str, Any]] | None = None) -> None:
    """The comparison as a terminal table (rich)."""
    from rich.table import Table

    from tracegen.cli.output import markup as m_

    a, b = cmp["a"], cmp["b"]
    for name, s in (("A", a), ("B", b)):
        console.print(f"[bold]{name}[/] {m_(s['id'])}: {m_(s['model'])} on {m_(s['device'])} "
                      f"({m_(s['backend'])} {m_(s.get('precision') or '')})")
    table = Table(show_edge=False, pad_edge=False)
    for col, just in (("variant", "left"), ("p50 A ms", "right"), ("p50 B ms", "right"), ("p50", "right"),
                      ("p99", "right"), ("B-A median ms [95 %]", "right"), ("p", "right"), ("verdict", "left")):
        table.add_column(col, justify=just, no_wrap=True)
    colour = {"slower": "red", "faster": "green"}
    for v in cmp["variants"]:
        m, ci = v["metrics"], v.get("ci_ms")
        diff = "–" if v.get("median_diff_ms") is None else f"{v['median_diff_ms']:+.3g} [{ci[0]:+.3g}, {ci[1]:+.3g}]"
        p = "–" if v.get("p_value") is None else f"{v['p_value']:.1g}"
        verdict = v["verdict"]
        table.add_row(m_(v["label"]), f"{m['p50_ms']['a']:.3f}", f"{m['p50_ms']['b']:.3f}", _pct(m["p50_ms"]["change_pct"]),
                      _pct(m["p99_ms"]["change_pct"]), diff, p,
                      f"[{colour[verdict]}]{verdict}[/]" if verdict in colour else verdict)
    console.print(table)
    for side in ("only_a", "only_b"):
        if cmp[side]:
            console.print(f"only in {side[-1].upper()}: " + "; ".join(m_(x) for x in cmp[side]))
    for k, ab in (cmp.get("scaling") or {}).items():
        if ab["a"] != ab["b"]:
            console.print(f"batch scaling: {k.replace('_', ' ')} {ab['a']} -> {ab['b']}")
    f = cmp["findings"]
    for x in f["appeared"]:
        console.print(f"[red]finding appeared[/] ({x['severity']}): {m_(x['title'])}")
    for x in f["disappeared"]:
        console.print(f"[green]finding disappeared[/] ({x['severity']}): {m_(x['title'])}")
    for x in f["changed"]:
        console.print(f"finding {x['id']}: {x['severity_a']} -> {x['severity_b']}: {m_(x['title'])}")
    if regressed is not None:
        console.print(f"[red]{len(regressed)} regression(s)[/] beyond the threshold" if regressed else "no regression beyond the threshold")
