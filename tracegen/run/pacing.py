"""Busy-waiting, one of the ways the host spends an idle gap (tracegen.run.arrivals decides how
long each gap is and calls the wait of the variant's pacing)."""

from __future__ import annotations

import time


def spin_wait(seconds: float) -> None:
    """Busy-wait: the core stays awake and at frequency, unlike sleep."""
    deadline = time.perf_counter_ns() + int(seconds * 1e9)
    while time.perf_counter_ns() < deadline:
        pass
