"""Time saved by incremental site rebuilds: a folder of runs (copies of the H100 example runs
under examples/, each with its own run id) is reported from scratch, then again after adding
one run (only that run is rendered; the others keep their pages), then again unchanged.

    python benchmarks/bench_report_incremental.py [--copies 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def copy_run(src: Path, dest: Path, run_id: str) -> None:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.nsys-rep", "*.txt"))
    m = json.loads((dest / "manifest.json").read_text())
    m["run_id"] = run_id
    (dest / "manifest.json").write_text(json.dumps(m))


def main() -> None:
    from tracegen.report.site import build_site

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=2, help="copies of each example run in the folder")
    args = ap.parse_args()
    examples = sorted(p for p in (ROOT / "examples").iterdir() if (p / "manifest.json").is_file())
    with tempfile.TemporaryDirectory() as tmp:
        runs, out = Path(tmp) / "runs", Path(tmp) / "site"
        for i in range(args.copies):
            for ex in examples:
                copy_run(ex, runs / f"{ex.name}-{i}", f"{ex.name}-{i}")
        rows = []
        for label, prepare in (("from scratch", None),
                               ("one run added", lambda: copy_run(examples[0], runs / "added", "added")),
                               ("nothing changed", None)):
            if prepare:
                prepare()
            dirs = sorted(runs.iterdir())
            t0 = time.perf_counter()
            result = build_site(dirs, out)
            rows.append((label, len(dirs), len(dirs) - len(result.reused), len(result.reused), time.perf_counter() - t0))
    print("| report | runs | rendered | kept | wall s |")
    print("| --- | --- | --- | --- | --- |")
    for label, n, rendered, kept, wall in rows:
        print(f"| {label} | {n} | {rendered} | {kept} | {wall:.2f} |")
    print(f"one run added: {rows[1][4]:.2f} s instead of {rows[0][4]:.2f} s from scratch "
          f"({rows[0][4] / rows[1][4]:.1f}x faster)")


if __name__ == "__main__":
    main()
