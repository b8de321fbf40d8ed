"""``tracegen import trtexec|table``: traces made elsewhere become runs (thin layer over
``tracegen.importers``; bad input raises tracegen errors, which the main CLI prints as one line)."""

from __future__ import annotations

import sys
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
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):
        argv[0] = "python -m tracegen"
    elif argv:
        argv[0] = Path(argv[0]).name
    return argv


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
def trtexec(times, profiles, graphs, logs, metadata, idle_ms, cuda_graph, spin_wait, batch, precision, gpu,
            tensorrt_version, scenario, name, out, run_id) -> None:
    """Import trtexec --exportTimes files (one variant each) as a run."""
    from tracegen.importers.trtexec import TrtexecOptions, import_trtexec

    options = TrtexecOptions(idle_ms=idle_ms, cuda_graph=cuda_graph, spin_wait=spin_wait, batch=batch,
                             precision=precision, gpu=gpu, tensorrt_version=tensorrt_version, scenario=scenario,
                             name=name)
    result = import_trtexec(list(times), profiles=list(profiles), graphs=list(graphs), logs=list(logs),
                            metadata=list(metadata), options=options, out=out, run_id=run_id, command=_command_line())
    _say_result(result, "trtexec")
