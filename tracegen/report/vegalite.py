"""Vega-Lite specs as plain dicts: the few pieces the report's charts are made of.

The run page used to build its charts with altair. Importing altair costs about 0.45 s and
building a big run's latency traces with it about 0.15 s each (its encodings are validated
against the schema as they are made), a fifth of a 10^6-iteration report; the specs are a
fixed shape with data in it, so ``charts`` writes them directly with these helpers. What
comes out is the spec ``altair`` wrote (same channels, same top-level ``config`` and
``$schema``, inline data moved to top-level ``datasets`` under the same content-hash names),
so a page draws exactly as before; tests/report/test_charts.py validates every chart against
the Vega-Lite schema.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: The Vega-Lite version of the specs (and of the JavaScript bundle that draws them).
VERSION = "6.4.1"
SCHEMA = f"https://vega.github.io/schema/vega-lite/v{VERSION}.json"
_CONFIG = {"view": {"continuousWidth": 300, "continuousHeight": 300}}  # altair's default view size
_TYPES = {"Q": "quantitative", "N": "nominal", "O": "ordinal", "T": "temporal"}

Spec = dict[str, Any]


def field(shorthand: str, **props: Any) -> Spec:
    """An encoding channel from ``"name:T"`` (T one of Q, N, O, T; no type for x2/y2) and its
    properties; ``None`` values are written as null (no title, no legend)."""
    name, _, kind = shorthand.partition(":")
    out = {"field": name, **props}
    if kind:
        out["type"] = _TYPES[kind]
    return out


def unit(mark: str | Spec, encoding: Spec, *, data: Spec | None = None, filter: str | None = None, **props: Any) -> Spec:
    """One mark: ``mark`` is its type or its properties (with ``type``)."""
    out: Spec = {} if data is None else {"data": data}
    out["mark"] = {"type": mark} if isinstance(mark, str) else mark
    out["encoding"] = encoding
    if filter is not None:
        out["transform"] = [{"filter": filter}]
    out.update(props)
    return out


def layer(*charts: Spec, **props: Any) -> Spec:
    """Charts drawn over each other (``_combined``)."""
    return _combined("layer", charts, props)


def hconcat(*charts: Spec, **props: Any) -> Spec:
    return _combined("hconcat", charts, props)


def vconcat(*charts: Spec, **props: Any) -> Spec:
    return _combined("vconcat", charts, props)


def _combined(kind: str, charts: tuple[Spec, ...], props: dict[str, Any]) -> Spec:
    """When every part has the same data (the same object), it moves up to the whole, as
    altair does."""
    data = charts[0].get("data") if charts else None
    if data is not None and all(c.get("data") is data for c in charts):
        out: Spec = {kind: [{k: v for k, v in c.items() if k != "data"} for c in charts], "data": data}
    else:
        out = {kind: list(charts)}
    out.update(props)
    return out


def values(rows: list[dict[str, Any]]) -> Spec:
    """Inline data (moved to ``datasets`` by ``toplevel``)."""
    return {"values": rows}


def toplevel(spec: Spec) -> Spec:
    """The spec as a page embeds it: config and ``$schema`` added, inline data named by a hash
    of its content and moved to ``datasets`` (one copy of data that several layers share)."""
    datasets: dict[str, Any] = {}
    names: dict[int, str] = {}  # id of a values list -> its name (layers share one list)
    out = {"config": {"view": dict(_CONFIG["view"])}, **_named(spec, datasets, names), "$schema": SCHEMA}
    if datasets:
        out["datasets"] = datasets
    return out


def _named(node: Any, datasets: dict[str, Any], names: dict[int, str]) -> Any:
    if isinstance(node, list):
        return [_named(x, datasets, names) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "data" and isinstance(value, dict) and "values" in value and "name" not in value:
            rows = value["values"]
            name = names.get(id(rows))
            if name is None:
                name = names[id(rows)] = dataset_name(rows)
                datasets[name] = rows
            out[key] = {"name": name, **{k: v for k, v in value.items() if k != "values"}}
        else:
            out[key] = _named(value, datasets, names)
    return out


def dataset_name(rows: Any) -> str:
    """``data-`` and the first 32 hex digits of the SHA-256 of the rows as sorted-key JSON (the
    name altair gives the same data, so specs from either agree)."""
    if rows == [{}]:
        return "empty"
    text = json.dumps(rows, sort_keys=True, default=str)
    return "data-" + hashlib.sha256(text.encode()).hexdigest()[:32]
