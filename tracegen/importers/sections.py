"""What the run page shows about a run's origin and its layer profile (``templates/sections/``).

The site calls ``page_sections(run)`` and passes the result to ``run.html``, which includes
``sections/origin.html`` and, when the run has a layer table, ``sections/layers.html``.
"""

from __future__ import annotations

from typing import Any

from tracegen.importers.common import origin_kind
from tracegen.importers.layers import read_layers, top_layers

ORIGIN_LABELS = {
    "runner": "recorded by `tracegen run`",
    "recorder": "recorded by tracegen.Recorder in the user's own program",
    "trtexec": "imported from trtexec exports (`tracegen import trtexec`)",
    "table": "imported from a per-step table (`tracegen import table`)",
    "nsys": "imported from an Nsight Systems report (`tracegen nsys-import`)",
}
LATENCY_TEXT = {
    "host": "host wall time of the work steps (every step but idle)",
    "gpu": "GPU time of the work steps (H2D + compute + D2H, as trtexec defines it)",
}


def origin_section(manifest: dict[str, Any], steps: list[str]) -> dict[str, Any]:
    kind = origin_kind(manifest)
    origin = manifest.get("origin") if isinstance(manifest.get("origin"), dict) else {}
    latency = manifest.get("latency") if isinstance(manifest.get("latency"), dict) else {}
    basis = latency.get("basis", "host")
    params = []
    for v in origin.get("variants") or []:
        p = v.get("parameters") or {}
        by_source: dict[str, list[str]] = {}
        for k, d in p.items():
            if isinstance(d, dict):
                by_source.setdefault(str(d.get("from")), []).append(k)
        params.append({"variant_id": v.get("variant_id"), "file": v.get("times") or v.get("file"),
                       "from": "; ".join(f"from {src}: {', '.join(keys)}" for src, keys in by_source.items())})
    return {
        "kind": kind,
        "label": ORIGIN_LABELS.get(kind, kind),
        "steps": steps,
        "latency": latency.get("definition") or LATENCY_TEXT.get(basis, basis),
        "latency_basis": basis,
        "files": [{"role": f.get("role"), "path": f.get("path"), "sha256": (f.get("sha256") or "")[:12],
                   "variant_id": f.get("variant_id")} for f in origin.get("files") or []],
        "parameters": params,
        "notes": list(origin.get("notes") or []),
    }


def page_sections(run: Any, limit: int = 15, *, present: list[str] | None = None) -> dict[str, Any]:
    """``origin`` (always) and ``layers`` (None without a layer table) for ``run.html``.
    ``present``: the steps that occur in the run, when the caller knows them (the report has
    its per-iteration frame and no steps table); else they are read from ``run.steps``."""
    from tracegen.trace.schema import STEP_ORDER

    if present is None:
        present = run.steps["step"].unique().cast(str).to_list() if run.steps.height else []
    steps = [s for s in STEP_ORDER if s in set(present)]
    table = read_layers(run.path, run.manifest)
    names = dict(zip(run.variants["variant_id"].to_list(), run.variants["name"].to_list()))
    return {"origin": origin_section(run.manifest, steps),
            "layers": top_layers(table, names, limit) if table is not None and table.height else None}
