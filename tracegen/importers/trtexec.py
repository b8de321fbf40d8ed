"""``tracegen import trtexec``: trtexec's exported timings (and optionally its layer profile,
layer information, log and trt-engine-explorer metadata) become a normal run directory.

Each ``--exportTimes`` file is one variant (e.g. one trtexec call per ``--idleTime``). Per
inference the steps are:

- ``idle``: the GPU's idle gap before the inference, from the timeline (start of its first GPU
  work minus the end of the previous inference's last GPU work, floored at 0);
- ``h2d`` / ``d2h``: the copies' GPU times (absent with ``--noDataTransfers``; trtexec times the
  copies on the GPU only, so the host time repeats the GPU time);
- ``infer``: host time = enqueue time (``endEnqMs - startEnqMs``), GPU time = ``computeMs``.

Latency is trtexec's (H2D + compute + D2H on the GPU): the manifest says ``latency.basis = gpu``
and the analysis sums the steps' GPU times. Variant parameters come from the log or metadata
where present, else from the options; a contradiction between them is an error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from tracegen.errors import ConfigError, TraceError
from tracegen.importers import layers as L
from tracegen.importers.common import (ImportedRun, ImportResult, base_manifest, check_steps, file_entry,
                                       new_run_id, variant_name, write_run)
from tracegen.importers.trtexec_files import Graph, Profile, Times, read_graph, read_metadata, read_profile, read_times
from tracegen.importers.trtexec_log import Log, read_log
from tracegen.trace import schema as S

# A profile whose layers add up to less than a third, or more than four times, the timing run's
# median GPU compute time was taken with another engine or input shape (per-layer timing adds
# some overhead, so a matching profile sums to about 1-1.5x in the committed real files).
PROFILE_RATIO_RANGE = (1 / 3, 4.0)
# Share of a profile's layer names that must appear in the engine's layer list (--graph, log).
PROFILE_NAME_MATCH = 0.9


@dataclass(frozen=True)
class TrtexecOptions:
    """Values for what the files do not say (all optional; a contradiction with a file is an error)."""

    idle_ms: float | None = None
    cuda_graph: bool | None = None
    spin_wait: bool | None = None
    batch: int | None = None
    precision: str | None = None
    gpu: str | None = None
    tensorrt_version: str | None = None
    scenario: str = "auto"  # auto | idle | batch
    name: str | None = None


@dataclass
class _Call:
    """One trtexec call: its timing file and what belongs to it."""

    times: Times
    profile: Profile | None = None
    graph: Graph | None = None
    log: Log | None = None
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata_paths: list[Path] = field(default_factory=list)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"value", "from"}


# -- which side file belongs to which timing file ------------------------------------------------------

def _common_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def assign(aux: list[Path], times: list[Path], role: str) -> list[list[Path]]:
    """Attach side files to timing files: with one timing file, all of them; else each goes to the
    timing file whose name shares the longest beginning with it (trt-engine-explorer names them
    X.timing.json, X.profile.json, ...); on a tie, by position when there is one per timing file,
    or to every timing file when there is only one."""
    out: list[list[Path]] = [[] for _ in times]
    if not aux:
        return out
    if len(times) == 1:
        out[0] = list(aux)
        return out
    names = [p.name for p in times]
    for k, a in enumerate(aux):
        scores = [_common_prefix(a.name, n) for n in names]
        best = max(scores)
        winners = [i for i, s in enumerate(scores) if s == best]
        if len(winners) == 1 and best > 0:
            out[winners[0]].append(a)
        elif len(aux) == len(times):
            out[k].append(a)
        elif len(aux) == 1:
            for lst in out:
                lst.append(a)
        else:
            raise ConfigError(f"cannot tell which timing file {role} {a} belongs to",
                              f"name it like its timing file (X.timing.json, X.profile.json), or give one {role} per "
                              "timing file in the same order")
    return out


# -- parameters ---------------------------------------------------------------------------------------

def _enabled(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("enabled", "disabled"):
        return v.strip().lower() == "enabled"
    return None


def _ms_value(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    m = re.match(r"^\s*([\d.]+)\s*ms\s*$", str(v)) if isinstance(v, str) else None
    return float(m.group(1)) if m else None


def _shapes(opts: dict[str, Any]) -> dict[str, list[int]] | None:
    text = next((v for k, v in opts.items() if k.startswith("Input inference shape") and v != "model"), None)
    if not text:
        return None
    shapes = {}
    for part in str(text).split(","):
        name, _, dims = part.strip().rpartition("=")
        try:
            shapes[name.strip() or "input"] = [int(d) for d in dims.split("x")]
        except ValueError:
            return None
    return shapes


def _precision(text: Any) -> str | None:
    if not isinstance(text, str) or not text.strip():
        return None
    return "+".join(p.strip().lower() for p in re.split(r"\+", text) if p.strip())


def _graph_precision(g: Graph | None) -> str | None:
    if g is None:
        return None
    found = [p for p, words in (("int8", ("Int8",)), ("fp8", ("FP8",)), ("fp16", ("FP16", "Half")), ("bf16", ("BF16",)),
                                ("fp32", ("FP32", "Float"))) if any(w in f for f in g.formats for w in words)]
    return "+".join(reversed(found)) or None


def _from_sections(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The variant parameters a log's (or metadata's) sections state; None where they are silent."""
    inf = sections.get("inference_options") or {}
    build = sections.get("build_options") or {}
    shapes = _shapes(inf)
    batch = inf.get("Batch")
    batch_value = None
    if isinstance(batch, (int, str)) and str(batch).strip().isdigit() and int(batch) > 0 and not shapes:
        batch_value = int(batch)
    elif shapes:
        first = next(iter(shapes.values()))
        batch_value = first[0] if first and first[0] > 0 else None
    streams = inf.get("Inference Streams", inf.get("Streams"))
    return {
        "idle_ms": _ms_value(inf["Idle time"]) if "Idle time" in inf else (0.0 if inf else None),
        "cuda_graph": _enabled(inf.get("CUDA Graph")),
        "spin_wait": _enabled(inf.get("Spin-wait")),
        "data_transfers": _enabled(inf.get("Data transfers")),
        "batch": batch_value,
        "shapes": shapes,
        "streams": int(streams) if isinstance(streams, (int, str)) and str(streams).strip().isdigit() else None,
        "sleep_ms": _ms_value(inf.get("Sleep time")) if "Sleep time" in inf else None,
        "precision": _precision(build.get("Precision")),
    }


