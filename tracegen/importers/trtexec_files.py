"""Readers for the JSON files trtexec writes, each checked against the format trtexec prints.

- ``--exportTimes``: a list with one object per inference (warm-ups excluded), times in ms on
  one timeline: ``startEnqMs endEnqMs startH2dMs endH2dMs startComputeMs endComputeMs startD2hMs
  endD2hMs h2dMs computeMs d2hMs latencyMs`` (TensorRT 8.0-8.2 add ``endToEndMs``). TensorRT 7
  named the copies ``In``/``Out``, and 7.1/7.2 swapped the enqueue and input columns, so those
  files are refused rather than misread.
- ``--exportProfile``: ``[{"count": N}, {"name", "timeMs", "averageMs", "medianMs", "percentage"}, ...]``
  (``medianMs`` since TensorRT 8.4).
- ``--exportLayerInfo``: ``{"Layers": [...], "Bindings": [...]}``; layers are objects with
  ``Name`` and ``LayerType`` (``--profilingVerbosity=detailed``) or plain names.
- trt-engine-explorer's ``*.metadata.json``: the sections of a trtexec log as JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from tracegen.errors import TraceError
from tracegen.importers.common import read_json

TIMES_FIELDS = ("startEnqMs", "endEnqMs", "startH2dMs", "endH2dMs", "startComputeMs", "endComputeMs",
                "startD2hMs", "endD2hMs", "h2dMs", "computeMs", "d2hMs", "latencyMs")
TIMES_OPTIONAL = ("endToEndMs",)
TRT7_FIELDS = ("startInMs", "endInMs", "startOutMs", "endOutMs", "inMs", "outMs")
PROFILE_FIELDS = ("name", "timeMs", "averageMs", "percentage")
METADATA_SECTIONS = ("performance_summary", "inference_options", "device_information", "model_options",
                     "build_options")

_TIMES_FIX = "pass the file trtexec wrote with --exportTimes=FILE"
_PROFILE_FIX = "pass the file trtexec wrote with --exportProfile=FILE"


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _shape_hint(doc: Any) -> str:
    """What a JSON document looks like, when it is not what was asked for."""
    if isinstance(doc, dict) and "Layers" in doc:
        return "it looks like --exportLayerInfo output (pass it with --graph)"
    if isinstance(doc, dict) and set(doc) & set(METADATA_SECTIONS):
        return "it looks like trt-engine-explorer metadata (pass it with --metadata)"
    if isinstance(doc, list) and doc and isinstance(doc[0], dict) and "count" in doc[0]:
        return "it looks like --exportProfile output (pass it with --profile)"
    if isinstance(doc, list) and doc and isinstance(doc[0], dict) and "startEnqMs" in doc[0]:
        return "it looks like --exportTimes output (pass it as TIMES)"
    if isinstance(doc, list) and doc and isinstance(doc[0], dict) and {"name", "dimensions", "values"} <= set(doc[0]):
        return "it looks like --exportOutput output (the network's outputs, not timings)"
    return f"it is a JSON {type(doc).__name__}"


# -- --exportTimes ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Times:
    path: Path
    frame: pl.DataFrame  # one row per inference, the TIMES_FIELDS in ms (Float64)

    @property
    def transfers(self) -> bool:
        """True when the inferences copied inputs and outputs (trtexec without --noDataTransfers)."""
        return bool((self.frame["h2dMs"] > 0).any() or (self.frame["d2hMs"] > 0).any())


def read_times(path: Path) -> Times:
    doc = read_json(path, "timing file", _TIMES_FIX)
    if not isinstance(doc, list) or (doc and not isinstance(doc[0], dict)):
        raise TraceError(f"{path} is not trtexec --exportTimes output ({_shape_hint(doc)})", _TIMES_FIX)
    if not doc:
        raise TraceError(f"timing file {path} holds no inferences", "run trtexec for longer (--duration, --iterations)")
    first = doc[0]
    if set(TRT7_FIELDS) & set(first):
        raise TraceError(f"{path} is a TensorRT 7 timing export (startInMs/endInMs fields), whose enqueue and copy "
                         "columns are unreliable (7.1 and 7.2 swapped them)", "re-export it with TensorRT 8 or newer")
    if "startEnqMs" not in first:
        raise TraceError(f"{path} is not trtexec --exportTimes output ({_shape_hint(doc)})", _TIMES_FIX)
    for i, rec in enumerate(doc):
        if not isinstance(rec, dict):
            raise TraceError(f"{path}: inference {i} is not a JSON object", _TIMES_FIX)
        missing = [k for k in TIMES_FIELDS if k not in rec]
        if missing:
            hint = f" ({_shape_hint(doc)})" if i == 0 else ""
            raise TraceError(f"{path}: inference {i} lacks {', '.join(missing)}{hint}", _TIMES_FIX)
        bad = [k for k in TIMES_FIELDS if not _number(rec[k])]
        if bad:
            raise TraceError(f"{path}: inference {i} has a non-numeric {bad[0]} ({rec[bad[0]]!r})", _TIMES_FIX)
    frame = pl.DataFrame({k: [float(r[k]) for r in doc] for k in TIMES_FIELDS}, schema={k: pl.Float64 for k in TIMES_FIELDS})
    _check_times(frame, path)
    return Times(Path(path), frame)


def _check_times(f: pl.DataFrame, path: Path) -> None:
    """Durations are non-negative and agree with trtexec's own arithmetic: latency = h2d +
    compute + d2h, and each duration = end - start within the printed precision (6 significant
    digits, so about 1e-5 of the timestamp)."""
    for col in ("h2dMs", "computeMs", "d2hMs", "latencyMs"):
        neg = f.with_row_index().filter(pl.col(col) < 0)
        if neg.height:
            raise TraceError(f"{path}: inference {neg['index'][0]} has a negative {col}", _TIMES_FIX)
    sums = f.with_row_index().filter(
        (pl.col("h2dMs") + pl.col("computeMs") + pl.col("d2hMs") - pl.col("latencyMs")).abs()
        > 1e-5 * pl.col("latencyMs").abs() + 2e-6)
    if sums.height:
        i = sums["index"][0]
        raise TraceError(f"{path}: inference {i} has latencyMs != h2dMs + computeMs + d2hMs, which trtexec never "
                         "writes", _TIMES_FIX)
    for start, end, dur in (("startH2dMs", "endH2dMs", "h2dMs"), ("startComputeMs", "endComputeMs", "computeMs"),
                            ("startD2hMs", "endD2hMs", "d2hMs")):
        tol = 2e-5 * pl.max_horizontal(pl.col(start).abs(), pl.col(end).abs()) + 2e-6
        off = f.with_row_index().filter((pl.col(end) - pl.col(start) - pl.col(dur)).abs() > tol)
        if off.height:
            raise TraceError(f"{path}: inference {off['index'][0]} has {dur} != {end} - {start}", _TIMES_FIX)


# -- --exportProfile -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    path: Path
    count: int  # profiled inferences
    frame: pl.DataFrame  # name, time_ms, average_ms, median_ms (null before TensorRT 8.4), percentage

    @property
    def per_inference_ms(self) -> float:
        """Sum of the layers' average times: one profiled inference."""
        return float(self.frame["average_ms"].sum())


