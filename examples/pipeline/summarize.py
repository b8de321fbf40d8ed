"""Per-variant medians of pipeline runs: latency, every step's host and GPU time, and the share of
the latency that is host work (pre/postprocessing on the host, the copy into page-locked memory).

    python3 examples/pipeline/summarize.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tracegen.analysis.stats import iterations  # noqa: E402
from tracegen.trace.reader import read_run  # noqa: E402

STEPS = ("h2d", "preprocess", "infer", "postprocess", "d2h", "sync")
HOST_WORK = ("preprocess_host_ns", "postprocess_host_ns", "h2d_host_ns")  # the host's own work


def summarize(run_dir: Path) -> None:
    run = read_run(run_dir)
    it = iterations(run.steps).filter(~pl.col("warmup")).join(run.variants, on="variant_id")
    pipe = run.manifest.get("pipeline", {})
    print(f"\n## {run.id}\n")
    print(f"pre: {pipe.get('preprocess')}; post: {pipe.get('postprocess')}; steps: {' -> '.join(pipe.get('steps', []))}")
    cols = [c for s in STEPS for c in (f"{s}_host_ns", f"{s}_gpu_ns") if c in it.columns]
    head = ["variant", "n", "gap ms", "latency p50 ms", "p90 ms"] + [c.replace("_ns", "") for c in cols] + ["host share"]
    print("\n| " + " | ".join(head) + " |\n|" + " --- |" * len(head))
    for vid in sorted(it["variant_id"].unique().to_list()):
        v = it.filter(pl.col("variant_id") == vid)
        med = {c: v[c].median() for c in cols}
        lat = v["latency_ns"].median()
        host = sum((v[c].fill_null(0)).median() or 0 for c in HOST_WORK if c in v.columns)
        row = [v["name"][0], str(v.height), f"{v['idle_ns'].median() / 1e6:.2f}", f"{lat / 1e6:.3f}",
               f"{v['latency_ns'].quantile(0.9) / 1e6:.3f}"]
        row += ["" if med[c] is None else f"{med[c] / 1e6:.3f}" for c in cols]
        row.append(f"{host / lat:.0%}" if lat else "")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        if (Path(arg) / "manifest.json").is_file():
            summarize(Path(arg))
        else:
            print(f"\n## {arg}: no run there (its step failed or was skipped; see timings.txt)")
