"""Command line: a thin layer over the Python API (``tracegen.run.run_benchmark``,
``tracegen.report.site.build_site``, ``tracegen.analysis.findings.analyze``).

Each command lives in its own module and is listed once in ``COMMANDS``; it is imported only
when used (or when ``--help`` lists it). Errors a user can fix print as one line and exit 2.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

import click

from tracegen import __version__
from tracegen.cli.output import printable
from tracegen.errors import TracegenError

EXIT_FINDINGS = 1  # analyze --fail-on: findings at or above the level
EXIT_USAGE = 2  # bad input, or anything else that kept the command from doing its work
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM, whenever it arrives

# command name -> "module:attribute" of its click command. Adding a command is one line here.
COMMANDS = {
    "run": "tracegen.cli.run:run",
    "report": "tracegen.cli.report:report",
    "analyze": "tracegen.cli.analyze:analyze",
    "import": "tracegen.importers.cli:imports",
    "nsys-import": "tracegen.importers.nsys_cmd:nsys_import",
    "compare": "tracegen.report.commands:compare",
}


class _Commands(click.Group):
    """A group whose commands are imported on first use, so ``tracegen run`` never loads the
    report's dependencies and a command added in ``COMMANDS`` needs nothing else."""

    def list_commands(self, ctx):
        return [*COMMANDS, *sorted(super().list_commands(ctx))]

    def get_command(self, ctx, name):
        if name in COMMANDS:
            module, _, attr = COMMANDS[name].partition(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tracegen")
def cli() -> None:
    """Per-step inference traces (NVTX-annotated Parquet) and reports that explain batch
    scaling and idle-delay latency tiers."""


def _fail(text: str, code: int) -> None:
    click.echo(printable(text), err=True)
    sys.exit(code)


def _stop(signum, frame):
    raise KeyboardInterrupt  # SIGTERM: the same clean stop as Ctrl-C, whatever is running


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors become one line on stderr and exit status 2."""
    try:
        signal.signal(signal.SIGTERM, _stop)  # from the start, so it always ends as 130, never 143
    except ValueError:  # not the main thread
        pass
    try:
        cli.main(args=argv, prog_name="tracegen", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:  # bare `tracegen`: show help
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        cmd = exc.ctx.command_path if exc.ctx else "tracegen"
        _fail(f"{cmd}: error: {exc.format_message().rstrip('.')}; see `{cmd} --help`", EXIT_USAGE)
    except click.Abort:
        _fail("tracegen: interrupted", EXIT_INTERRUPTED)
    except TracegenError as exc:
        _fail(f"tracegen: error: {exc}", exc.exit_code)
    except KeyboardInterrupt:
        _fail("tracegen: interrupted", EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback on request
        if os.environ.get("TRACEGEN_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(f"tracegen: internal error: {type(exc).__name__}: {first} (set TRACEGEN_DEBUG=1 for the traceback "
              "and please report it)", EXIT_USAGE)
    sys.exit(0)