def read_profile(path: Path) -> Profile:
    doc = read_json(path, "profile", _PROFILE_FIX)
    if not (isinstance(doc, list) and doc and isinstance(doc[0], dict) and "count" in doc[0]):
        raise TraceError(f"{path} is not trtexec --exportProfile output ({_shape_hint(doc)})", _PROFILE_FIX)
    count = doc[0]["count"]
    if not _number(count) or count < 1 or int(count) != count:
        raise TraceError(f"{path}: the profile's count ({count!r}) is not a positive whole number", _PROFILE_FIX)
    layers = doc[1:]
    if not layers:
        raise TraceError(f"profile {path} lists no layers", "export the profile of an engine that ran")
    rows = []
    for i, rec in enumerate(layers):
        if not isinstance(rec, dict):
            raise TraceError(f"{path}: layer entry {i} is not a JSON object", _PROFILE_FIX)
        missing = [k for k in PROFILE_FIELDS if k not in rec]
        if missing:
            raise TraceError(f"{path}: layer entry {i} lacks {', '.join(missing)}", _PROFILE_FIX)
        if not isinstance(rec["name"], str):
            raise TraceError(f"{path}: layer entry {i} has a non-text name", _PROFILE_FIX)
        for k in ("timeMs", "averageMs", "percentage", *(("medianMs",) if "medianMs" in rec else ())):
            if not _number(rec[k]) or rec[k] < 0:
                raise TraceError(f"{path}: layer {rec['name']!r} has an invalid {k} ({rec[k]!r})", _PROFILE_FIX)
        rows.append({"name": rec["name"], "time_ms": float(rec["timeMs"]), "average_ms": float(rec["averageMs"]),
                     "median_ms": float(rec["medianMs"]) if "medianMs" in rec else None,
                     "percentage": float(rec["percentage"])})
    frame = pl.DataFrame(rows, schema={"name": pl.String, "time_ms": pl.Float64, "average_ms": pl.Float64,
                                       "median_ms": pl.Float64, "percentage": pl.Float64})
    total = frame["percentage"].sum()
    if frame["time_ms"].sum() > 0 and abs(total - 100.0) > 1.0:
        raise TraceError(f"{path}: the layers' percentages add up to {total:.1f}, not 100 (a truncated or edited "
                         "profile?)", _PROFILE_FIX)
    return Profile(Path(path), int(count), frame)


