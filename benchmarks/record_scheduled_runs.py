"""Record tracegen runs whose idle gap changes at random, known iterations (``tracegen run
--schedule``), as real latency series with a true segmentation for the change-point benchmark.

Each run is one ``python -m tracegen run`` of one model with one random schedule (segments of
60-320 iterations, gaps drawn from ``--gaps``, consecutive segments always different), every
pacing of ``--pacing`` and every launch mode of ``--launch`` as its variants. The runner itself
records the change points of each variant's schedule in ``manifest.arrivals``;
``tests/analysis/cp_real.load_runs`` reads them back, with each variant's host latency and, on a
GPU, its GPU time as series.

    python benchmarks/record_scheduled_runs.py --out DIR --seed 1 --models builtin:small,builtin:large \\
        [--backend torch --precision fp16 --pacing sleep,spin,keepalive --launch graph,eager]

On the lent H200: ``source .gpu/setup.sh && python3 benchmarks/record_scheduled_runs.py --out $OUT/runs ...``.
Writes ``DIR/<run-id>/`` per model and ``DIR/schedules.json`` (model, schedule, command, exit status).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: Shortest and longest segment, in iterations.
SEGMENT = (60, 320)


def random_schedule(rng: np.random.Generator, gaps: list[float], segments: int) -> str:
    """``GAP_MS:N,...`` with ``segments`` segments, no two neighbours with the same gap."""
    parts, last = [], None
    for _ in range(segments):
        gap = last
        while gap == last:
            gap = float(rng.choice(gaps))
        parts.append(f"{gap:g}:{int(rng.integers(SEGMENT[0], SEGMENT[1] + 1))}")
        last = gap
    return ",".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--models", default="builtin:small")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--pacing", default="sleep,spin")
    p.add_argument("--launch", default=None, help="launch modes (GPU backends), e.g. graph,eager")
    p.add_argument("--gaps", default="0,2,5,20,50", help="gap lengths to draw from, in ms")
    p.add_argument("--segments", type=int, default=5)
    p.add_argument("--shapes", help="--shapes for the models that are not built in (e.g. x:1x3x224x224)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    gaps = [float(g) for g in args.gaps.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    log = []
    for k, model in enumerate(args.models.split(",")):
        spec = random_schedule(rng, gaps, args.segments)
        run_id = f"sched-s{args.seed}-{k}-{model.replace(':', '-').replace('.', '-')}"[:60]
        cmd = [sys.executable, "-m", "tracegen", "run", "--model", model, "--backend", args.backend,
               "--precision", args.precision, "--scenario", "idle", "--schedule", spec, "--pacing", args.pacing,
               "--warmup", str(args.warmup), "-o", str(args.out), "--run-id", run_id]
        if args.launch:
            cmd += ["--launch", args.launch]
        if args.shapes and not model.startswith("builtin:"):
            cmd += ["--shapes", args.shapes]
        t0 = time.monotonic()
        try:
            rc = subprocess.run(cmd, cwd=ROOT, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        seconds = round(time.monotonic() - t0, 1)
        log.append({"run_id": run_id, "model": model, "schedule": spec, "returncode": rc, "seconds": seconds,
                    "command": " ".join(cmd[1:])})
        print(f"{run_id}: {spec} -> rc {rc} in {seconds} s", flush=True)
        (args.out / "schedules.json").write_text(json.dumps({"seed": args.seed, "runs": log}, indent=2))
    return 0 if all(r["returncode"] == 0 for r in log) else 1


if __name__ == "__main__":
    raise SystemExit(main())
