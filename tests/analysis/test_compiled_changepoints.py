"""The numba-compiled change-point pipeline returns what the numpy reference returns."""

from __future__ import annotations

import numpy as np
import pytest

from tests.analysis.cp_real import DATA, FIXTURES, load_gpu, load_json_set, load_recorded, load_runs
from tests.analysis.synthetic import random_trace
from tracegen.analysis import detect_changepoints

pytest.importorskip("numba")


def both(values, **kw):
    return (detect_changepoints(values, engine="numba", **kw), detect_changepoints(values, engine="numpy", **kw))


def _real_sets():
    sets = [*((f, load_recorded(FIXTURES / f)) for f in ("cpu", "cpu-seed1", "cpu-seed2")),
            ("gpu", load_gpu(FIXTURES / "gpu")), ("gpu-runs", load_runs(FIXTURES / "gpu-runs")),
            *((f, load_runs(FIXTURES / f)) for f in ("gpu-runs-seed3", "gpu-runs-seed4"))]
    for name in ("tcpd", "rtt"):  # built by benchmarks/build_cp_datasets.py where its sources are cloned
        path = DATA / "real" / f"{name}.json"
        if path.exists():
            sets.append((name, load_json_set(path)))
    return [(f"{name}/{s.name}", s.values) for name, series in sets for s in series]


REAL = _real_sets()


@pytest.mark.parametrize("label,values", REAL, ids=[label for label, _ in REAL])
def test_same_change_points_on_real_series(label, values):
    fast, ref = both(values)
    assert fast == ref


@pytest.mark.parametrize("seed", range(40))
def test_same_change_points_on_random_traces(seed):
    trace = random_trace(int(np.random.default_rng(seed).integers(100, 5000)), seed)
    fast, ref = both(trace.values)
    assert fast == ref


def test_same_on_edge_cases():
    rng = np.random.default_rng(9)
    cases = {
        "ties": np.round(rng.normal(5, 1, 800)),  # heavy ties: average ranks
        "two values": np.r_[np.ones(100), np.full(100, 2.0)],
        "negative": np.r_[rng.normal(-1, 0.1, 300), rng.normal(1, 0.1, 300)],
        "nan": np.r_[rng.normal(1, 0.1, 200), np.nan, rng.normal(2, 0.1, 200)],
        "mostly equal": np.r_[np.zeros(400), rng.normal(0, 1, 10), np.zeros(400)],
        "short": rng.normal(0, 1, 12),
        "long": np.r_[rng.lognormal(0, 0.1, 60_000), rng.lognormal(0.3, 0.1, 60_000)],
    }
    for name, values in cases.items():
        fast, ref = both(values)
        assert fast == ref, name
    fast, ref = both(cases["negative"], min_size=40, penalty=50.0)
    assert fast == ref and fast  # the options reach the compiled path
    assert detect_changepoints(np.ones(50), engine="numba") == []


def test_engine_is_checked_and_numpy_can_be_forced(monkeypatch):
    with pytest.raises(ValueError, match="engine"):
        detect_changepoints([1.0, 2.0], engine="gpu")
    import tracegen.analysis.changepoints as cp

    monkeypatch.setenv(cp.NO_JIT_ENV, "1")
    assert cp._compiled_module() is None
    assert cp._compiled_module(required=True) is not None


def test_auto_runs_numpy_until_its_time_would_have_paid_for_loading_numba(monkeypatch):
    import tracegen.analysis.changepoints as cp

    monkeypatch.delenv(cp.NO_JIT_ENV, raising=False)
    monkeypatch.setattr(cp, "_compiled", None)
    monkeypatch.setattr(cp, "_numpy_seconds", 0.0)
    monkeypatch.setattr(cp, "LOAD_BUDGET_S", 3600.0)
    values = np.r_[np.ones(100), np.full(100, 3.0)] + np.random.default_rng(0).normal(0, 0.1, 200)
    assert detect_changepoints(values) == [100]
    assert cp._compiled is None and cp._numpy_seconds > 0  # numpy ran, numba was not loaded
    monkeypatch.setattr(cp, "LOAD_BUDGET_S", cp._numpy_seconds)
    assert detect_changepoints(values) == [100]
    assert cp._compiled is not None and cp._compiled is not False  # the budget is spent: numba loaded
    spent = cp._numpy_seconds
    detect_changepoints(values)
    assert cp._numpy_seconds == spent  # and used from then on


def test_without_numba_auto_warns_once_and_numba_is_a_one_line_error(monkeypatch, caplog):
    import importlib

    import tracegen.analysis.changepoints as cp
    from tracegen.errors import MissingDependency

    real = importlib.import_module

    def import_module(name, *args, **kwargs):
        if name == "numba":
            raise ImportError("No module named 'numba'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", import_module)  # what tracegen.optional.require calls
    monkeypatch.setattr(cp, "_compiled", None)
    monkeypatch.setattr(cp, "LOAD_BUDGET_S", 0.0)
    values = np.r_[np.ones(100), np.full(100, 3.0)] + np.random.default_rng(0).normal(0, 0.1, 200)
    with caplog.at_level("WARNING"):
        assert detect_changepoints(values) == [100]  # numpy, the same result
        assert detect_changepoints(values) == [100]
    warnings = [r for r in caplog.records if "numba" in r.getMessage()]
    assert len(warnings) == 1 and "pip install numba" in warnings[0].getMessage()
    monkeypatch.setattr(cp, "_compiled", None)
    with pytest.raises(MissingDependency, match="pip install numba"):
        detect_changepoints(values, engine="numba")


def test_a_cold_numba_cache_is_announced(monkeypatch, tmp_path, caplog):
    import tracegen.analysis.changepoints as cp

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not cp._compiled_cache_exists()
    monkeypatch.setattr(cp, "_compiled", None)
    with caplog.at_level("WARNING"):
        cp._compiled_module(required=True)  # the module is already imported here: nothing compiles
    assert any("compiling the change-point engine" in r.getMessage() for r in caplog.records)
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    detect_changepoints(np.arange(50.0), engine="numba")  # compiled (or loaded) into __pycache__
    assert cp._compiled_cache_exists()