def _resolve(call: _Call, options: TrtexecOptions, warnings: list[str]) -> None:
    """Each parameter from the log (an error if the options contradict it), else the metadata
    (a warning if they contradict: trt-engine-explorer may have written it for another call),
    else the options, else trtexec's default."""
    log = _from_sections(call.log.sections) if call.log else {}
    meta = _from_sections(call.metadata) if call.metadata else {}
    name = call.times.path.name
    given = {"idle_ms": options.idle_ms, "cuda_graph": options.cuda_graph, "spin_wait": options.spin_wait,
             "batch": options.batch, "precision": options.precision}
    flags = {"idle_ms": "--idle-ms", "cuda_graph": "--cuda-graph/--no-cuda-graph", "spin_wait": "--spin-wait/--no-spin-wait",
             "batch": "--batch", "precision": "--precision"}
    defaults = {"idle_ms": 0.0, "cuda_graph": False, "spin_wait": False, "batch": None, "precision": None,
                "shapes": None, "streams": None, "sleep_ms": None}
    for key in defaults:
        lv, mv, ov = log.get(key), meta.get(key), given.get(key)
        if lv is not None:
            if ov is not None and ov != lv:
                raise ConfigError(f"{flags[key]} {ov} contradicts the log of {name} ({key} {lv})",
                                  f"leave {flags[key]} out, or pass the log of the trtexec call that wrote {name}")
            if mv is not None and mv != lv:
                warnings.append(f"{name}: metadata says {key} {mv}, the log {lv}; the log wins")
            call.params[key] = {"value": lv, "from": "log"}
        elif mv is not None:
            if ov is not None and ov != mv:
                warnings.append(f"{name}: {flags[key]} {ov} contradicts the metadata ({key} {mv}); the option wins")
                call.params[key] = {"value": ov, "from": "option"}
            else:
                call.params[key] = {"value": mv, "from": "metadata"}
        elif ov is not None:
            call.params[key] = {"value": ov, "from": "option"}
        else:
            call.params[key] = {"value": defaults[key], "from": "default"}
    if call.params["batch"]["value"] is None:
        dims = (call.graph.inputs[0].get("shape") if call.graph and call.graph.inputs else None) or []
        b = dims[0] if dims and isinstance(dims[0], int) and dims[0] > 0 else 1
        call.params["batch"] = {"value": b, "from": "layer information" if dims else "default"}
    if call.params["precision"]["value"] is None and _graph_precision(call.graph):
        call.params["precision"] = {"value": _graph_precision(call.graph), "from": "layer information"}
    # Data transfers: the timing file itself says whether copies happened.
    transfers = call.times.transfers
    stated = log.get("data_transfers")
    if stated is not None and stated != transfers and transfers:
        raise TraceError(f"the log of {name} says data transfers {'on' if stated else 'off'}, but its timings "
                         f"{'have' if transfers else 'have no'} copies", f"pass the log of the trtexec call that wrote {name}")
    call.params["data_transfers"] = {"value": transfers, "from": "timings"}