# -- --exportLayerInfo -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Graph:
    path: Path
    names: list[str]
    types: dict[str, str]  # layer name -> LayerType, where the export has them
    bindings: list[str]
    inputs: list[dict[str, Any]] = field(default_factory=list)  # engine inputs: name, shape, format
    formats: list[str] = field(default_factory=list)  # the tensor formats/datatypes the layers produce

    def facts(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for t in self.types.values():
            kinds[t] = kinds.get(t, 0) + 1
        return {"layers": len(self.names), "layer_types": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
                "bindings": self.bindings, "inputs": self.inputs, "tensor_formats": self.formats}


def read_graph(path: Path) -> Graph:
    fix = "pass the file trtexec wrote with --exportLayerInfo=FILE"
    doc = read_json(path, "layer information", fix)
    if not isinstance(doc, dict) or not isinstance(doc.get("Layers"), list):
        raise TraceError(f"{path} is not trtexec --exportLayerInfo output ({_shape_hint(doc)})", fix)
    names, types, formats = [], {}, []
    bindings = [b for b in doc.get("Bindings") or [] if isinstance(b, str)]
    inputs = []
    for i, layer in enumerate(doc["Layers"]):
        if isinstance(layer, str):  # --profilingVerbosity=layer_names_only
            names.append(layer)
            continue
        if not isinstance(layer, dict) or not isinstance(layer.get("Name"), str):
            raise TraceError(f"{path}: layer {i} has no Name", fix)
        names.append(layer["Name"])
        if isinstance(layer.get("LayerType"), str):
            types[layer["Name"]] = layer["LayerType"]
        for t in layer.get("Outputs") or []:
            fmt = t.get("Format/Datatype") if isinstance(t, dict) else None
            if isinstance(fmt, str) and fmt not in formats:
                formats.append(fmt)
        for t in layer.get("Inputs") or []:
            if isinstance(t, dict) and t.get("Name") in bindings and all(t.get("Name") != x["name"] for x in inputs):
                inputs.append({"name": t["Name"], "shape": t.get("Dimensions"), "format": t.get("Format/Datatype")})
    if not names:
        raise TraceError(f"{path} lists no layers", fix)
    return Graph(Path(path), names, types, bindings, inputs, formats)


# -- trt-engine-explorer metadata --------------------------------------------------------------------

def read_metadata(path: Path) -> dict[str, dict[str, Any]]:
    fix = "pass a *.metadata.json written by trt-engine-explorer's process_engine.py"
    doc = read_json(path, "metadata", fix)
    if not isinstance(doc, dict) or not set(doc) & set(METADATA_SECTIONS):
        raise TraceError(f"{path} is not trt-engine-explorer metadata ({_shape_hint(doc)})", fix)
    return {k: v for k, v in doc.items() if k in METADATA_SECTIONS and isinstance(v, dict)}
