"""Command line: a thin layer over the Python API (runner.run_benchmark, report.site.build_site,
analysis.findings.analyze). Errors a user can fix print as one line and exit with status 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from tracegen import __version__
from tracegen.errors import TracegenError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tracegen")
def cli() -> None:
    """Per-step inference traces (NVTX-annotated Parquet) and reports that explain batch
    scaling and idle-delay latency tiers."""


# -- run -----------------------------------------------------------------------------------------
_LIST = "comma-separated list"


@cli.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file with any of these options (keys as option names); flags win.")
@click.option("--model", "-m", help="builtin:tiny|small|large, an .onnx file, or a TensorRT engine (.engine/.plan). "
              "Default: builtin:tiny on the CPU, builtin:small on a GPU.")
@click.option("--backend", "-b", help="auto|onnxruntime|torch|tensorrt  [default: auto]")
@click.option("--precision", help="auto|fp32|fp16  [default: fp32 on the CPU, fp16 on a GPU]")
@click.option("--scenario", "scenarios", help=f"batch,idle ({_LIST})  [default: both]")
@click.option("--batch-sizes", help=f"batch scenario sizes ({_LIST}) [default: CPU 1,2,4,8,16; GPU 1..64]")
@click.option("--idle-batch", help="batch size of the idle-delay variants  [default: 1]")
@click.option("--idle-ms", help=f"idle gaps in ms ({_LIST}); 0 is the continuous baseline  [default: 0,20,100]")
@click.option("--pacing", help=f"sleep,spin,keepalive ({_LIST})  [default: CPU sleep,spin; GPU all three]")
@click.option("--launch", help=f"eager,graph ({_LIST})  [default: CPU eager; GPU both]")
@click.option("--sync-mode", help=f"auto,spin,yield,blocking: how the host waits for the GPU ({_LIST})  [default: auto]")
@click.option("--pipeline", help=f"full (pre, copies, infer, sync, post), infer (engine alone) ({_LIST})  [default: full]")
@click.option("--iterations", "-n", help="measured iterations per idle-delay variant  [default: CPU 300, GPU 400]")
@click.option("--batch-iterations", help="measured iterations per batch variant  [default: CPU 30, GPU 100]")
@click.option("--warmup", help="warm-up iterations per variant, recorded and flagged  [default: CPU 10, GPU 20]")
@click.option("--threads", help="CPU backend threads  [default: onnxruntime's]")
@click.option("--out", "-o", help="directory that receives runs/<run-id>  [default: runs]")
@click.option("--run-id", help="name of the run directory  [default: <UTC time>-<model>-<backend>-<random>]")
@click.option("--telemetry-ms", help="telemetry sampling interval in ms  [default: 50]")
@click.option("--flush-every", help="iterations between incremental writes to disk  [default: 500]")
@click.option("--seed", help="seed of the synthetic input frames  [default: 0]")
@click.option("--device", "device_index", help="CUDA device index  [default: 0]")
@click.option("--nsys", is_flag=True, default=None, help="also record the run under `nsys profile` and keep the .nsys-rep")
@click.option("--quiet", "-q", is_flag=True, help="no progress output")
def run(config_file, quiet, **flags) -> None:
    """Benchmark a model in the batch-scaling and idle-delay scenarios and record every step."""
    from tracegen.config import build_config, load_toml
    from tracegen.runner import run_benchmark

    file_values = load_toml(config_file) if config_file else {}
    config = build_config(file_values, flags)
    console = _console()
    if config.nsys:
        from tracegen.telemetry.nsys import run_under_nsys

        result = run_under_nsys(config, argv=sys.argv, console=console)
    else:
        result = run_benchmark(config, command=_command_line(), console=console, progress=not quiet)
    if result.status == "interrupted":
        console.print(f"[yellow]interrupted[/]: kept {result.iterations} iterations in {result.run_dir}")
        sys.exit(EXIT_INTERRUPTED)
    console.print(f"run {result.run_id}: {result.variants_done} variants, {result.iterations} iterations -> {result.run_dir}")
    console.print(f"next: tracegen report {result.run_dir}")


def _command_line() -> list[str]:
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):
        argv[0] = "python -m tracegen"
    elif argv:
        argv[0] = Path(argv[0]).name
    return argv


# -- report --------------------------------------------------------------------------------------
@cli.command()
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "-o", default="site", show_default=True, type=click.Path(path_type=Path),
              help="directory of the static site")
@click.option("--budget-ms", type=float, help="latency budget for the recommended batch size")
def report(runs, out, budget_ms) -> None:
    """Analyse run directories (default: every run under ./runs) and write the HTML site."""
    from tracegen.report.site import build_site
    from tracegen.trace.reader import find_runs

    from tracegen.report.site import EXIT_SKIPPED

    run_dirs = find_runs(list(runs) or [Path("runs")])
    result = build_site(run_dirs, out, budget_ms=budget_ms)
    console = _console()
    _print_findings(console, result)
    reused = f", {len(result.reused)} unchanged" if getattr(result, "reused", None) else ""
    console.print(f"site: {result.index}  ({len(run_dirs)} run{'s' if len(run_dirs) != 1 else ''}{reused})")
    for s in getattr(result, "skipped", []):
        click.echo(f"tracegen: skipped {s.id}: {s.problem}", err=True)
    if getattr(result, "skipped", None):
        sys.exit(EXIT_SKIPPED)  # the site is written; some runs are listed as skipped


def _print_findings(console, result) -> None:
    findings = getattr(result, "findings", None) or {}
    for run_id, items in findings.items():
        console.print(f"[bold]{run_id}[/]")
        if not items:
            console.print("  no findings")
        for f in items:
            colour = {"critical": "red", "warning": "yellow"}.get(f.severity, "cyan")
            console.print(f"  [{colour}]{f.severity:8}[/] {f.title}")


# -- analyze -------------------------------------------------------------------------------------
@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the findings as JSON")
@click.option("--budget-ms", type=float, help="latency budget for the recommended batch size")
@click.option("--fail-on", type=click.Choice(["critical", "warning", "info"]),
              help="exit 1 when a finding of this severity or worse is present (for CI)")
def analyze(run_dir, as_json, budget_ms, fail_on) -> None:
    """Print the findings of one run (terminal table or JSON)."""
    import json

    from tracegen.analysis.findings import SEVERITY_ORDER, analyze as analyze_run
    from tracegen.trace.reader import read_run

    result = analyze_run(read_run(run_dir), budget_ms=budget_ms)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        console = _console()
        console.print(f"[bold]{result.run_id}[/]: {len(result.findings)} findings")
        for f in result.findings:
            colour = {"critical": "red", "warning": "yellow"}.get(f.severity, "cyan")
            console.print(f"  [{colour}]{f.severity:8}[/] {f.title}")
            console.print(f"           {f.summary}")
            for m in f.mitigations:
                first = m.action.strip().splitlines()[0] if m.action.strip() else ""
                more = " ..." if len(m.action.strip().splitlines()) > 1 else ""
                console.print(f"           -> {m.title}: [dim]{first}{more}[/]")
    if fail_on:
        threshold = SEVERITY_ORDER.index(fail_on)
        if any(SEVERITY_ORDER.index(f.severity) <= threshold for f in result.findings):
            sys.exit(1)


from tracegen.report.commands import compare  # noqa: E402 - command modules register here

cli.add_command(compare)


# -- entry point -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors become one line on stderr and exit status 2."""
    try:
        cli.main(args=argv, prog_name="tracegen", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:  # bare `tracegen`: show help
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        cmd = exc.ctx.command_path if exc.ctx else "tracegen"
        click.echo(f"{cmd}: error: {exc.format_message().rstrip('.')}; see `{cmd} --help`", err=True)
        sys.exit(EXIT_USAGE)
    except click.Abort:
        click.echo("tracegen: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except TracegenError as exc:
        click.echo(f"tracegen: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("tracegen: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback on request
        if os.environ.get("TRACEGEN_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(f"tracegen: internal error: {type(exc).__name__}: {first} (set TRACEGEN_DEBUG=1 for the traceback "
                   "and please report it)", err=True)
        sys.exit(1)
    sys.exit(0)
