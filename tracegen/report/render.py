"""Templates and chart embedding (the number formatting filters come from ``tracegen.units``).

Pages are self-contained: the Vega, Vega-Lite and vega-embed JavaScript (bundled by
vl-convert-python) is inlined once per page, each chart is a JSON spec in a
``<script type="application/json">`` block, and a small inline script draws them. A
Content-Security-Policy forbids every request, so a page that opens from ``file://`` provably
needs nothing else, and the browser test would see any attempt as a policy violation.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.resources
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import jinja2

import tracegen
from tracegen.optional import require
from tracegen.units import fmt_ms, fmt_num, fmt_pct, fmt_rate, fmt_si  # the template filters

# No request of any kind; scripts only the page's own inline ones, each allowed by its sha256
# (filled in by ``render``), so markup injected through run data could not run a script even if
# it escaped the templates; vega compiles its expressions with Function(), hence eval.
CSP = ("default-src 'none'; script-src {hashes} 'unsafe-eval'; style-src 'unsafe-inline'; "
       "img-src data:; font-src data:")
CSP_PLACEHOLDER = "tracegen-csp-placeholder"
# executable inline scripts; JSON data blocks carry a type and are never run
_SCRIPT = re.compile(r"<script(?![^>]*\btype=)[^>]*>(.*?)</script>", re.S)


def templates_dir() -> Path:
    """Templates shipped inside the wheel (``tracegen/templates``), else the checkout's
    top-level ``templates/``."""
    packaged = importlib.resources.files("tracegen") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(tracegen.__file__).resolve().parent.parent / "templates"


class _CompiledTemplates(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept between reports (compiling a run page's templates costs ~0.15 s
    on 2 cores); keyed by each template's source checksum, per jinja2 and Python version. A
    cache that cannot be written is skipped."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    folder = _cache_dir() / f"templates-jinja{jinja2.__version__}-py{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return _CompiledTemplates(str(folder))


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,
        extensions=["jinja2.ext.do"],
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the tests, not silently
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ms=fmt_ms, num=fmt_num, si=fmt_si, pct=fmt_pct, rate=fmt_rate)
    return env


def render(template: str, **context: Any) -> str:
    html = environment().get_template(template).render(csp=CSP_PLACEHOLDER, version=tracegen.__version__, **context)
    if CSP_PLACEHOLDER not in html:
        return html  # a fragment, not a page
    return html.replace(CSP_PLACEHOLDER, csp_for(html), 1)


def csp_for(html: str) -> str:
    """The policy of a page: its inline scripts by hash, nothing else."""
    digests = sorted({base64.b64encode(hashlib.sha256(m.encode("utf-8")).digest()).decode()
                      for m in _SCRIPT.findall(html)})
    return CSP.format(hashes=" ".join(f"'sha256-{d}'" for d in digests) or "'none'")


@functools.lru_cache(maxsize=1)
def vega_javascript() -> str:
    """The bundled Vega + Vega-Lite + vega-embed JavaScript of the specs' Vega-Lite version
    (``vegalite.VERSION``).

    vl-convert bundles it on every call (2.9 s on 2 cores, more than the rest of a big run's
    report), so the bundle is kept in the user's cache directory, keyed by both versions."""
    from tracegen.report.vegalite import VERSION

    vlc = require("vl_convert")
    version = ".".join(VERSION.split(".")[:2])
    if version not in vlc.get_vegalite_versions():
        version = None  # the newest bundled; specs are compatible within a major version
    cached = _cache_dir() / f"vega-bundle-{getattr(vlc, '__version__', 'x')}-{version or 'newest'}.js"
    try:
        return cached.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        pass
    bundle = vlc.javascript_bundle(vl_version=version)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
        tmp.write_text(bundle, encoding="utf-8")
        os.replace(tmp, cached)  # atomic: a parallel report never reads half a file
    except OSError:
        pass  # read-only home: bundle every time
    return bundle


def _cache_dir() -> Path:
    if os.environ.get("TRACEGEN_CACHE_DIR"):
        return Path(os.environ["TRACEGEN_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tracegen"


class ChartSet:
    """The charts of one page: each gets a container with a unique id, and its spec goes into
    a JSON block that the page's drawing script renders."""

    def __init__(self) -> None:
        self.specs: list[tuple[str, dict[str, Any]]] = []

    def add(self, chart: Any, name: str) -> str:
        """Register a chart (a Vega-Lite spec dict, or an altair chart; ``None`` is skipped) and
        return its container's HTML."""
        if chart is None:
            return ""
        chart_id = f"chart-{len(self.specs) + 1}-{name}"
        # validate=False: the schema check costs ~0.7 s on a big run; the browser tests draw every spec
        self.specs.append((chart_id, chart if isinstance(chart, dict) else chart.to_dict(validate=False)))
        return f'<div class="chart" id="{chart_id}" data-rendered="false"></div>'

    def script_blocks(self) -> str:
        return "\n".join(f'<script type="application/json" data-chart="{cid}">{_script_json(spec)}</script>'
                         for cid, spec in self.specs)


def _script_json(spec: dict[str, Any]) -> str:
    # "</script" or "<!--" inside would end or confuse the script element; JSON may spell "<"
    # as \u003c, which the browser's JSON.parse reads back unchanged.
    return json.dumps(spec, separators=(",", ":")).replace("<", "\\u003c")
