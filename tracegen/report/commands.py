"""``tracegen compare``: a thin command over ``report.compare`` (listed in ``tracegen.cli.COMMANDS``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tracegen.params import Number, OutputDir

EXIT_REGRESSION = 1  # --fail-on-regression: a significant slow-down beyond the threshold


@click.command()
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=OutputDir(), help="also write the compare page (index.html, compare.json) into this directory")
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON")
@click.option("--budget-ms", type=Number(0, above=True, unit="ms", example="33"), help="latency budget for the recommended batch size of both runs")
@click.option("--fail-on-regression", "fail_pct", type=click.FloatRange(min=0), metavar="PCT",
              help="exit 1 when a variant's p50 is significantly slower in RUN_B by more than PCT percent (for CI)")
def compare(run_a, run_b, out, as_json, budget_ms, fail_pct) -> None:
    """What changed from RUN_A to RUN_B, variant by variant (matched by parameters): percentiles
    with a Mann-Whitney U test and an interval for the shift of the median, tiers, batch knee
    and budget batch, findings that appeared, disappeared or changed severity."""
    from tracegen.report.compare import compare as compare_sides, regressions, side_from_run
    from tracegen.report.compare_view import print_compare, write_compare

    result = compare_sides(side_from_run(run_a, budget_ms=budget_ms), side_from_run(run_b, budget_ms=budget_ms))
    regressed = regressions(result, fail_pct) if fail_pct is not None else None
    if as_json:
        click.echo(json.dumps({**result, "regressions": [v["key"] for v in regressed or []]}, indent=2))
    else:
        from tracegen.cli.output import console as make_console

        console = make_console()
        if not console.is_terminal:
            console.width = max(console.width, 120)  # a CI log: no wrapped table cells
        print_compare(console, result, regressed)
    if out is not None:
        page = write_compare(result, out)
        click.echo(f"compare page: {page}", err=as_json)
    if regressed:
        sys.exit(EXIT_REGRESSION)
