"""``tracegen report``: analyse runs and write the static site."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tracegen.cli.output import console as make_console, finding_line, markup, printable
from tracegen.params import Number, OutputDir

BUDGET_MS = Number(0, above=True, unit="ms", example="33")


@click.command()
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "-o", default="site", show_default=True, type=OutputDir(), help="directory of the static site")
@click.option("--budget-ms", type=BUDGET_MS, help="latency budget for the recommended batch size")
def report(runs, out, budget_ms) -> None:
    """Analyse run directories (default: every run under ./runs) and write the HTML site."""
    from tracegen.report.site import EXIT_SKIPPED, build_site
    from tracegen.trace.reader import find_runs

    run_dirs = find_runs(list(runs) or [Path("runs")])
    result = build_site(run_dirs, out, budget_ms=budget_ms)
    console = make_console()
    for run_id, items in (getattr(result, "findings", None) or {}).items():
        console.print(f"[bold]{markup(run_id)}[/]")
        if not items:
            console.print("  no findings")
        for f in items:
            console.print(finding_line(f))
    reused = f", {len(result.reused)} unchanged" if getattr(result, "reused", None) else ""
    console.print(f"site: {markup(result.index)}  ({len(run_dirs)} run{'s' if len(run_dirs) != 1 else ''}{reused})")
    skipped = getattr(result, "skipped", None) or []
    for s in skipped:
        click.echo(printable(f"tracegen: skipped {s.id}: {s.problem}"), err=True)
    if skipped:
        sys.exit(EXIT_SKIPPED)  # the site is written; the skipped runs are listed on its index
