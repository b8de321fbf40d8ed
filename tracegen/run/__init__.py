"""The run side: options -> plan of variants -> session (device, backend, samplers) -> timed
loop -> files. ``run_benchmark`` is the Python API behind ``tracegen run``.

Names are imported lazily, so ``tracegen.run.result`` or ``tracegen.run.config`` can be used
without loading the runner and its dependencies.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "run_benchmark": "tracegen.run.runner",
    "RunResult": "tracegen.run.result",
    "RunConfig": "tracegen.run.config",
    "build_config": "tracegen.run.config",
    "load_toml": "tracegen.run.config",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tracegen.run' has no attribute {name!r}")
