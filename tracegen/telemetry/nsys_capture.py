"""Focused capture: ``tracegen run --nsys --nsys-variants GLOB --nsys-iterations A-B`` records only
the chosen variants and iterations, so a long idle-delay run does not make a huge report.

How: nsys runs with ``--capture-range=cudaProfilerApi --capture-range-end=repeat``, so it
collects only between ``cuProfilerStart`` and ``cuProfilerStop``. The benchmark (a child process)
finds the spec in ``TRACEGEN_NSYS_CAPTURE`` and its NVTX ranges (``telemetry.nvtx.CaptureRanges``) start the
profiler just before a chosen iteration's range opens and stop it when the run leaves the chosen
iterations. Because the variant's own range opened before the capture began, a copy of it is
pushed inside each capture window, so the report still names the variant of every iteration.
nsys writes one report per window (``repeat``); ``tracegen nsys-import`` reads them all.

The first iteration after a start may be slower (the profiler starts collecting); choose
windows that begin a few iterations before the ones to look at.
"""

from __future__ import annotations

import re

from tracegen.errors import ConfigError
from tracegen.params import _Typed
from tracegen.telemetry.nvtx import CAPTURE_ENV as ENV, CaptureRanges, CaptureSpec  # noqa: F401 - re-exported
NSYS_ARGS = ("--capture-range=cudaProfilerApi", "--capture-range-end=repeat")


class IterationRanges(_Typed):
    """``A-B[,C-D,...]`` or single iterations ``N``: inclusive iteration numbers (warm-up first,
    as in steps.parquet), or a TOML list of such strings / numbers."""

    name = "iterations"
    example = "0-20,300-320"

    def get_metavar(self, param, ctx=None) -> str:
        return "A-B,..."

    def convert(self, value, param, ctx):
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        out = []
        for item in items:
            text = str(item).strip()
            m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", text)
            if not m:
                self.fail_with(f"takes iteration ranges like 0-20,300-320, got {text!r}", param, ctx)
            a, b = int(m.group(1)), int(m.group(2) or m.group(1))
            if b < a:
                self.fail_with(f"range {text!r} ends before it starts", param, ctx)
            out.append((a, b))
        if not out:
            self.fail_with("is empty", param, ctx)
        return tuple(out)


class Globs(_Typed):
    """Comma-separated variant-name patterns (``*`` and ``?`` as in the shell), or a TOML list."""

    name = "patterns"
    example = "'*20ms-sleep*'"

    def get_metavar(self, param, ctx=None) -> str:
        return "GLOB,..."

    def convert(self, value, param, ctx):
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        out = tuple(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))
        if not out:
            self.fail_with("is empty", param, ctx)
        return out


def check_matches(spec: CaptureSpec, names: list[str]) -> None:
    """Refuse variant patterns that match none of the planned variants (the report would be empty)."""
    if spec.variants and not any(spec.variant(n) for n in names):
        raise ConfigError(f"--nsys-variants {','.join(spec.variants)} matches none of the variants "
                          f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})",
                          "use * around part of a name, e.g. --nsys-variants '*20ms-sleep*'")
