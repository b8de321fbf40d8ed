"""Errors a user can fix. The CLI prints them as one line and exits with status 2."""

from __future__ import annotations


class TracegenError(Exception):
    """A problem with the user's input or environment, with what to do about it.

    ``str(err)`` is the single line the CLI prints: ``<problem>: <fix>``.
    """

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}; {fix}" if fix else problem)


class ConfigError(TracegenError):
    """Bad options or config file."""


class ModelError(TracegenError):
    """Missing, unreadable or invalid model."""


class TraceError(TracegenError):
    """Missing, corrupt, truncated or incompatible trace files."""


class BackendError(TracegenError):
    """A backend that cannot run here (missing library, no GPU, engine does not fit)."""


class OutputError(TracegenError):
    """An output that cannot be written (read-only or full disk, permissions)."""


class MissingDependency(TracegenError):
    """An optional package is not installed."""
