"""``tracegen import trtexec|table``: traces made elsewhere become runs (thin layer over
``tracegen.importers``; bad input raises tracegen errors, which the main CLI prints as one line)."""

from __future__ import annotations

from pathlib import Path

import click

_FILE = click.Path(path_type=Path, dir_okay=False)


def _say_result(result, what: str) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    for w in result.warnings:
        console.print(f"[yellow]warning[/]: {w}")
    plural = "s" if result.variants != 1 else ""
    console.print(f"imported {what}: {result.variants} variant{plural}, {result.iterations} iterations -> {result.run_dir}",
                  soft_wrap=True)
    console.print(f"next: tracegen report {result.run_dir}", soft_wrap=True)


def _command_line() -> list[str]:
    from tracegen.cli.output import command_line

    return command_line()


@click.group("import")
def imports() -> None:
    """Turn traces made elsewhere (trtexec exports, any per-step table) into tracegen runs."""


@imports.command("trtexec")
@click.argument("times", nargs=-1, required=True, type=_FILE)
@click.option("--profile", "profiles", multiple=True, type=_FILE,
              help="trtexec --exportProfile JSON (repeatable: one per TIMES file, or one for all)")
@click.option("--graph", "graphs", multiple=True, type=_FILE,
              help="trtexec --exportLayerInfo JSON: layer types, engine inputs, and a check that the profile fits")
@click.option("--log", "logs", multiple=True, type=_FILE,
              help="trtexec's console output: options, device, TensorRT version, performance summary")
@click.option("--metadata", multiple=True, type=_FILE,
              help="trt-engine-explorer *.metadata.json (profile and build metadata)")
@click.option("--siblings", is_flag=True, help="also read the side files named like each TIMES file (X.timing.json -> "
              "X.profile.json, X.graph.json, X.profile.metadata.json, X.build.metadata.json, X.log)")
@click.option("--idle-ms", type=click.FloatRange(min=0), help="--idleTime of the calls, when no log or metadata says")
@click.option("--cuda-graph/--no-cuda-graph", default=None, help="--useCudaGraph was given, when no log or metadata says")
@click.option("--spin-wait/--no-spin-wait", default=None, help="--useSpinWait was given, when no log or metadata says")
@click.option("--batch", type=click.IntRange(min=1), help="batch size, when no log, metadata or layer information says")
@click.option("--precision", help="engine precision (e.g. fp16, fp32+fp16+int8), when no log or metadata says")
@click.option("--gpu", help="GPU name, when no log or metadata says")
@click.option("--tensorrt-version", help="TensorRT version, when no log says")
@click.option("--scenario", type=click.Choice(["auto", "idle", "batch"]), default="auto", show_default=True,
              help="scenario of the variants; auto: batch when the files differ only in batch size")
@click.option("--name", help="model label  [default: from the first TIMES file's name]")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="directory that receives runs/<run-id>")
@click.option("--run-id", help="name of the run directory  [default: <UTC time>-<name>-trtexec-<random>]")
def trtexec(times, profiles, graphs, logs, metadata, siblings, idle_ms, cuda_graph, spin_wait, batch, precision, gpu,
            tensorrt_version, scenario, name, out, run_id) -> None:
    """Import trtexec --exportTimes files (one variant each) as a run."""
    from tracegen.importers.trtexec import TrtexecOptions, import_trtexec, siblings as find_siblings

    if siblings:
        side = {"profile": list(profiles), "graph": list(graphs), "log": list(logs), "metadata": list(metadata)}
        for t in times:
            for role, paths in find_siblings(t).items():
                side[role] += [p for p in paths if p not in side[role]]
        profiles, graphs, logs, metadata = side["profile"], side["graph"], side["log"], side["metadata"]

    options = TrtexecOptions(idle_ms=idle_ms, cuda_graph=cuda_graph, spin_wait=spin_wait, batch=batch,
                             precision=precision, gpu=gpu, tensorrt_version=tensorrt_version, scenario=scenario,
                             name=name)
    result = import_trtexec(list(times), profiles=list(profiles), graphs=list(graphs), logs=list(logs),
                            metadata=list(metadata), options=options, out=out, run_id=run_id, command=_command_line())
    _say_result(result, "trtexec")


def _step_map(ctx, param, value: str | None) -> dict[str, str]:
    out = {}
    for part in (value or "").split(","):
        if not part.strip():
            continue
        name, sep, step = part.partition("=")
        if not sep or not name.strip() or not step.strip():
            raise click.BadParameter(f"{part!r} is not NAME=STEP", ctx=ctx, param=param)
        out[name.strip()] = step.strip()
    return out


_UNITS = click.Choice(["s", "ms", "us", "ns"])


@imports.command("table")
@click.argument("file", type=_FILE)
@click.option("--iteration-col", default="iteration", show_default=True, help="column with the iteration number")
@click.option("--step-col", default="step", show_default=True, help="column with the step name")
@click.option("--duration-col", help="column with the step's (host) duration  [default: duration or duration_<unit>]")
@click.option("--start-col", help="column with the step's start  [default: start or start_<unit> if present; else "
              "steps are laid end to end]")
@click.option("--gpu-col", help="column with the step's GPU duration  [default: gpu_duration[_<unit>] if present]")
@click.option("--warmup-col", help="boolean column flagging warm-up rows  [default: warmup if present]")
@click.option("--variant-cols", help="comma-separated columns that tell variants apart  [default: all other columns]")
@click.option("--unit", type=_UNITS, help="unit of the durations  [default: from the column name, else ms]")
@click.option("--start-unit", type=_UNITS, help="unit of the starts  [default: --unit]")
@click.option("--gpu-unit", type=_UNITS, help="unit of the GPU durations  [default: --unit]")
@click.option("--step-map", callback=_step_map, help="rename steps onto tracegen's: NAME=STEP,... (steps: idle, "
              "preprocess, h2d, infer, d2h, sync, postprocess)")
@click.option("--warmup", type=click.IntRange(min=0), default=0, show_default=True,
              help="first N iterations of each variant are warm-up (without a warm-up column)")
@click.option("--latency", type=click.Choice(["host", "gpu"]), default="host", show_default=True,
              help="an iteration's latency: the sum of its host durations, or of its GPU durations")
@click.option("--name", help="model label  [default: the file's name]")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="directory that receives runs/<run-id>")
@click.option("--run-id", help="name of the run directory  [default: <UTC time>-<name>-table-<random>]")
def table(file, iteration_col, step_col, duration_col, start_col, gpu_col, warmup_col, variant_cols, unit, start_unit,
          gpu_unit, step_map, warmup, latency, name, out, run_id) -> None:
    """Import a long-form per-step table (CSV, TSV or Parquet) from any harness as a run."""
    from tracegen.importers.table import TableOptions, import_table

    cols = tuple(c.strip() for c in variant_cols.split(",") if c.strip()) if variant_cols is not None else None
    options = TableOptions(iteration=iteration_col, step=step_col, duration=duration_col, start=start_col, gpu=gpu_col,
                           warmup_col=warmup_col, variant_cols=cols, unit=unit, start_unit=start_unit, gpu_unit=gpu_unit,
                           step_map=step_map, warmup=warmup, latency=latency, name=name)
    result = import_table(file, options, out=out, run_id=run_id, command=_command_line())
    _say_result(result, "table")
