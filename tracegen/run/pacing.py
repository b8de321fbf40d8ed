"""How the host waits between inferences: the idle gap of the idle-delay scenario."""

from __future__ import annotations

import time
from typing import Callable

from tracegen.backends.base import Device
from tracegen.errors import ConfigError


def spin_wait(seconds: float) -> None:
    """Busy-wait: the core stays awake and at frequency, unlike sleep."""
    deadline = time.perf_counter_ns() + int(seconds * 1e9)
    while time.perf_counter_ns() < deadline:
        pass


def _no_wait() -> None:
    pass


def make_pacer(pacing: str, idle_ms: float, device: Device) -> Callable[[], None]:
    """A zero-argument callable that performs one gap; the runner times it."""
    seconds = idle_ms / 1000.0
    if pacing == "none" or seconds == 0:
        return _no_wait
    if pacing == "sleep":
        return lambda: time.sleep(seconds)
    if pacing == "spin":
        return lambda: spin_wait(seconds)
    if pacing == "keepalive":
        if not device.supports_keepalive:
            raise ConfigError(
                f"--pacing keepalive needs a GPU backend (the {device.kind} device has nothing to keep busy)",
                "use --pacing sleep,spin on the CPU",
            )
        return lambda: device.keepalive(seconds)
    raise ConfigError(f"unknown pacing {pacing!r}", "choose from: sleep, spin, keepalive")
