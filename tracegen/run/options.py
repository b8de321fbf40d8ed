"""Options as data: one ``OptionSpec`` per ``RunConfig`` field, turned into click options, the
``--help`` defaults and the README's option table, so none of these can drift from the others.

``python -m tracegen.cli.readme`` rewrites the table in README.md (between its
``<!-- run-options -->`` markers); a test fails while the two differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import click

_UNSET: Any = object()


@dataclass(frozen=True)
class OptionSpec:
    type: click.ParamType | None
    help: str
    cpu: Any = _UNSET  # device-dependent default on the CPU ...
    gpu: Any = _UNSET  # ... and on a GPU (both or neither)
    flag: str = ""  # "--batch-sizes"; derived from the field name when empty
    short: str | None = None
    is_flag: bool = False
    default_text: str | None = None  # how the default reads where it is not a plain value
    name: str = ""  # set by bind()
    default: Any = None

    def bind(self, name: str, default: Any) -> OptionSpec:
        return dataclasses.replace(self, name=name, default=default,
                                   flag=self.flag or "--" + name.replace("_", "-"))

    @property
    def device_dependent(self) -> bool:
        return self.cpu is not _UNSET

    def default_label(self, markdown: bool = False) -> str:
        def show(value: Any) -> str:
            text = ",".join(map(_plain, value)) if isinstance(value, tuple) else _plain(value)
            return f"`{text}`" if markdown else text

        if self.default_text is not None:
            return self.default_text if markdown else self.default_text.replace("`", "")
        if self.device_dependent and self.cpu == self.gpu:
            return show(self.cpu)
        if self.device_dependent:
            return f"{show(self.cpu)} / {show(self.gpu)}" if markdown else f"CPU {show(self.cpu)}, GPU {show(self.gpu)}"
        if self.is_flag:
            return "off"
        return show(self.default)


def _plain(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def option(default: Any, type: click.ParamType | None, help: str, **spec: Any):
    """A ``RunConfig`` field that is also an option of ``tracegen run``."""
    if ("cpu" in spec) != ("gpu" in spec):
        raise TypeError("give both cpu= and gpu= defaults, or neither")
    return field(default=default, metadata={"option": OptionSpec(type, help, **spec)})


def device_defaults(specs: list[OptionSpec], device: str) -> dict[str, Any]:
    return {s.name: getattr(s, device) for s in specs if s.device_dependent}


def click_params(specs: list[OptionSpec]) -> list[click.Option]:
    """One click option per spec. Click's own default stays unset: the dataclass default (or the
    device default, filled by ``resolve``) applies, and a config file's value comes in through
    ``default_map``, through the same type."""
    params = []
    for s in specs:
        decls = [s.flag, *([s.short] if s.short else []), s.name]
        help_text = f"{s.help.replace('`', '')}  [default: {s.default_label()}]"
        if s.is_flag:
            from tracegen.params import Switch

            params.append(click.Option(decls, is_flag=True, flag_value=True, type=Switch(), default=None,
                                       help=help_text))
        else:
            params.append(click.Option(decls, type=s.type, default=None, help=help_text))
    return params


def markdown_table(specs: list[OptionSpec], extra: list[tuple[str, str, str]] = ()) -> str:
    """The README's option table: option, meaning, default (CPU / GPU where they differ)."""
    rows = ["| option | meaning | default (CPU / GPU) |", "| --- | --- | --- |"]
    for s in specs:
        names = f"`{s.flag}`" + (f", `{s.short}`" if s.short else "")
        rows.append(f"| {names} | {s.help} | {s.default_label(markdown=True)} |")
    for names, meaning, default in extra:
        rows.append(f"| {names} | {meaning} | {default} |")
    return "\n".join(rows)
