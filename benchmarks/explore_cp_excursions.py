"""Explored and dropped: tests for short excursions inside a segment (benchmarks/RESULTS.md,
"Change points on real, labelled series"). The numpy pipeline of
``tracegen.analysis.changepoints.reference.detect`` plus one step before the merge:

* ``runs``: runs of 5 to 4 log n points between candidates whose normal scores differ from the
  rest of their segment by ``Z`` standard errors (times the square root of the dependence
  factor with ``--with-factor``);
* ``excursions``: runs of at least 5 consecutive points beyond ``K`` noise scales from their
  segment's median.

Prints F1 / covering per set for the detector as it is and for each variant; ``--added``
counts the RTT boundaries each excursion threshold adds that match a label, and that do not;
``--oracle`` scores RTT with the labelled short segments' boundaries added.

    python benchmarks/explore_cp_excursions.py [--added | --oracle]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_changepoints_real import ffill  # noqa: E402
from tests.analysis.cp_real import DATA, FIXTURES, covering, f_measure, load_gpu, load_json_set, load_recorded  # noqa: E402
from tracegen.analysis.changepoints import reference as R  # noqa: E402
from tracegen.analysis.changepoints.kernel import KernelCost, refine  # noqa: E402
from tracegen.analysis.changepoints.search import candidates, optimal_partition  # noqa: E402
from tracegen.analysis.changepoints.signal import noise_scale  # noqa: E402
from tracegen.analysis.changepoints.visible import merge_invisible  # noqa: E402


def short_runs(scores, bounds, grid, min_size, factor, zlim, use_f, short_log):
    n = scores.size
    short = int(math.ceil(short_log * math.log(n)))
    cum = np.concatenate(([0.0], np.cumsum(scores)))
    limit = zlim * (math.sqrt(factor) if use_f else 1.0)
    out = [int(b) for b in bounds]
    for a, c in zip(bounds[:-1], bounds[1:]):
        t = grid[(grid >= a + min_size) & (grid <= c - min_size)]
        if t.size < 2: continue
        t1, t2 = np.meshgrid(t, t, indexing='ij')
        ok = (t2 - t1 >= min_size) & (t2 - t1 <= short)
        if not ok.any(): continue
        t1, t2 = t1[ok], t2[ok]
        L = t2 - t1; N = c - a
        sin = cum[t2] - cum[t1]; tot = cum[c] - cum[a]
        z = np.abs(sin / L - (tot - sin) / (N - L)) / np.sqrt(1.0 / L + 1.0 / (N - L))
        order = np.argsort(-z)
        taken = []
        for k in order:
            if z[k] <= limit: break
            x, y = t1[k], t2[k]
            if any(not (y <= u or x >= v) for u, v in taken): continue
            taken.append((x, y)); out += [int(x), int(y)]
    return np.unique(np.asarray(out, dtype=np.int64))

def runs_of(mask):
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)

def excursions(y, bounds, min_size, k, edge):
    out = [int(b) for b in bounds]
    for a, c in zip(bounds[:-1], bounds[1:]):
        N = c - a
        if N < 3 * min_size: continue
        seg = y[a:c]
        sig = noise_scale(seg)
        if sig <= 0: continue
        d = (seg - np.median(seg)) / sig
        for mask in (d > k, d < -k):
            st, en = runs_of(mask)
            for x, z in zip(st, en):
                L = z - x
                if L < min_size or L > N - 2 * min_size: continue
                if x < min_size * edge or N - z < min_size * edge: continue
                out += [a + int(x), a + int(z)]
    return np.unique(np.asarray(out, dtype=np.int64))

def detect(y, zlim, use_f, short_log, min_size=5, k=None, edge=1):
    n = y.size
    if n < 2*min_size: return []
    base = math.log(n)
    cost = KernelCost(y)
    if cost.bins <= 1: return []
    scores = R.normal_scores(y)
    grid = np.r_[0, candidates(scores, min_size), n]
    C = cost.matrix(grid, min_size)
    bounds = optimal_partition(C, grid, base)
    factor = R.dependence_factor(scores, bounds, min_size)
    if factor > 1.0: bounds = optimal_partition(C, grid, base * factor)
    bounds = refine(cost, bounds, min_size, grid)
    bounds = R.short_edges(scores, bounds, grid, min_size, factor)
    if zlim is not None:
        bounds = short_runs(scores, bounds, grid, min_size, factor, zlim, use_f, short_log)
    if k is not None: bounds = excursions(y, bounds, min_size, k, edge)
    bounds = merge_invisible(y, bounds)
    return [int(b) for b in bounds[1:-1]]


def load():
    sets = {"tcpd": load_json_set(DATA / "real" / "tcpd.json"), "rtt": load_json_set(DATA / "real" / "rtt.json"),
            "cpu": load_recorded(FIXTURES / "cpu"), "cpu-seed1": load_recorded(FIXTURES / "cpu-seed1"),
            "gpu": load_gpu(FIXTURES / "gpu")}
    return {k: [(s, ffill(np.asarray(s.values, float))) for s in S] for k, S in sets.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--added", action="store_true")
    p.add_argument("--oracle", action="store_true",
                   help="RTT scores if the true boundaries of every labelled 5-20-point segment were added")
    args = p.parse_args(argv)
    vals = load()
    if args.oracle:
        F = C = 0.0
        for s, v in vals["rtt"]:
            cps = detect(v, None, False, 4.0)
            b = [0, *sorted(s.annotations[0]), v.size]
            add = [t for i, t in enumerate(b[1:-1]) if 5 <= min(t - b[i], b[i + 2] - t) < 20]
            pred = sorted(set(cps) | set(add))
            F += f_measure(s.annotations, pred)
            C += covering(s.annotations, pred, v.size)
        print(f"rtt with every 5-20-point labelled segment found: {F / len(vals['rtt']):.3f} / {C / len(vals['rtt']):.3f}")
        return 0
    if args.added:
        for k in (8.0, 12.0):
            good = bad = 0
            for s, v in vals["rtt"]:
                extra = set(detect(v, None, False, 4.0, 5, k)) - set(detect(v, None, False, 4.0))
                truth = set(s.annotations[0])
                good += sum(any(abs(c - t) <= 5 for t in truth) for c in extra)
                bad += sum(not any(abs(c - t) <= 5 for t in truth) for c in extra)
            print(f"excursions beyond {k} noise scales: {good} added boundaries match a label, {bad} do not")
        return 0
    configs = [("as it is", (None, False, 4.0))]
    configs += [(f"runs Z={z}{' x sqrt(factor)' if f else ''}", (z, f, 4.0)) for z in (5.0, 6.0, 7.0) for f in (True, False)]
    configs += [(f"excursions K={k}", (None, False, 4.0, 5, k)) for k in (4.0, 6.0, 8.0, 12.0)]
    print("| variant | " + " | ".join(vals) + " |")
    print("| --- |" + " --- |" * len(vals))
    for label, cfg in configs:
        cells = []
        for V in vals.values():
            found = [(s, v, detect(v, *cfg)) for s, v in V]
            F = np.mean([f_measure(s.annotations, c) for s, v, c in found])
            C = np.mean([covering(s.annotations, c, v.size) for s, v, c in found])
            cells.append(f"{F:.3f} / {C:.3f}")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
