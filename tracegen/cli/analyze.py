"""``tracegen analyze``: one run's findings, for people (a table) and for CI (JSON, exit codes).

Exit status: 0 analysed (and nothing at or above ``--fail-on``); 1 findings at or above
``--fail-on``; 2 could not analyse (bad input, damaged run, no measured iterations, internal
error), or, with ``--fail-on``, the run is not complete (its findings would cover part of it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tracegen.cli.output import console as make_console, finding_line, markup
from tracegen.cli.report import BUDGET_MS
from tracegen.params import OneOf

SEVERITIES = ("critical", "warning", "info")


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the findings as JSON (with the run's status)")
@click.option("--budget-ms", type=BUDGET_MS, help="latency budget for the recommended batch size")
@click.option("--fail-on", type=OneOf(SEVERITIES),
              help="exit 1 when a finding of this severity or worse is present, 2 when the run is not complete (for CI)")
def analyze(run_dir, as_json, budget_ms, fail_on) -> None:
    """Print the findings of one run (terminal table or JSON)."""
    import json

    from tracegen.analysis.findings import SEVERITY_ORDER, analyze as analyze_run
    from tracegen.errors import TraceError
    from tracegen.report.iterations import read_iterations
    from tracegen.trace.reader import require_measurements, run_state

    run, iters = read_iterations(run_dir)  # as the report: the steps streamed, never whole in memory
    require_measurements(run, iters)
    result = analyze_run(run, budget_ms=budget_ms, iters=iters)
    state = run_state(run, iters)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "run": state}, indent=2, default=str))
    else:
        console = make_console()
        console.print(f"[bold]{markup(result.run_id)}[/]: {len(result.findings)} findings")
        if not state["complete"]:
            console.print(f"[yellow]run {state['status']}[/]: {markup(state['note'])}")
        for f in result.findings:
            console.print(finding_line(f))
            console.print(f"           {markup(f.summary)}")
            for m in f.mitigations:
                first = m.action.strip().splitlines()[0] if m.action.strip() else ""
                more = " ..." if len(m.action.strip().splitlines()) > 1 else ""
                console.print(f"           -> {markup(m.title)}: [dim]{markup(first)}{more}[/]")
    if fail_on:
        threshold = SEVERITY_ORDER.index(fail_on)
        if any(SEVERITY_ORDER.index(f.severity) <= threshold for f in result.findings):
            sys.exit(1)
        if not state["complete"]:
            raise TraceError(f"run {result.run_id} is {state['status']}: {state['note']}",
                             "with --fail-on, only a complete run passes; let it finish or `tracegen run --resume` it")
