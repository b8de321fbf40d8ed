"""Is the process that writes a run still alive? The writer records its pid, host and process
start time in the manifest and touches a heartbeat file every second from a thread; a reader on
the same host asks the OS about the pid, a reader elsewhere (a shared disk) looks at the
heartbeat's age. So a live run reads ``running`` and a killed one ``interrupted``, truthfully."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

HEARTBEAT = "heartbeat"
HEARTBEAT_SECONDS = 1.0
STALE_SECONDS = 15.0  # a heartbeat older than this means the writer is gone (other hosts only)


def _create_time(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # noqa: BLE001 - gone, or no permission: unknown
        return None


def process_facts() -> dict[str, Any]:
    """This process, as the manifest records it."""
    pid = os.getpid()
    return {"pid": pid, "hostname": socket.gethostname(), "create_time": _create_time(pid),
            "heartbeat": HEARTBEAT, "heartbeat_seconds": HEARTBEAT_SECONDS}


def writer_alive(run_dir: Path, manifest: dict[str, Any], now: float | None = None) -> bool | None:
    """True/False when the run's manifest says who writes it; None for runs that do not."""
    proc = manifest.get("process")
    if not isinstance(proc, dict) or not isinstance(proc.get("pid"), int):
        return None
    if proc.get("hostname") == socket.gethostname():
        created = _create_time(proc["pid"])
        if created is None:
            return False
        recorded = proc.get("create_time")
        # The same pid with another start time is another process that reused the number.
        return not isinstance(recorded, (int, float)) or abs(created - recorded) < 1.0
    try:
        age = (time.time() if now is None else now) - (Path(run_dir) / HEARTBEAT).stat().st_mtime
    except OSError:
        return False
    return age < STALE_SECONDS


class Heartbeat:
    """Touches ``run_dir/heartbeat`` every second until stopped (a daemon thread)."""

    def __init__(self, run_dir: Path, interval: float = HEARTBEAT_SECONDS):
        self.path = Path(run_dir) / HEARTBEAT
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        try:
            self.path.touch()
        except OSError:
            pass  # a full or vanished disk is the writer's problem to report, not the heartbeat's

    def start(self) -> Heartbeat:
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="tracegen-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self, remove: bool = True) -> None:
        """Stop beating; the file goes too (the final manifest status speaks from now on)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.interval)
        if remove:
            try:
                self.path.unlink()
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
