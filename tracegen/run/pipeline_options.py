"""Click types of the pipeline options (``--preprocess``, ``--postprocess``, ``--arrival``,
``--schedule``): the parsers of tracegen.prepost.user, tracegen.run.arrivals and
tracegen.run.schedule, failing with the same one-line messages as every other option."""

from __future__ import annotations

from typing import Any, Callable

from tracegen.errors import ConfigError
from tracegen.params import _Typed, option_name


class _FromParser(_Typed):
    """A type whose value is checked by one of tracegen's parsers, kept as its text (so the
    resolved config stays JSON); callables pass through for the Python API."""

    parser: Callable[[Any], Any]
    spec: Callable[[Any], str]

    def convert(self, value, param, ctx):
        if callable(value) and not isinstance(value, str) and self.allow_callable:
            return value
        try:
            return self.spec(self.parser(value))
        except ConfigError as exc:
            name = option_name(param)
            problem = exc.problem[len(name):].lstrip() if exc.problem.startswith(name) else exc.problem
            self.fail_with(problem, param, ctx, fix=exc.fix)

    allow_callable = False


class StepPlace(_FromParser):
    """``host``, ``device`` or ``MODULE:FUNCTION`` (or, from Python, the function itself)."""

    name = "step"
    allow_callable = True

    def __init__(self, option: str):
        from tracegen.prepost.user import check_spec

        self.example = "device"
        self.parser = lambda v: check_spec(option, v)
        self.spec = str

    def get_metavar(self, param, ctx=None) -> str:
        return "host|device|MODULE:FUNCTION"


class ArrivalPattern(_FromParser):
    name = "arrival"
    example = "poisson"

    def __init__(self):
        from tracegen.run.arrivals import parse_arrival

        self.parser = parse_arrival
        self.spec = lambda a: a.spec

    def get_metavar(self, param, ctx=None) -> str:
        return "fixed|poisson|burst:N"


class ScheduleSpec(_FromParser):
    name = "schedule"
    example = "0:200,20:200,0:200"

    def __init__(self):
        from tracegen.run.schedule import parse_schedule

        self.parser = parse_schedule
        self.spec = lambda s: s.spec

    def get_metavar(self, param, ctx=None) -> str:
        return "GAP_MS:N,..."