# -- cross-checks -----------------------------------------------------------------------------------------

def _check_log_matches(call: _Call) -> None:
    """The log's performance summary was computed from the same inferences as the timing file."""
    summary = (call.log.summary if call.log else {}).get("GPU Compute Time")
    if not summary or "min" not in summary or "max" not in summary:
        return
    c = call.times.frame["computeMs"]
    for stat, value in (("min", float(c.min())), ("max", float(c.max()))):
        if abs(summary[stat] - value) > 1e-5 * abs(value) + 2e-6:
            raise TraceError(f"the log {call.log.path} reports GPU compute {stat} {summary[stat]:g} ms, but "
                             f"{call.times.path.name} has {value:g} ms: the log comes from another trtexec call",
                             f"pass the log of the call that wrote {call.times.path.name}, or leave --log out")


def _check_profile(call: _Call) -> None:
    p = call.profile
    if p is None:
        return
    names = p.frame["name"].to_list()
    for source, engine in (("layer information " + str(call.graph.path) if call.graph else "", call.graph.names if call.graph else None),
                           ("log " + str(call.log.path) if call.log else "", call.log.profile_layers if call.log else None)):
        if engine:
            known = set(engine)
            share = sum(n in known for n in names) / len(names)
            if share < PROFILE_NAME_MATCH:
                raise TraceError(f"profile {p.path} belongs to another engine: only {share:.0%} of its layers are in "
                                 f"the {source}", f"pass the profile exported with the engine that wrote {call.times.path.name}")
    median = float(call.times.frame["computeMs"].median())
    if median > 0 and p.per_inference_ms > 0:
        ratio = p.per_inference_ms / median
        lo, hi = PROFILE_RATIO_RANGE
        if not lo <= ratio <= hi:
            raise TraceError(f"profile {p.path} belongs to another engine or input shape: its layers add up to "
                             f"{p.per_inference_ms:.3g} ms per inference, {ratio:.2g}x the {median:.3g} ms median GPU "
                             f"compute time of {call.times.path.name}",
                             f"pass the profile exported with the engine that wrote {call.times.path.name}")


# -- building the run ---------------------------------------------------------------------------------------

