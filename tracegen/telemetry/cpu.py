"""CPU frequency and utilisation samples (psutil), and the core the calling thread runs on."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

from tracegen.telemetry.sampler import Sampler


def _load_sched_getcpu():
    # sched_getcpu() from libc costs tens of nanoseconds, far less than psutil's /proc read,
    # so it can be called inside the timed loop.
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sched_getcpu
        fn.restype = ctypes.c_int
        fn.argtypes = []
        if fn() < 0:
            return None
        return fn
    except (OSError, AttributeError):
        return None


current_core = _load_sched_getcpu()


# Reading every core's clock takes tens to hundreds of microseconds with the GIL held, which
# stalls a launch-bound timed loop; CPU clocks move slowly, so sample them at most 4 times a second.
MIN_INTERVAL_S = 0.25


class CpuSampler(Sampler):
    source = "cpu"

    def __init__(self, interval_s: float = 0.05):
        super().__init__(max(interval_s, MIN_INTERVAL_S))
        import psutil

        self._psutil = psutil
        self.last_core: int | None = None
        self._has_freq = bool(self._read_freqs())
        psutil.cpu_percent(None)  # prime: the first call has no interval to compare against

    def _read_freqs(self) -> list[float]:
        try:
            freqs = self._psutil.cpu_freq(percpu=True) or []
        except (OSError, NotImplementedError, AttributeError):
            return []
        return [f.current for f in freqs if f and f.current]

    def sample(self) -> dict[str, Any]:
        freqs = self._read_freqs() if self._has_freq else []
        core = self.last_core
        return {
            "cpu_freq_mhz": sum(freqs) / len(freqs) if freqs else None,
            "cpu_freq_core_mhz": freqs[core] if freqs and core is not None and core < len(freqs) else None,
            "cpu_util_pct": self._psutil.cpu_percent(None),
        }

    @property
    def exposes_frequency(self) -> bool:
        return self._has_freq
