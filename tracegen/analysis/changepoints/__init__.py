"""Change points along the iteration index of a latency trace.

``detect_changepoints(values)`` returns the indices where a new segment starts (0 excluded).

How (each step in its own module):

1. Cost (kernel.py): a Gaussian kernel on the values, bandwidth the median distance between
   two values: a segment costs the spread of its points in the kernel's feature space, so
   changes of level, spread or mixture of modes all count, and heavy tails, spikes and
   multi-modal noise need no model.
2. Candidates (search.py): a multi-scale moving-sum scan of the normal scores of the ranks.
3. Search (search.py): the exact penalised partition with boundaries among the candidates,
   penalty ``log n`` per change point times a dependence factor (below); each boundary then
   moves to its best position at full resolution (kernel.refine).
4. Visible (visible.py): adjacent segments that differ neither in distribution, level nor
   spread enough to see are merged.

Dependence: latency noise is serially correlated (a slow phase lasts a few iterations), which
inflates the evidence for a change by the long-run variance factor (1 + rho) / (1 - rho) of an
AR(1). rho is the smaller of two estimates (reference.dependence_factor): the lag-1
autocorrelation of the normal scores about the means of the segments found with the plain
penalty, which every change that penalty missed inflates, and one from the spread of the
differences at lag 1 against lags ``min_size`` to ``2 min_size``, which level shifts barely
move. The factor is capped at ``(1 + MAX_RHO) / (1 - MAX_RHO)`` = 4, because beyond that the
trace is a drift, whose real turns the correction would erase.

Two implementations of the same steps: reference.py chains the numpy modules above, and
compiled.py runs them as one numba-compiled call (4-7x faster on 10^3-10^4 points, 1.7x on
10^6: benchmarks/bench_changepoints_engines.py). The compiled code is built once after an install (about 20 s) and read
from numba's cache after that, which still costs about 0.5 s per process, more than a report of
a few runs spends in change points; so ``engine="auto"`` starts with numpy and loads numba only
once numpy has taken LOAD_BUDGET_S. tests/analysis/test_compiled_changepoints.py holds the two
equal.

``benchmarks/bench_changepoints_real.py`` measures it on real labelled series against ruptures
(benchmarks/RESULTS.md, "Change points on real, labelled series").
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from tracegen.analysis.changepoints import reference
from tracegen.analysis.changepoints.kernel import kernel_table, sampled_pairs
from tracegen.analysis.changepoints.reference import normal_scores
from tracegen.errors import MissingDependency
from tracegen.optional import require
from tracegen.analysis.changepoints.signal import all_finite, as_array, fill_missing, noise_scale, to_log

#: Shortest reported segment, in iterations.
MIN_SIZE = 5
#: Penalty per change point, in units of log n (the kernel cost's BIC-like scale).
PENALTY_FACTOR = 1.0
#: Set to 1 to take the numpy reference path even where numba is installed.
NO_JIT_ENV = "TRACEGEN_NO_JIT"
#: engine="auto" loads the compiled pipeline once the numpy one has taken this long in the
#: process: loading numba and its cached code costs about 0.5 s (2-core machine), so a report of
#: a few runs never pays it, and a long job pays at most twice what the better choice in
#: hindsight would have cost (the ski-rental rule).
LOAD_BUDGET_S = 0.5

__all__ = ["MIN_SIZE", "all_finite", "as_array", "detect_changepoints", "noise_scale", "normal_scores", "to_log"]

log = logging.getLogger(__name__)
_NO_PAIRS = np.empty(0, dtype=np.int64)  # compiled.bandwidth: all pairs
_compiled = None  # the compiled module once loaded, False when numba did not import
_numpy_seconds = 0.0  # time engine="auto" has spent in the numpy pipeline in this process


def detect_changepoints(values, *, min_size: int | None = None, penalty: float | None = None,
                        engine: str = "auto") -> list[int]:
    """Indices where a new segment of ``values`` starts, sorted, 0 excluded.

    ``values``: 1-D latencies (list, numpy array or polars Series), in iteration order.
    ``min_size``: shortest segment, in iterations (default ``MIN_SIZE`` = 5).
    ``penalty``: cost of one more change point in kernel-cost units, before the dependence
    factor (default ``PENALTY_FACTOR * log(n)``).
    ``engine``: "numba" (compiled.py), "numpy" (reference.py: the same change points, up to
    10x slower) or "auto": numpy until this process has spent ``LOAD_BUDGET_S`` in it, then numba
    (when it imports and TRACEGEN_NO_JIT is not 1).
    Non-finite values are replaced by the previous finite one (they carry no evidence).
    """
    if engine not in ("auto", "numba", "numpy"):
        raise ValueError(f"engine must be 'auto', 'numba' or 'numpy', not {engine!r}")
    y = np.ascontiguousarray(fill_missing(as_array(values)))
    n = y.size
    min_size = MIN_SIZE if min_size is None else max(1, int(min_size))
    if n < 2 * min_size:
        return []
    base = PENALTY_FACTOR * math.log(n) if penalty is None else float(penalty)
    global _numpy_seconds
    fast = None
    if engine == "numba" or (engine == "auto" and (_compiled or _numpy_seconds >= LOAD_BUDGET_S)):
        fast = _compiled_module(required=engine == "numba")
    if fast is None:
        start = time.perf_counter()
        bounds = reference.detect(y, min_size, base)
        _numpy_seconds += time.perf_counter() - start
    else:
        pairs = sampled_pairs(n)
        pair_i, pair_j = (_NO_PAIRS, _NO_PAIRS) if pairs is None else pairs
        bounds = fast.detect(y, np.argsort(y), min_size, base, kernel_table(), pair_i, pair_j,
                             reference.MAX_RHO, reference.DIFF_SAMPLE, reference.SHORT_LOG,
                             reference.SHORT_Z)
    return [int(b) for b in bounds[1:-1]]


def _compiled_module(required: bool = False):
    """compiled.py when numba imports (and TRACEGEN_NO_JIT is not 1 unless ``required``), else
    None with a hint; ``required``: MissingDependency (with the install command) instead of None."""
    global _compiled
    if os.environ.get(NO_JIT_ENV) == "1" and not required:
        return None
    if _compiled is None:
        try:
            require("numba")
            if not _compiled_cache_exists():
                log.warning("compiling the change-point engine with numba: once after an install or an "
                            "upgrade, about 20 s on 2 cores (set %s=1 to stay on numpy)", NO_JIT_ENV)
            from tracegen.analysis.changepoints import compiled
        except MissingDependency as exc:
            if required:
                raise
            log.warning("%s: change points stay on the numpy path (the same results, up to 10x slower on "
                        "short traces); %s", exc.problem, exc.fix)
            compiled = False
        _compiled = compiled
    return _compiled or None


def _compiled_cache_exists() -> bool:
    """Whether numba's on-disk cache holds the pipeline (its index file beside compiled.py, or
    any index under NUMBA_CACHE_DIR when that is set), judged without importing numba."""
    tag = f"py{sys.version_info.major}{sys.version_info.minor}.nbi"
    custom = os.environ.get("NUMBA_CACHE_DIR")
    if custom:
        return any(Path(custom).rglob(f"compiled.detect-*.{tag}"))
    return any((Path(__file__).parent / "__pycache__").glob(f"compiled.detect-*.{tag}"))
