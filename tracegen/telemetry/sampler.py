"""Background sampling on the run's clock, shared by the CPU and GPU samplers.

A sampler thread wakes every ``interval_s``, reads counters that are cheap to read, and appends a
row. The timed loop never waits for it: the only contact is ``set_variant`` (an attribute write)
and ``drain`` between variants. Rows follow ``trace.schema.TELEMETRY_SCHEMA``.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Any


class Sampler(ABC):
    source: str = "?"

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0_ns = 0
        self.variant_id: int | None = None

    def start(self, t0_ns: int) -> None:
        """Start sampling; ``t0_ns`` is the run's zero on ``time.perf_counter_ns``."""
        self._t0_ns = t0_ns
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"tracegen-{self.source}", daemon=True)
        self._thread.start()

    def set_variant(self, variant_id: int | None) -> None:
        self.variant_id = variant_id

    def _loop(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter_ns() - self._t0_ns
            try:
                row = self.sample()
            except Exception:  # noqa: BLE001 - a failed read loses one sample, not the run
                row = None
            if row is not None:
                row.update(t_ns=t, variant_id=self.variant_id, source=self.source)
                with self._lock:
                    self._rows.append(row)
            self._stop.wait(self.interval_s)

    @abstractmethod
    def sample(self) -> dict[str, Any] | None:
        """Read the counters once; return the non-time columns."""

    def drain(self) -> list[dict[str, Any]]:
        """Rows sampled since the last drain."""
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        return self.drain()

    def close(self) -> None:
        """Release handles (NVML and the like)."""
