"""``tracegen run``: its options are the fields of ``RunConfig`` (tracegen/run/config.py), plus
the few below that belong to the command itself. A ``--config`` file becomes click's
``default_map``, so its values pass through the same types as the flags."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tracegen.cli.output import command_line, console as make_console, markup
from tracegen.params import CONFIG_FILE_META
from tracegen.run.config import RunConfig, load_toml, specs
from tracegen.run.options import click_params

EXIT_INTERRUPTED = 130


def _load_config_file(ctx: click.Context, param: click.Parameter, value: Path | None):
    if value is not None:
        ctx.meta[CONFIG_FILE_META] = value
        ctx.default_map = {**(ctx.default_map or {}), **load_toml(value)}
    return value


_CONFIG_HELP = ("a TOML file with any of the options above (keys as option names, optionally under `[run]`); "
                "flags win")
_QUIET_HELP = "no progress output"
_RESUME_HELP = ("continue the interrupted or killed run in `RUN_DIR` with its own settings, from its first "
                "incomplete variant (no other options)")
# Options of the command that are not settings of a run (and so not in a config file).
COMMAND_OPTIONS = [
    click.Option(["--config", "config_file"], type=click.Path(dir_okay=False, path_type=Path), is_eager=True,
                 callback=_load_config_file, help=_CONFIG_HELP.replace("`", "")),
    click.Option(["--resume", "resume"], type=click.Path(file_okay=False, path_type=Path), metavar="RUN_DIR",
                 help=_RESUME_HELP.replace("`", "")),
    click.Option(["--quiet", "-q", "quiet"], is_flag=True, help=_QUIET_HELP),
]
# The same, as rows of the README's option table.
COMMAND_ONLY_OPTIONS = [("`--config`", _CONFIG_HELP, ""), ("`--resume`", _RESUME_HELP, ""),
                        ("`--quiet`, `-q`", _QUIET_HELP, "off")]


def _run(config_file, resume, quiet, **values) -> None:
    """Benchmark a model in the batch-scaling and idle-delay scenarios and record every step."""
    from tracegen.run import run_benchmark

    console = make_console()
    if resume is not None:
        given = [name for name, v in values.items() if v is not None]
        if given or config_file is not None:
            flags = ", ".join(["--config"] * (config_file is not None) + [s.flag for s in specs() if s.name in given])
            raise click.UsageError(f"--resume continues with the run's own settings; leave out {flags}")
        console.print(f"resuming {markup(resume)} with its own settings")
        result = run_benchmark(None, command=command_line(), console=console, progress=not quiet, resume=resume)
        _report(console, result)
        return
    config = RunConfig(**{k: v for k, v in values.items() if v is not None})
    from tracegen.telemetry.nsys import run_under_nsys, wants_nsys

    if wants_nsys(config):
        result = run_under_nsys(config, argv=sys.argv, console=console)
    else:
        result = run_benchmark(config, command=command_line(), console=console, progress=not quiet)
    _report(console, result)


def _report(console, result) -> None:
    where = markup(result.run_dir)
    if result.status == "interrupted":
        console.print(f"[yellow]interrupted[/]: kept {result.iterations} iterations in {where}")
        sys.exit(EXIT_INTERRUPTED)
    console.print(f"run {markup(result.run_id)}: {result.variants_done} variants, {result.iterations} iterations "
                  f"-> {where}")
    console.print(f"next: tracegen report {where}")


run = click.Command("run", callback=_run, params=[*click_params(specs()), *COMMAND_OPTIONS],
                    help=_run.__doc__, short_help="Benchmark a model and record every step.")


def parse_args(argv: list[str]) -> RunConfig:
    """The ``RunConfig`` that ``tracegen run ARGV`` would run, without running it; every problem
    is a ``ConfigError`` (the one line the CLI prints)."""
    from tracegen.errors import ConfigError

    try:
        ctx = run.make_context("run", list(argv))
    except click.exceptions.Exit:
        raise ConfigError("--help or --version given", "leave them out") from None
    except click.UsageError as exc:
        raise ConfigError(exc.format_message().rstrip(".")) from None
    values = {k: v for k, v in ctx.params.items() if k not in ("config_file", "resume", "quiet") and v is not None}
    return RunConfig(**values)
