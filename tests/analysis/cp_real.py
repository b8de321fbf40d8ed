"""Real change-point data sets and the scores of the TCPD paper, for tests and benchmarks.

Scores follow van den Burg and Williams (2020), "An Evaluation of Change Point Detection
Algorithms", section 4 (written here from the definitions, not copied):

* every set of change points, true or predicted, also holds index 0;
* a true point is found when a predicted point lies within ``margin`` of it, each predicted
  point used at most once (nearest first);
* precision = found points of the union of all annotators' sets / predicted points;
  recall = mean over annotators of their found share; F1 their harmonic mean;
* covering = mean over annotators of sum over their segments |A| max_B Jaccard(A, B) / n,
  B the predicted segments.

Data: ``benchmarks/build_cp_datasets.py`` writes the public sets (TCPD, RTT) as JSON;
``benchmarks/record_cpu_changes.py`` records CPU traces as CSV plus ``schedule.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "benchmarks" / "data"
FIXTURES = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True, eq=False)
class Series:
    name: str
    values: np.ndarray
    #: One list of change points (segment starts, 0 excluded) per annotator.
    annotations: tuple[tuple[int, ...], ...]


def _found(truth, pred, margin: int) -> int:
    """Points of ``truth`` matched by distinct points of ``pred`` within ``margin``, nearest first."""
    left = sorted(set(pred))
    hits = 0
    for t in sorted(set(truth)):
        close = [(abs(t - x), x) for x in left if abs(t - x) <= margin]
        if close:
            left.remove(min(close)[1])
            hits += 1
    return hits


def f_measure(annotations, predictions, margin: int = 5) -> float:
    """TCPD F1 of ``predictions`` against several annotators' change points."""
    sets = [set(a) | {0} for a in annotations]
    pred = set(int(p) for p in predictions) | {0}
    union = set().union(*sets)
    precision = _found(union, pred, margin) / len(pred)
    recall = float(np.mean([_found(s, pred, margin) / len(s) for s in sets]))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _bounds(cps, n: int) -> np.ndarray:
    return np.unique(np.r_[0, [c for c in cps if 0 < c < n], n]).astype(np.int64)


def cover_single(truth, pred, n: int) -> float:
    """Covering of the segmentation ``truth`` by ``pred`` (change points, 0 excluded)."""
    tb, pb = _bounds(truth, n), _bounds(pred, n)
    total = 0.0
    for a, b in zip(tb[:-1], tb[1:]):
        # predicted segments that overlap [a, b)
        lo = np.searchsorted(pb, a, side="right") - 1
        hi = np.searchsorted(pb, b, side="left")
        best = 0.0
        for c, d in zip(pb[lo:hi], pb[lo + 1 : hi + 1]):
            inter = min(b, d) - max(a, c)
            best = max(best, inter / (max(b, d) - min(a, c)))
        total += (b - a) * best
    return total / n


def covering(annotations, predictions, n: int) -> float:
    return float(np.mean([cover_single(a, predictions, n) for a in annotations]))


# --- loading -------------------------------------------------------------------------------


def load_json_set(path: Path) -> list[Series]:
    """A set written by build_cp_datasets.py (missing values become NaN)."""
    data = json.loads(Path(path).read_text())
    out = []
    for s in data["series"]:
        values = np.array([np.nan if v is None else v for v in s["values"]], dtype=np.float64)
        out.append(Series(s["name"], values, tuple(tuple(a) for a in s["annotations"].values())))
    return out


def load_recorded(folder: Path) -> list[Series]:
    """CPU traces recorded by record_cpu_changes.py: the scheduled boundaries are the truth."""
    folder = Path(folder)
    meta = json.loads((folder / "schedule.json").read_text())
    out = []
    for name, info in meta["traces"].items():
        values = np.loadtxt(folder / f"{name}.csv", delimiter=",", skiprows=1, usecols=1)
        out.append(Series(name, values, (tuple(info["changepoints"]),)))
    return out


def load_gpu(folder: Path) -> list[Series]:
    """GPU traces with scheduled idle-gap changes (data/gpu/README.md): host and GPU time of
    each (model, launch) CSV, in ms, as two series."""
    folder = Path(folder)
    truth = tuple(json.loads((folder / "truth.json").read_text())["change_points"])
    out = []
    for path in sorted(folder.glob("*.csv")):
        table = np.loadtxt(path, delimiter=",", skiprows=1)
        for col, label in ((2, "host"), (3, "gpu")):
            out.append(Series(f"{path.stem}-{label}", table[:, col] / 1e6, (truth,)))
    return out


def held_out(series: list[Series]) -> tuple[list[Series], list[Series]]:
    """(development, held-out) halves: every other series by name, so both halves span each set."""
    ordered = sorted(series, key=lambda s: s.name)
    return ordered[0::2], ordered[1::2]


def load_runs(folder: Path) -> list[Series]:
    """tracegen runs recorded with ``--schedule`` (benchmarks/record_scheduled_runs.py): per
    variant its measured latency (ms) and, where timed, its GPU inference time, as series; the
    truth is the change points the runner wrote into ``manifest.arrivals``, counted from the
    first measured iteration."""
    from tracegen.report.iterations import read_iterations

    out = []
    for manifest in sorted(Path(folder).glob("*/manifest.json")):
        run, iters = read_iterations(manifest.parent)
        for arrival in run.manifest.get("arrivals") or []:
            schedule = arrival.get("schedule")
            if not schedule:
                continue
            vid = arrival["variant_id"]
            rows = iters.filter((iters["variant_id"] == vid) & ~iters["warmup"]).sort("iteration")
            if rows.height == 0:
                continue
            first = int(rows["iteration"][0])
            truth = (tuple(int(c) - first for c in schedule["change_points"] if 0 < int(c) - first < rows.height),)
            name = f"{run.id}-v{vid}"
            out.append(Series(f"{name}-host", rows["latency_ns"].to_numpy() / 1e6, truth))
            if "infer_gpu_ns" in rows.columns and rows["infer_gpu_ns"].null_count() == 0:
                out.append(Series(f"{name}-gpu", rows["infer_gpu_ns"].to_numpy() / 1e6, truth))
    return out