def _label(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".json", ".timing", ".times", ".engine", ".plan", ".trt", ".onnx"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name or path.stem


def _ns(col: str) -> pl.Expr:
    return (pl.col(col) * 1e6).round(0).cast(pl.Int64)


def _steps(call: _Call, variant_id: int, cursor_ns: int) -> tuple[pl.DataFrame, int]:
    """Long-format steps of one timing file, shifted so the file starts at ``cursor_ns``."""
    f = call.times.frame.with_row_index("iteration").with_columns(
        *[_ns(c).alias(c) for c in call.times.frame.columns])
    t0 = int(min(f["startEnqMs"].min(), f["startH2dMs"].min()))
    f = f.with_columns(*[(pl.col(c) - t0 + cursor_ns).alias(c) for c in ("startEnqMs", "endEnqMs", "startH2dMs",
                                                                          "endH2dMs", "startComputeMs", "endComputeMs",
                                                                          "startD2hMs", "endD2hMs")])
    it = pl.col("iteration").cast(pl.Int32)
    common = [pl.lit(variant_id, pl.Int32).alias("variant_id"), it.alias("iteration"), pl.lit(False).alias("warmup")]
    # idle: from the end of the previous inference's GPU work to the start of this one's
    gaps = f.with_columns(pl.col("endD2hMs").shift(1).alias("prev_end")).filter(pl.col("iteration") > 0)
    parts = [gaps.select(*common, pl.lit("idle").alias("step"), pl.col("prev_end").alias("host_start_ns"),
                         (pl.col("startH2dMs") - pl.col("prev_end")).clip(lower_bound=0).alias("host_ns"),
                         pl.lit(None, pl.Int64).alias("gpu_ns"))]
    if call.times.transfers:
        parts.append(f.select(*common, pl.lit("h2d").alias("step"), pl.col("startH2dMs").alias("host_start_ns"),
                              pl.col("h2dMs").alias("host_ns"), pl.col("h2dMs").alias("gpu_ns")))
    parts.append(f.select(*common, pl.lit("infer").alias("step"), pl.col("startEnqMs").alias("host_start_ns"),
                          (pl.col("endEnqMs") - pl.col("startEnqMs")).alias("host_ns"), pl.col("computeMs").alias("gpu_ns")))
    if call.times.transfers:
        parts.append(f.select(*common, pl.lit("d2h").alias("step"), pl.col("startD2hMs").alias("host_start_ns"),
                              pl.col("d2hMs").alias("host_ns"), pl.col("d2hMs").alias("gpu_ns")))
    order = {s: i for i, s in enumerate(S.STEP_ORDER)}
    steps = pl.concat(parts, how="vertical").with_columns(pl.lit(None, pl.Int16).alias("cpu_core")).with_columns(
        pl.col("step").replace_strict(order, return_dtype=pl.Int8).alias("_o")).sort("iteration", "_o").drop("_o")
    end = int(max(f["endD2hMs"].max(), f["endEnqMs"].max()))
    return steps, end


def _variants(calls: list[_Call], scenario: str) -> pl.DataFrame:
    rows = []
    batches = {c.params["batch"]["value"] for c in calls}
    idles = {c.params["idle_ms"]["value"] for c in calls}
    if scenario == "auto":
        scenario = "batch" if len(batches) > 1 and idles == {0.0} else "idle"
    for vid, c in enumerate(calls):
        p = {k: v["value"] for k, v in c.params.items()}
        idle = float(p["idle_ms"] or 0.0)
        pacing = "sleep" if idle > 0 else "none"
        launch = "graph" if p["cuda_graph"] else "eager"
        sync = "spin" if p["spin_wait"] else "blocking"
        pipeline = "full" if p["data_transfers"] else "infer"
        n = c.times.frame.height
        rows.append({"variant_id": vid, "name": variant_name("trtexec", scenario, p["batch"], idle, pacing, launch, sync,
                                                              pipeline, _label(c.times.path) if len(calls) > 1 else ""),
                     "scenario": scenario, "batch": p["batch"], "idle_ms": idle, "pacing": pacing, "launch": launch,
                     "sync_mode": sync, "pipeline": pipeline, "warmup": 0, "iterations": n, "completed": n,
                     "status": "complete"})
    return pl.DataFrame(rows, schema=S.VARIANTS_SCHEMA)


def _layers(calls: list[_Call]) -> pl.DataFrame | None:
    profiles = [c.profile for c in calls]
    if not any(profiles):
        return None
    shared = len(calls) > 1 and all(p is not None for p in profiles) and len({p.path.resolve() for p in profiles}) == 1
    frames = []
    for vid, c in enumerate(calls):
        if c.profile is None or (shared and vid > 0):
            continue
        types = c.graph.types if c.graph else {}
        f = c.profile.frame
        total = f["time_ms"].sum()
        frames.append(f.with_row_index("layer_index").select(
            pl.lit(None if shared else vid, pl.Int32).alias("variant_id"), pl.col("layer_index").cast(pl.Int32),
            pl.col("name"), pl.col("name").replace_strict(types, default=None, return_dtype=pl.String).alias("layer_type"),
            _ns("time_ms").alias("total_ns"), _ns("average_ms").alias("average_ns"), _ns("median_ms").alias("median_ns"),
            (pl.col("time_ms") / total if total else pl.lit(0.0)).alias("share"),
            pl.lit(c.profile.count, pl.Int32).alias("profiled")))
    return pl.concat(frames).cast(L.LAYERS_SCHEMA)


def _gpu(calls: list[_Call], options: TrtexecOptions) -> dict[str, Any] | None:
    dev = {}
    for c in calls:
        for sections in ((c.log.sections if c.log else {}), c.metadata):
            for k, v in (sections.get("device_information") or {}).items():
                dev.setdefault(k, v)
    name = dev.get("Selected Device") or options.gpu
    if not name:
        return None

    def num(key: str) -> float | None:
        m = re.search(r"[\d.]+", str(dev.get(key, "")))
        return float(m.group(0)) if m else None

    clock = num("Application Compute Clock Rate") or num("Compute Clock Rate")
    mem_clock = num("Application Memory Clock Rate") or num("Memory Clock Rate")
    return {"name": name, "uuid": dev.get("Selected Device UUID"),
            "compute_capability": str(dev["Compute Capability"]) if dev.get("Compute Capability") is not None else None,
            "memory_total_mb": num("Device Global Memory"), "sms": int(num("SMs")) if num("SMs") else None,
            "app_sm_clock_mhz": round(clock * 1000) if clock else None,
            "app_mem_clock_mhz": round(mem_clock * 1000) if mem_clock else None,
            "source": "trtexec log / metadata (Device Information)" if dev else "--gpu option"}


def _load(times: list[Path], profiles: list[Path], graphs: list[Path], logs: list[Path], metadata: list[Path],
          warnings: list[str]) -> list[_Call]:
    if not times:
        raise ConfigError("no timing file given", "pass the files trtexec wrote with --exportTimes")
    calls = [_Call(read_times(t)) for t in times]
    for role, paths, attach in (("profile", profiles, "profile"), ("layer information", graphs, "graph"),
                                ("log", logs, "log"), ("metadata", metadata, "metadata")):
        for call, mine in zip(calls, assign(list(paths), list(times), role)):
            if role == "metadata":
                for m in mine:
                    for k, v in read_metadata(m).items():
                        call.metadata.setdefault(k, v)
                call.metadata_paths = mine
                continue
            if len(mine) > 1:
                raise ConfigError(f"several {role} files belong to {call.times.path.name}: "
                                  f"{', '.join(map(str, mine))}", f"give one {role} per timing file")
            if mine:
                reader = {"profile": read_profile, "graph": read_graph, "log": read_log}[attach]
                setattr(call, attach, reader(mine[0]))
    return calls


# trt-engine-explorer's names for the files beside X.timing.json (process_engine.py writes them).
SIBLINGS = {"profile": (".profile.json",), "graph": (".graph.json",),
            "metadata": (".profile.metadata.json", ".build.metadata.json"), "log": (".profile.log", ".log")}


def siblings(times: Path) -> dict[str, list[Path]]:
    """The side files named like ``times`` (X.timing.json -> X.profile.json, X.graph.json,
    X.profile.metadata.json, X.build.metadata.json, X.profile.log or X.log) that exist."""
    name = times.name
    for suffix in (".gz", ".json", ".timing", ".times"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    found: dict[str, list[Path]] = {}
    for role, suffixes in SIBLINGS.items():
        for suffix in suffixes:
            p = times.with_name(name + suffix)
            if p.is_file() and p != times:
                found.setdefault(role, []).append(p)
                if role in ("log",):
                    break
    return found


def build_trtexec_run(times: list[Path], *, profiles: list[Path] = (), graphs: list[Path] = (), logs: list[Path] = (),
                      metadata: list[Path] = (), options: TrtexecOptions = TrtexecOptions(),
                      command: list[str] | None = None, run_id: str | None = None) -> ImportedRun:
    """Read and check every file, and build the run in memory (nothing is written)."""
    times, profiles, graphs, logs, metadata = (list(map(Path, x)) for x in (times, profiles, graphs, logs, metadata))
    if options.scenario not in ("auto", "idle", "batch"):
        raise ConfigError(f"unknown --scenario {options.scenario!r}", "use auto, idle or batch")
    warnings: list[str] = []
    calls = _load(times, profiles, graphs, logs, metadata, warnings)
    for c in calls:
        _check_log_matches(c)
        _check_profile(c)
        _resolve(c, options, warnings)
    variants = _variants(calls, options.scenario)
    frames, cursor = [], 0
    for vid, c in enumerate(calls):
        steps, cursor = _steps(c, vid, cursor)
        frames.append(steps)
    steps = check_steps(pl.concat(frames, how="vertical"), "the timing files")
    layer_table = _layers(calls)
    labels = list(dict.fromkeys(_label(t) for t in times))
    label = options.name or " + ".join(labels)
    run_id = run_id or new_run_id(options.name or labels[0], "trtexec")
    versions = {v for v in (c.log.tensorrt_version if c.log else None for c in calls) if v} or (
        {options.tensorrt_version} if options.tensorrt_version else set())
    precisions = {c.params["precision"]["value"] for c in calls if c.params["precision"]["value"]}
    graph = next((c.graph for c in calls if c.graph), None)
    has_copies = any(c.times.transfers for c in calls)
    files = []
    for vid, c in enumerate(calls):
        files.append(file_entry(c.times.path, "times", variant_id=vid))
        for role, obj in (("profile", c.profile), ("layer information", c.graph), ("log", c.log)):
            if obj is not None:
                files.append(file_entry(obj.path, role, variant_id=vid))
        files += [file_entry(m, "metadata", variant_id=vid) for m in c.metadata_paths]
    engine: dict[str, Any] = {}
    if graph:
        engine.update(graph.facts())
    for c in calls:
        for sections in ((c.log.sections if c.log else {}), c.metadata):
            for key in ("build_options", "model_options"):
                if sections.get(key):
                    engine.setdefault(key, sections[key])
        if c.log and c.log.engine_facts:
            engine.setdefault("log", c.log.engine_facts)
    manifest = base_manifest(
        "trtexec", run_id, command,
        origin={
            "tool": "trtexec",
            "files": files,
            "variants": [{"variant_id": vid, "times": str(c.times.path), "inferences": c.times.frame.height,
                          "parameters": c.params, "tensorrt_version": c.log.tensorrt_version if c.log else None,
                          "trtexec_command": c.log.command if c.log else None,
                          "summary": c.log.summary if c.log else (c.metadata.get("performance_summary") or None)}
                         for vid, c in enumerate(calls)],
            "notes": [
                "trtexec excludes its warm-up inferences from --exportTimes: every iteration is measured",
                "idle = the GPU's gap between one inference's last GPU work and the next one's first",
                "copies are timed on the GPU only; their host time repeats the GPU time",
                "trtexec prints times with 6 significant digits: 10 us resolution after the first second, so "
                "enqueue times late in a long file are coarse",
                "each file's timeline is shifted so that the files follow one another from 0",
            ],
        },
        config={"options": {k: v for k, v in options.__dict__.items() if v is not None}},
        gpu=_gpu(calls, options),
        backend={"name": "tensorrt", "runner": "trtexec", "precision": "/".join(sorted(precisions)) or "unknown",
                 "versions": {"tensorrt": "/".join(sorted(versions))} if versions else {}},
        model={"spec": label, "kind": "engine",
               "input": ({"name": graph.inputs[0]["name"], "shape": graph.inputs[0]["shape"],
                          "dtype": graph.inputs[0]["format"]} if graph and graph.inputs else None)},
        engine=engine or None,
        latency={"basis": "gpu", "definition": "trtexec's latency: h2dMs + computeMs + d2hMs (GPU times)"},
        pipeline={"steps": ["idle", *(["h2d"] if has_copies else []), "infer", *(["d2h"] if has_copies else [])],
                  "not_applicable": {
                      "preprocess": "trtexec feeds the engine directly", "postprocess": "trtexec feeds the engine directly",
                      "sync": "trtexec exports no host wait times",
                      **({} if has_copies else {"h2d": "--noDataTransfers: no copies", "d2h": "--noDataTransfers: no copies"}),
                  }},
        clock="trtexec's timeline (ms since trtexec started, converted to ns), each file shifted to follow the previous",
        variants_planned=len(calls),
        tables={L.LAYERS: L.table_entry(layer_table)} if layer_table is not None else {},
    )
    return ImportedRun(manifest, variants, steps, {L.LAYERS: layer_table} if layer_table is not None else {}, warnings)


def import_trtexec(times: list[Path], *, out: Path = Path("runs"), run_id: str | None = None, **kwargs: Any) -> ImportResult:
    """Import trtexec exports as a run under ``out``; the Python API behind ``tracegen import trtexec``."""
    run = build_trtexec_run(times, run_id=run_id, **kwargs)
    return write_run(run, Path(out))
