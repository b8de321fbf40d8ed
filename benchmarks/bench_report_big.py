"""Time and peak memory of `tracegen report` on one run of 10^6 iterations.

The run has two idle-scenario variants of 500,000 measured iterations each (10^6 in all, 7 steps
per iteration, 7 x 10^6 step rows), written with the test helpers' ``make_run``
(tests/analysis/runs.py): a no-gap baseline at about 2.3 ms, and a 20 ms sleep variant whose
latency steps up from 2.3 ms to 4.3 ms at iteration 200,000 (two tiers, one change point) with a
spike of 10 iterations at 40 ms every 50,000 iterations. The report runs in a child process
(``python -m tracegen report RUN --out OUT``); its wall time and peak RSS (``ru_maxrss`` of the
child, via ``resource.getrusage(RUSAGE_CHILDREN)``, one fresh child per repeat) are printed with
the size of the page and whether the tiers, spikes and change point made it onto the page.

    python benchmarks/bench_report_big.py [--iterations 500000] [--repeats 3] [--keep DIR] [--phases]

The report is meant to take at most 5 s and 1 GB for this run (issue 11); ``--phases`` times
its parts in a fresh child process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPIKE_MS = 40.0


def write_big_run(root: Path, per_variant: int) -> Path:
    import numpy as np

    from tests.analysis.runs import baseline, make_run, paced

    step_at = per_variant * 2 // 5

    def infer_gpu(i: np.ndarray) -> np.ndarray:
        x = 1.0 + 2.0 * (i >= step_at)
        spikes = (i % 50_000 >= 100) & (i % 50_000 < 110)
        return np.where(spikes, SPIKE_MS, x)

    specs = [baseline(iterations=per_variant, warmup=20, seed=1),
             paced("sleep", 20.0, iterations=per_variant, warmup=20, seed=2, infer_gpu_ms=infer_gpu)]
    run = make_run(root, specs, run_id="big-run")
    return run.path


def report_once(run_dir: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `tracegen report` child process."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tracegen", "report", str(run_dir), "--out", str(out)],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"report failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far, in KiB
    if peak < before:
        peak = before
    return wall, peak / 1024


def page_checks(out: Path) -> dict[str, object]:
    page = out / "runs" / "big-run" / "index.html"
    html = page.read_text(encoding="utf-8")
    stats = json.loads((out / "runs" / "big-run" / "stats.json").read_text(encoding="utf-8"))
    tiers = stats.get("tiers", {}).get("1") or {}
    cps = stats.get("changepoints", {}).get("1") or []
    return {"page_mb": page.stat().st_size / 2**20, "tier_levels": len(tiers.get("levels") or []),
            "changepoints": len(cps), "spike_drawn": f'"hi":{SPIKE_MS:g}' in html or f'"max_ms":{SPIKE_MS:g}' in html
            or '"over":true' in html}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=500_000, help="measured iterations per variant (two variants)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="write the run here and keep it (reused when it exists)")
    ap.add_argument("--phases", action="store_true", help="also time each phase (in a child process)")
    ap.add_argument("--phases-of", type=Path, help=argparse.SUPPRESS)  # the child of --phases
    args = ap.parse_args()
    if args.phases_of:
        _phases_here(args.phases_of)
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        run_dir = base / "big-run"
        if not run_dir.exists():
            t0 = time.perf_counter()
            write_big_run(base, args.iterations)
            print(f"wrote {run_dir} in {time.perf_counter() - t0:.1f} s")
        load_before = os.getloadavg()[0]
        walls, peaks = [], []
        for i in range(args.repeats):
            # each repeat in its own child so ru_maxrss (a high-water mark) is that child's own
            code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.bench_report_big import report_once; "
                    f"from pathlib import Path; w, p = report_once(Path({str(run_dir)!r}), Path({str(Path(tmp) / f'site{i}')!r}));"
                    " print(w, p)")
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
            if res.returncode != 0:
                sys.exit(res.stderr[-2000:])
            w, p = map(float, res.stdout.split())
            walls.append(w)
            peaks.append(p)
        checks = page_checks(Path(tmp) / "site0")
        print("| iterations | repeats | median wall s | min wall s | max wall s | median peak RSS MiB | page MiB | tier levels "
              "| change points | spikes drawn |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        print(f"| {2 * args.iterations:,} | {args.repeats} | {statistics.median(walls):.2f} | {min(walls):.2f} | {max(walls):.2f} | "
              f"{statistics.median(peaks):.0f} | {checks['page_mb']:.2f} | {checks['tier_levels']} | "
              f"{checks['changepoints']} | {checks['spike_drawn']} |")
        print("per repeat (wall s / peak MiB): " + ", ".join(f"{w:.2f}/{p:.0f}" for w, p in zip(walls, peaks)))
        print(f"load average (1 min) before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}")
        if args.phases:
            phases(run_dir)


def phases(run_dir: Path) -> None:
    """Where the time and memory go, in a fresh child process (so that its peak RSS is its own):
    the imports, the page key (content hash), the per-iteration frame (the steps streamed into
    it), the analysis, the page object (which analyses again: subtract the line above for its
    own work: step medians, summary), then charts, HTML and files."""
    res = subprocess.run([sys.executable, __file__, "--phases-of", str(run_dir)], capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        sys.exit(res.stderr[-2000:])
    print(res.stdout, end="")


def _phases_here(run_dir: Path) -> None:
    rows = []
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        rows.append((name, now - t, time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
        t = now

    import tracegen.cli.report  # noqa: F401  (what `tracegen report` imports before it starts)
    from tracegen.analysis.findings import analyze
    from tracegen.report.incremental import page_key
    from tracegen.report.iterations import read_iterations
    from tracegen.report.page import RunPage
    import tracegen.report.site  # noqa: F401

    lap("imports")
    page_key(run_dir, None)
    lap("page key (content hash of the run)")
    run, iters = read_iterations(run_dir)
    lap("read_iterations (steps streamed into the per-iteration frame)")
    analyze(run, iters=iters)
    lap("analyze (analysis package)")
    page = RunPage(run, None, iters=iters)
    lap("RunPage (analyze again, step medians, summary)")
    with tempfile.TemporaryDirectory() as tmp:
        page.write(Path(tmp) / "page")
    lap("charts, HTML and files")
    print("| phase | wall s | CPU s (all threads) | peak RSS so far MiB |")
    print("| --- | --- | --- | --- |")
    cpu_before = 0.0
    for name, s, cpu, mib in rows:
        print(f"| {name} | {s:.2f} | {cpu - cpu_before:.2f} | {mib:.0f} |")
        cpu_before = cpu


if __name__ == "__main__":
    main()
