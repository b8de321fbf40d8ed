"""Shared fixtures: one small real CPU run per test session (onnxruntime, builtin:tiny)."""

from __future__ import annotations

import shutil

import pytest

from tracegen.run import build_config
from tracegen.run import run_benchmark

SMALL_RUN_FLAGS = dict(
    model="builtin:tiny", backend="onnxruntime", batch_sizes="1,2,4", idle_ms="0,5", pacing="sleep,spin",
    iterations=25, batch_iterations=8, warmup=3, threads=1, telemetry_ms=10,
)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A complete run directory from a real (small) benchmark; read-only for tests."""
    out = tmp_path_factory.mktemp("runs")
    config = build_config(flags={**SMALL_RUN_FLAGS, "out": str(out), "run_id": "small"})
    result = run_benchmark(config, command=["tracegen", "run", "(test)"], progress=False)
    assert result.status == "complete"
    return result.run_dir


@pytest.fixture
def small_run_copy(small_run, tmp_path):
    """A private copy of the small run that a test may damage."""
    dest = tmp_path / "runs" / small_run.name
    shutil.copytree(small_run, dest)
    return dest


# Property tests: a fixed set of examples on CI (reproducible failures), fresh ones elsewhere.
try:
    import os as _os

    from hypothesis import settings as _hsettings

    _hsettings.register_profile("ci", derandomize=True, print_blob=True)
    if _os.environ.get("CI"):
        _hsettings.load_profile("ci")
except ImportError:  # hypothesis is in the dev extra
    pass
