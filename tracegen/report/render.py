"""Templates and chart embedding.

Pages are self-contained: the Vega, Vega-Lite and vega-embed JavaScript (from vl-convert-python)
is inlined once per page, each chart is a JSON spec in a ``<script type="application/json">``
block, and a small inline script draws them. No request leaves the page, so it opens from
``file://`` and from any static host.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jinja2

import tracegen
from tracegen.optional import require


def templates_dir() -> Path:
    """Templates shipped inside the wheel, or the checkout's top-level ``templates/``."""
    packaged = Path(tracegen.__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(tracegen.__file__).resolve().parent.parent / "templates"


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ms"] = _fmt_ms
    env.filters["num"] = _fmt_num
    env.filters["si"] = _fmt_si
    return env


@functools.lru_cache(maxsize=1)
def vega_javascript() -> str:
    """The bundled Vega + Vega-Lite + vega-embed JavaScript matching altair's Vega-Lite version."""
    alt = require("altair")
    vlc = require("vl_convert")
    version = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
    if version not in vlc.get_vegalite_versions():
        version = None  # newest bundled; altair specs are forward compatible within a major
    return vlc.javascript_bundle(vl_version=version)


class ChartSet:
    """Collects the charts of one page; each gets a stable element id."""

    def __init__(self):
        self.specs: list[tuple[str, dict[str, Any]]] = []

    def add(self, chart, name: str) -> str:
        """Register ``chart`` (altair) and return the HTML of its container."""
        if chart is None:
            return ""
        chart_id = f"chart-{len(self.specs) + 1}-{name}"
        self.specs.append((chart_id, chart.to_dict()))
        return f'<div class="chart" id="{chart_id}" data-rendered="false"></div>'

    def script_blocks(self) -> str:
        # json.dumps output cannot close the script element: "</" is escaped.
        blocks = []
        for cid, spec in self.specs:
            payload = json.dumps(spec).replace("</", "<\\/")
            blocks.append(f'<script type="application/json" data-chart="{cid}">{payload}</script>')
        return "\n".join(blocks)


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def _fmt_ms(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if v != v:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.1f}"
    if abs(v) >= 10:
        return f"{v:.2f}"
    return f"{v:.{digits}f}"


def _fmt_num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if v != v:
        return "–"
    return f"{v:,.{digits}f}"


def _fmt_si(value: Any) -> str:
    if value is None:
        return "–"
    v = float(value)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f} {unit}"
    return f"{v:g}"
