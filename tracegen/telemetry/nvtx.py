"""NVTX ranges in the ``tracegen`` domain.

One range per variant (message = variant name), per iteration (payload = iteration index) and
per step (category = step name). Without the nvtx package, or with ``enabled=False``, every call
is a no-op. With the package but no tool attached, libnvtx's injection is absent and a push/pop
costs a few hundred nanoseconds (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import os

DOMAIN = "tracegen"
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
        if cls is Ranges and os.environ.get("TRACEGEN_NSYS_CAPTURE"):
            from tracegen.telemetry.nsys_capture import CaptureRanges

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
