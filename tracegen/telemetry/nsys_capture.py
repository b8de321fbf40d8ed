"""Focused capture: ``tracegen run --nsys --nsys-variants GLOB --nsys-iterations A-B`` records only
the chosen variants and iterations, so a long idle-delay run does not make a huge report.

How: nsys runs with ``--capture-range=cudaProfilerApi --capture-range-end=repeat``, so it
collects only between ``cuProfilerStart`` and ``cuProfilerStop``. The benchmark (a child process)
finds the spec in ``TRACEGEN_NSYS_CAPTURE`` and its NVTX ranges (``CaptureRanges``) start the
profiler just before a chosen iteration's range opens and stop it when the run leaves the chosen
iterations. Because the variant's own range opened before the capture began, a copy of it is
pushed inside each capture window, so the report still names the variant of every iteration.
nsys writes one report per window (``repeat``); ``tracegen nsys-import`` reads them all.

The first iteration after a start may be slower (the profiler starts collecting); choose
windows that begin a few iterations before the ones to look at.
"""

from __future__ import annotations

import ctypes
import fnmatch
import json
import os
import re
from dataclasses import dataclass

from tracegen.errors import ConfigError
from tracegen.params import _Typed
from tracegen.telemetry.nvtx import Ranges

ENV = "TRACEGEN_NSYS_CAPTURE"
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


@dataclass(frozen=True)
class CaptureSpec:
    variants: tuple[str, ...] = ()  # globs over variant names; empty = every variant
    iterations: tuple[tuple[int, int], ...] = ()  # inclusive ranges; empty = every iteration

    @property
    def active(self) -> bool:
        return bool(self.variants or self.iterations)

    def variant(self, name: str) -> bool:
        return not self.variants or any(fnmatch.fnmatchcase(name, g) for g in self.variants)

    def iteration(self, i: int) -> bool:
        return not self.iterations or any(a <= i <= b for a, b in self.iterations)

    def to_env(self) -> str:
        return json.dumps({"variants": list(self.variants), "iterations": [list(r) for r in self.iterations]})

    @classmethod
    def from_env(cls, text: str) -> "CaptureSpec":
        d = json.loads(text)
        return cls(tuple(d.get("variants") or ()), tuple(tuple(r) for r in d.get("iterations") or ()))

    @classmethod
    def from_config(cls, config) -> "CaptureSpec":
        return cls(tuple(getattr(config, "nsys_variants", None) or ()), tuple(getattr(config, "nsys_iterations", None) or ()))


def check_matches(spec: CaptureSpec, names: list[str]) -> None:
    """Refuse variant patterns that match none of the planned variants (the report would be empty)."""
    if spec.variants and not any(spec.variant(n) for n in names):
        raise ConfigError(f"--nsys-variants {','.join(spec.variants)} matches none of the variants "
                          f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})",
                          "use * around part of a name, e.g. --nsys-variants '*20ms-sleep*'")


class _Profiler:
    """cuProfilerStart / cuProfilerStop of the CUDA driver (the current context: the runner's)."""

    def __init__(self):
        try:
            self.lib = ctypes.CDLL("libcuda.so.1")
        except OSError:
            raise ConfigError("--nsys-variants / --nsys-iterations need a CUDA GPU (libcuda.so.1 was not found)",
                              "run without them on this machine, or record on a GPU") from None

    def start(self) -> None:
        self.lib.cuProfilerStart()

    def stop(self) -> None:
        self.lib.cuProfilerStop()


class CaptureRanges(Ranges):
    """tracegen's NVTX ranges, plus profiler start/stop around the chosen iterations."""

    def __init__(self, enabled: bool = True, spec: CaptureSpec | None = None, profiler=None):
        super().__init__(enabled)
        self.spec = spec or CaptureSpec.from_env(os.environ[ENV])
        self.profiler = profiler or _Profiler()
        self._depth = 0  # ranges the runner pushed and has not popped
        self._variant: str | None = None
        self._wanted = False
        self.capturing = False
        self.windows = 0  # capture windows opened

    def push_variant(self, name: str) -> None:
        self._variant, self._wanted = name, self.spec.variant(name)
        super().push_variant(name)
        self._depth += 1

    def push_iteration(self, index: int) -> None:
        want = self._wanted and self.spec.iteration(index)
        if want and not self.capturing:
            self._start()
        elif not want and self.capturing:
            self._stop()
        super().push_iteration(index)
        self._depth += 1

    def push_step(self, step: str) -> None:
        super().push_step(step)
        self._depth += 1

    def pop(self) -> None:
        if self._depth == 1 and self.capturing:  # the variant range closes: end its window first
            self._stop()
        super().pop()
        self._depth = max(0, self._depth - 1)

    def _start(self) -> None:
        self.profiler.start()
        if self._variant is not None:
            super().push_variant(self._variant)  # the copy inside the window (see the module docstring)
        self.capturing = True
        self.windows += 1

    def _stop(self) -> None:
        if self._variant is not None:
            super().pop()
        self.profiler.stop()
        self.capturing = False
