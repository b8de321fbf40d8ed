"""Ctrl-C and SIGTERM stop a run cleanly, whenever they arrive: while the plan is checked, the
backend set up, the loop running or the files being merged. A signal that arrives inside
``deferred()`` is held until the write is done (so no part is written twice, none is torn, and
no iteration is lost); either way the command ends with status 130, never 143."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any


class Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into the same clean stop as Ctrl-C."""


class StopSignals:
    def __init__(self):
        self._deferring = 0
        self._pending: type[KeyboardInterrupt] | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame):
        exc = KeyboardInterrupt if signum == signal.SIGINT else Interrupted
        if self._deferring:
            self._pending = exc
            return
        raise exc()

    def __enter__(self):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread: leave signals alone
            self._previous.clear()
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        return False

    @property
    def pending(self) -> bool:
        return self._pending is not None

    @contextmanager
    def deferred(self, *, raise_pending: bool = True):
        """Hold signals for the duration; re-raise one that arrived at the end (unless told not
        to: the caller then checks ``pending`` itself, e.g. after the final write)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
            if raise_pending and not self._deferring:
                self.raise_pending()

    def raise_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            raise pending()
