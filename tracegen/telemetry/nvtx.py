"""NVTX ranges in the ``tracegen`` domain.

One range per variant (message = variant name), per iteration (payload = iteration index) and
per step (category = step name). Without the nvtx package, or with ``enabled=False``, every call
is a no-op. With the package but no tool attached, libnvtx's injection is absent and a push/pop
costs a few hundred nanoseconds (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import ctypes
import fnmatch
import json
import os
from dataclasses import dataclass

from tracegen.errors import ConfigError

DOMAIN = "tracegen"
CAPTURE_ENV = "TRACEGEN_NSYS_CAPTURE"  # focused nsys capture (telemetry.nsys_capture): the spec, as JSON
_COLORS = {
    "variant": "purple",
    "iteration": "grey",
    "idle": "white",
    "preprocess": "yellow",
    "h2d": "orange",
    "infer": "green",
    "d2h": "orange",
    "sync": "red",
    "postprocess": "blue",
}


class Ranges:
    """Push/pop NVTX ranges with attributes prepared once, outside the timed loop."""

    def __new__(cls, *args, **kwargs):
        # Under `tracegen run --nsys` with a focused capture the child's ranges also start and stop
        # the profiler (tracegen.telemetry.nsys_capture); everywhere else this is plain Ranges.
        if cls is Ranges and os.environ.get(CAPTURE_ENV):
            cls = CaptureRanges
        return super().__new__(cls)

    def __init__(self, enabled: bool = True):
        self._domain = None
        self._step_attrs: dict[str, object] = {}
        if not enabled:
            return
        try:
            import nvtx
        except ImportError:
            return
        self._domain = nvtx.get_domain(DOMAIN)
        for step in ("idle", "preprocess", "h2d", "infer", "d2h", "sync", "postprocess"):
            self._step_attrs[step] = self._domain.get_event_attributes(
                message=step, color=_COLORS[step], category=step
            )

    @property
    def active(self) -> bool:
        return self._domain is not None

    def push_variant(self, name: str) -> None:
        if self._domain is not None:
            attrs = self._domain.get_event_attributes(message=name, color=_COLORS["variant"], category="variant")
            self._domain.push_range(attrs)

    def push_iteration(self, index: int) -> None:
        if self._domain is not None:
            attrs = self._domain.get_event_attributes(
                message="iteration", color=_COLORS["iteration"], category="iteration", payload=index
            )
            self._domain.push_range(attrs)

    def push_step(self, step: str) -> None:
        if self._domain is not None:
            self._domain.push_range(self._step_attrs[step])

    def pop(self) -> None:
        if self._domain is not None:
            self._domain.pop_range()


# -- focused nsys capture (tracegen.telemetry.nsys_capture explains it) ------------------------
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
        self.spec = spec or CaptureSpec.from_env(os.environ[CAPTURE_ENV])
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
