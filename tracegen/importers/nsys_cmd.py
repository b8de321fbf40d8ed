"""The ``tracegen nsys-import`` command (registered in ``tracegen.cli`` with one line)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("nsys-import")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("report", required=False, type=click.Path(path_type=Path))
@click.option("--domain", help="NVTX domain of the ranges  [default: tracegen for a run directory; the default "
              "domain (torch.cuda.nvtx, plain nvtxRangePush) for an application's report]")
@click.option("--iteration-range", help="application reports: name of the NVTX range around one iteration")
@click.option("--step", "steps", multiple=True, metavar="NAME=STEP",
              help="application reports: map a nested range onto a tracegen step (repeatable)")
@click.option("--out", "-o", default="runs", show_default=True, type=click.Path(path_type=Path),
              help="application reports: directory that receives the new run")
@click.option("--run-id", help="application reports: name of the new run directory  [default: nsys-<report name>]")
def nsys_import(source, report, domain, iteration_range, steps, out, run_id) -> None:
    """Join an Nsight Systems report with a run: the GPU kernels, copies and memsets each step
    launched, their time, gaps and launch latency (nsys_steps.parquet, nsys_kernels.parquet).

    SOURCE is a run directory (REPORT defaults to the run's own profile.nsys-rep) or, to turn an
    application's NVTX-annotated report into a new run, an .nsys-rep / .sqlite file. An .nsys-rep
    is exported with `nsys export --type sqlite` first (nsys must be on PATH)."""
    from rich.console import Console

    from tracegen.importers.nsys_summary import print_summary
    from tracegen.trace.reader import is_run_dir

    console = Console(highlight=False)
    if is_run_dir(source):
        from tracegen.importers.nsys import TRACEGEN_DOMAIN, import_into_run

        result = import_into_run(source, report, domain=domain or TRACEGEN_DOMAIN)
    else:
        from tracegen.errors import ConfigError
        from tracegen.importers.nsys_app import check_iteration_range, parse_step_map, report_to_run

        if report is not None:
            raise ConfigError(f"{source} is not a run directory, so it must be the report itself",
                              "pass either RUN_DIR [REPORT] or one .nsys-rep / .sqlite file")
        result = report_to_run(source, out, domain=domain or "(default)",
                               iteration_range=check_iteration_range(iteration_range), run_id=run_id,
                               step_map=parse_step_map(steps))
    print_summary(console, result)
