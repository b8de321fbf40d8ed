"""Click parameter types shared by every command and by the TOML config file.

A value from the command line (a string) and one from a config file (a TOML int, float, list
or string) go through the same ``convert``, so both are validated by the same code and fail
with the same one-line message, which names the option and an example of a good value.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable

import click
from click.core import ParameterSource

INT32_MAX = 2**31 - 1  # counts are stored as Int32 in the trace files
CONFIG_FILE_META = "tracegen.config_file"  # ctx.meta key: the TOML file that gave default_map


class OptionError(click.BadParameter):
    """A bad option value; the message already names the option and the fix."""

    def format_message(self) -> str:
        return self.message


def option_name(param: click.Parameter | None) -> str:
    if param is None:
        return "value"
    opts = getattr(param, "opts", None) or []
    longest = max(opts, key=len) if opts else (param.name or "value")
    return longest if longest.startswith("-") else f"--{longest}"


class _Typed(click.ParamType):
    example = ""  # a good value, for the fix half of the message

    def fail_with(self, problem: str, param, ctx, fix: str | None = None):
        name = option_name(param)
        where = ""
        if ctx is not None and param is not None and param.name is not None:
            if ctx.get_parameter_source(param.name) == ParameterSource.DEFAULT_MAP:
                source = ctx.meta.get(CONFIG_FILE_META)
                where = f"config file {source}: " if source else "config: "
        fix = fix if fix is not None else (f"e.g. {name} {self.example}" if self.example else None)
        text = f"{where}{name} {problem}"
        raise OptionError(f"{text}; {fix}" if fix else text, ctx=ctx, param=param)


class Count(_Typed):
    """A whole number in [minimum, maximum]; floats such as 2.7 (or 3.0) and booleans are refused
    rather than truncated, wherever they come from."""

    name = "integer"

    def __init__(self, minimum: int = 0, maximum: int = INT32_MAX, example: str = "100"):
        self.minimum, self.maximum, self.example = minimum, maximum, example

    def get_metavar(self, param, ctx=None) -> str:
        return "N"

    def parse(self, value: Any, param=None, ctx=None) -> int:
        if isinstance(value, bool) or isinstance(value, float):
            self.fail_with(f"takes a whole number, got {value!r}", param, ctx)
        if isinstance(value, int):
            n = value
        else:
            text = str(value).strip()
            try:
                n = int(text, 10)
            except ValueError:
                self.fail_with(f"takes a whole number, got {text!r}", param, ctx)
        if n < self.minimum:
            self.fail_with(f"must be at least {self.minimum}, got {n}", param, ctx)
        if n > self.maximum:
            self.fail_with(f"must be at most {self.maximum}, got {n}", param, ctx)
        return n

    def convert(self, value, param, ctx):
        return self.parse(value, param, ctx)


class Number(_Typed):
    """A finite float in [minimum, maximum] (nan and inf are refused); ``above`` makes the lower
    bound exclusive."""

    name = "number"

    def __init__(self, minimum: float = 0.0, maximum: float = math.inf, *, above: bool = False, unit: str = "",
                 example: str = "20"):
        self.minimum, self.maximum, self.above, self.unit, self.example = minimum, maximum, above, unit, example

    def get_metavar(self, param, ctx=None) -> str:
        return "MS" if self.unit == "ms" else "X"

    def parse(self, value: Any, param=None, ctx=None) -> float:
        if isinstance(value, bool):
            self.fail_with(f"takes a number, got {value!r}", param, ctx)
        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail_with(f"takes {'milliseconds' if self.unit == 'ms' else 'a number'}, got {str(value)!r}", param, ctx)
        low_ok = x > self.minimum if self.above else x >= self.minimum
        if not (math.isfinite(x) and low_ok and x <= self.maximum):
            unit = f" {self.unit}" if self.unit else ""
            if self.above and math.isinf(self.maximum):
                bound = f"a finite number above {_num(self.minimum)}{unit}"
            else:
                bound = f"between {_num(self.minimum)} and {_num(self.maximum)}{unit}"
            self.fail_with(f"must be {bound}, got {value}", param, ctx)
        return x

    def convert(self, value, param, ctx):
        return self.parse(value, param, ctx)


def _num(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and x == int(x) else f"{x:g}"


class OneOf(_Typed):
    """One of a fixed set of names (case-sensitive, as written in the files of a run)."""

    name = "choice"

    def __init__(self, choices: Iterable[str]):
        self.choices = tuple(choices)

    def get_metavar(self, param, ctx=None) -> str:
        return "|".join(self.choices)

    def parse(self, value: Any, param=None, ctx=None) -> str:
        text = value if isinstance(value, str) else str(value)
        if text not in self.choices:
            raise self._unknown(text, param, ctx)
        return text

    def _unknown(self, text, param, ctx):
        name = option_name(param)
        try:
            self.fail_with(f"{text!r} is unknown", param, ctx, fix=f"choose from: {', '.join(self.choices)}")
        except OptionError as exc:  # say it as "unknown --x 'y'", the form users grep for
            exc.message = exc.message.replace(f"{name} {text!r} is unknown", f"unknown {name} {text!r}")
            return exc

    def convert(self, value, param, ctx):
        return self.parse(value, param, ctx)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(c) for c in self.choices if c.startswith(incomplete)]


class CommaList(_Typed):
    """A comma-separated list on the command line, or a TOML list; items converted by ``item``,
    duplicates dropped (first kept), an empty list refused."""

    name = "list"

    def __init__(self, item: Count | Number | OneOf, example: str | None = None):
        self.item = item
        self.example = example or getattr(item, "example", "")

    def get_metavar(self, param, ctx=None) -> str:
        if isinstance(self.item, OneOf):
            return ",".join(self.item.choices)
        return f"{self.item.get_metavar(param, ctx)},..."

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            items = list(value)
        elif isinstance(value, str):
            items = [part.strip() for part in value.split(",")]
            items = [part for part in items if part]
        else:
            items = [value]
        if not items:
            self.fail_with("is empty", param, ctx)
        out = []
        for item in items:
            try:
                out.append(self.item.parse(item, param, ctx))
            except OptionError as exc:
                if isinstance(self.item, Count) and "whole number" in exc.message:
                    exc.message = exc.message.replace("takes a whole number", "takes whole numbers")
                raise
        return tuple(dict.fromkeys(out))


class Switch(_Typed):
    """On or off: a flag on the command line, ``true``/``false`` in a config file."""

    name = "boolean"
    WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}

    def convert(self, value, param, ctx):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in self.WORDS:
            return self.WORDS[value.strip().lower()]
        self.fail_with(f"takes true or false, got {value!r}", param, ctx, fix=f"write {option_name(param).lstrip('-')} = true")


class PlainName(_Typed):
    """A directory name with no path in it (a run id)."""

    name = "name"
    example = "baseline-1"

    def convert(self, value, param, ctx):
        text = str(value)
        if (not text or text in (".", "..") or "/" in text or "\\" in text or text.startswith(".")
                or any(ord(c) < 32 for c in text)):
            self.fail_with(f"{text!r} is not a plain directory name", param, ctx,
                           fix="use letters, digits, '-' and '_'")
        return text


class OutputDir(_Typed):
    """A directory to write into: it may not exist yet, but nothing on the way may be a file and
    the nearest existing folder must be writable. Checked before anything is created, so a bad
    ``--out`` leaves nothing behind."""

    name = "directory"
    example = "runs"

    def __init__(self, as_text: bool = False):
        self.as_text = as_text  # str (for configs written to JSON) instead of Path

    def get_metavar(self, param, ctx=None) -> str:
        return "DIR"

    def convert(self, value, param, ctx):
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            self.fail_with(f"takes a directory, got {value!r}", param, ctx)
        path = Path(os.fspath(value)).expanduser()
        problem = writable_dir_problem(path)
        if problem:
            self.fail_with(problem, param, ctx, fix="pass a writable directory")
        return os.fspath(value) if self.as_text else path


def writable_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be (created and) written as a directory, or None."""
    probe = path
    while True:
        if probe.exists() or probe.is_symlink():
            break
        if probe.parent == probe:
            return f"{path} cannot be created"
        probe = probe.parent
    if not probe.is_dir():
        return f"{path} is a file, not a directory" if probe == path else f"{probe} (on the way to {path}) is a file"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{path} is not writable" if probe == path else f"{probe} is not writable, so {path} cannot be created"
    return None
