"""Facts about the machine and the software for a run's manifest."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info() -> dict[str, Any]:
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        memory = psutil.virtual_memory().total
    except Exception:  # noqa: BLE001
        physical, memory = None, None
    governor = None
    try:
        governor = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip()
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": physical,
        "memory_bytes": memory,
        "cpu_governor": governor,
        "os": platform.platform(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
    }


def library_versions() -> dict[str, str]:
    """Versions of the always-present libraries (backends add their own)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("polars", "numpy", "onnx", "nvtx", "nvidia-ml-py"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out
