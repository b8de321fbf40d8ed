"""Record real CPU latency traces with changes scheduled at known iterations.

Each trace is one onnxruntime loop over a tracegen built-in model (``builtin:tiny`` by
default), timed per call with ``time.perf_counter_ns``. The loop runs a schedule of segments;
at each segment boundary one or more of these change, at an iteration known in advance:

* ``threads``: onnxruntime intra-op threads (two sessions made up front, switched between);
* ``batch``: the batch size of the call (its own bound input);
* ``gap_ms``: a ``time.sleep`` between calls (the idle-delay pattern of the seed reports);
* ``load``: N busy-looping background processes compete for the cores.

The boundaries are the truth for change-point tests and for ``bench_changepoints_real.py``.
A scheduled change need not change the latency (a gap may cost nothing on this CPU), so each
trace also records, per boundary, the ratio of the medians of the 50 iterations either side:
what the change did, measured, not assumed.

    python benchmarks/record_cpu_changes.py --out tests/analysis/data/cpu [--seed 0] [--traces 16]

Writes one ``NAME.csv`` (iteration, latency_ms) per trace and ``schedule.json`` (segments,
change points, measured ratios, machine). Standalone: it imports only the model builder from
tracegen, so it also runs before ``tracegen run --schedule`` exists.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracegen.models.builtin import builtin_onnx_bytes  # noqa: E402

BASE = {"threads": 1, "batch": 1, "gap_ms": 0.0, "load": 0}
#: Shortest and longest scheduled segment, in iterations.
SEGMENT = (60, 320)
#: Iterations either side of a boundary whose medians give its measured ratio.
RATIO_WINDOW = 50


def _burn(flag) -> None:
    """Background load: spin while the flag is set, sleep on it otherwise."""
    x = 0
    while True:
        if not flag.is_set():
            flag.wait()
        for _ in range(20_000):
            x += 1


class Load:
    """``count`` busy processes started up front (so switching load on costs no process start)."""

    def __init__(self, count: int):
        self.flags = [mp.Event() for _ in range(count)]
        self.procs = [mp.Process(target=_burn, args=(f,), daemon=True) for f in self.flags]
        for p in self.procs:
            p.start()

    def set(self, n: int) -> None:
        for i, f in enumerate(self.flags):
            f.set() if i < n else f.clear()

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
            p.join()


class Engine:
    """onnxruntime sessions for each thread count, with a bound input per batch size."""

    def __init__(self, model: str, threads: set[int], batches: set[int]):
        import onnxruntime as ort

        data = builtin_onnx_bytes(model)
        self.sessions = {}
        for t in sorted(threads):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = t
            opts.inter_op_num_threads = 1
            self.sessions[t] = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        sess = next(iter(self.sessions.values()))
        inp = sess.get_inputs()[0]
        self.input_name = inp.name
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        rng = np.random.default_rng(0)
        self.inputs = {b: rng.standard_normal((b, *shape[1:])).astype(np.float32) for b in sorted(batches)}

    def run(self, threads: int, batch: int) -> None:
        self.sessions[threads].run(None, {self.input_name: self.inputs[batch]})


def schedules(rng: np.random.Generator, count: int) -> list[tuple[str, list[tuple[int, dict]]]]:
    """Named schedules: one factor each (threads, batch, gap, load), then mixed ones."""
    def seg(**change):
        return (int(rng.integers(SEGMENT[0], SEGMENT[1] + 1)), {**BASE, **change})

    fixed = [
        ("threads", [seg(), seg(threads=2), seg(), seg(threads=2)]),
        ("batch", [seg(), seg(batch=2), seg(), seg(batch=4)]),
        ("gap", [seg(), seg(gap_ms=20.0), seg(), seg(gap_ms=5.0)]),
        ("load", [seg(), seg(load=2), seg(), seg(load=1)]),
        ("load_threads", [seg(threads=2), seg(threads=2, load=1), seg(threads=2), seg(threads=2, load=2)]),
    ]
    out = fixed[: min(count, len(fixed))]
    options = [dict(threads=t, batch=b, gap_ms=g, load=ld) for t in (1, 2) for b in (1, 2) for g in (0.0, 10.0)
               for ld in (0, 1, 2)]
    for i in range(count - len(out)):
        segs, last = [], None
        for _ in range(int(rng.integers(3, 7))):
            choice = last
            while choice == last:
                choice = options[int(rng.integers(len(options)))]
            segs.append((int(rng.integers(SEGMENT[0], SEGMENT[1] + 1)), dict(choice)))
            last = choice
        out.append((f"mixed{i + 1}", segs))
    return out


def record(engine: Engine, load: Load, segments, warmup: int = 30) -> np.ndarray:
    """Latency in ms of every scheduled iteration (warm-up calls before the first are not kept)."""
    first = segments[0][1]
    for _ in range(warmup):
        engine.run(first["threads"], first["batch"])
    out = []
    for length, cfg in segments:
        load.set(cfg["load"])
        gap = cfg["gap_ms"] / 1e3
        for _ in range(length):
            if gap:
                time.sleep(gap)
            t0 = time.perf_counter_ns()
            engine.run(cfg["threads"], cfg["batch"])
            out.append((time.perf_counter_ns() - t0) / 1e6)
    load.set(0)
    return np.array(out)


def measured_ratios(values: np.ndarray, cps: list[int]) -> list[float]:
    return [float(np.median(values[c : c + RATIO_WINDOW]) / np.median(values[max(0, c - RATIO_WINDOW) : c]))
            for c in cps]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "tests" / "analysis" / "data" / "cpu")
    p.add_argument("--model", default="tiny", help="built-in model name (default tiny)")
    p.add_argument("--traces", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    plan = schedules(rng, args.traces)
    threads = {c["threads"] for _, segs in plan for _, c in segs}
    batches = {c["batch"] for _, segs in plan for _, c in segs}
    engine = Engine(args.model, threads, batches)
    load = Load(max(c["load"] for _, segs in plan for _, c in segs))
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"command": "python benchmarks/record_cpu_changes.py " + " ".join(argv or sys.argv[1:]),
            "model": f"builtin:{args.model}", "machine": f"{platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}", "date": time.strftime("%Y-%m-%d"),
            "traces": {}}
    try:
        for name, segs in plan:
            values = record(engine, load, segs)
            cps = [int(c) for c in np.cumsum([n for n, _ in segs])[:-1]]
            np.savetxt(args.out / f"{name}.csv", np.c_[np.arange(values.size), values], fmt=["%d", "%.4f"],
                       delimiter=",", header="iteration,latency_ms", comments="")
            ratios = measured_ratios(values, cps)
            meta["traces"][name] = {"segments": [{"length": n, **c} for n, c in segs], "changepoints": cps,
                                    "ratios": [round(r, 3) for r in ratios]}
            print(f"{name:14s} n={values.size:5d} cps={cps} ratios={[round(r, 2) for r in ratios]}", flush=True)
    finally:
        load.close()
    (args.out / "schedule.json").write_text(json.dumps(meta, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
