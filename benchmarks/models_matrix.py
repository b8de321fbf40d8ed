"""The user's own models on a backend: export the model zoo (benchmarks/model_zoo.py) in a pool
of CPU workers, run a short batch + idle ``tracegen run`` of each export as it arrives, and print
and write the table model x exporter x backend with p50 latencies.

GPU (the lent H200, torch backend; < 8 minutes):

    source .gpu/setup.sh && python3 benchmarks/models_matrix.py --backend torch --out $OUT

CPU (onnxruntime; the same exports):

    python benchmarks/models_matrix.py --backend onnxruntime --out /tmp/matrix-cpu --workers 1

Writes under --out: ``models_matrix.md`` (the table), ``models_matrix.json`` (every row with
the conversion steps or the error), the run directories as ``runs-BACKEND.tar.gz`` (if under
15 MiB) and the --example run directory as its own tarball (for examples/). The
table is rewritten after every model, so a run stopped by a time limit keeps what it measured.
Each run goes through the same Python API as ``tracegen run`` (``run_benchmark``), in this
process, so torch and CUDA are initialised once.

``--check`` (CPU, needs torch + onnx2torch) also converts every ONNX export the way the torch
backend does and compares its outputs with onnxruntime's (max |diff| / max |reference|).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tarfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from model_zoo import Export, export, jobs  # noqa: E402

RUN = {  # a short batch + idle run (both scenarios), per backend
    "torch": dict(batch_sizes="1,8", batch_iterations=30, warmup=10, idle_ms="0,20", pacing="sleep", iterations=30,
                  launch="eager", telemetry_ms=50),
    "onnxruntime": dict(batch_sizes="1,4", batch_iterations=8, warmup=2, idle_ms="0,20", pacing="sleep",
                        iterations=10, telemetry_ms=100),
}
# On the GPU a model that fails in fp16 with device pre/post is retried in fp32 with host steps.
ATTEMPTS = {"torch": [dict(precision="fp16"), dict(precision="fp32", preprocess="host", postprocess="host")],
            "onnxruntime": [dict(precision="fp32")]}


def p50s(run_dir: Path) -> dict:
    """Batch-1 and largest-batch latency, infer GPU time and the 20 ms-gap latency (medians, ms)."""
    import polars as pl

    from tracegen.analysis.stats import iterations
    from tracegen.trace.reader import read_run

    run = read_run(run_dir)
    it = iterations(run.steps).filter(~pl.col("warmup")).join(run.variants, on="variant_id")

    def med(frame, col="latency_ns"):
        if frame.height == 0 or col not in frame.columns or frame[col].null_count() == frame.height:
            return None
        return round(float(frame[col].median()) / 1e6, 3)

    batch = it.filter(pl.col("scenario") == "batch")
    top = int(batch["batch"].max()) if batch.height else None
    big = batch.filter(pl.col("batch") == top)
    gap = it.filter((pl.col("scenario") == "idle") & (pl.col("idle_ms") > 0))
    return {"p50_b1_ms": med(batch.filter(pl.col("batch") == 1)), "infer_gpu_b1_ms": med(
        batch.filter(pl.col("batch") == 1), "infer_gpu_ns"), "max_batch": top,
        "p50_max_batch_per_item_ms": round(med(big) / top, 3) if top and med(big) else None,
        "p50_idle20_ms": med(gap)}


def run_one(exp: Export, backend: str, out: Path) -> dict:
    from tracegen.run import build_config, run_benchmark

    row = {"model": exp.model, "exporter": exp.exporter, "backend": backend, "export_s": exp.seconds}
    if exp.error:
        return {**row, "status": "export failed", "error": exp.error}
    if backend == "onnxruntime" and exp.exporter in ("torch.export", "factory"):
        return {**row, "status": "n/a", "error": "PyTorch-native model: torch backend only"}
    last = None
    for attempt in ATTEMPTS[backend]:
        start = time.perf_counter()
        run_id = f"{exp.model}-{exp.exporter.replace('.', '')}-{backend}-{attempt['precision']}"
        flags = dict(model=exp.spec, backend=backend, shapes=exp.shapes, out=str(out), run_id=run_id,
                     **RUN[backend], **attempt)
        if backend == "onnxruntime":
            flags["threads"] = os.cpu_count()
        try:
            result = run_benchmark(build_config(flags=flags), command=["models_matrix.py"], progress=False)
            manifest = json.loads((result.run_dir / "manifest.json").read_text())
            return {**row, "status": result.status, "precision": attempt["precision"],
                    "run_s": round(time.perf_counter() - start, 1), **p50s(result.run_dir),
                    "run_dir": str(result.run_dir), "loaded": manifest["model"].get("loaded"),
                    "conversion": manifest["backend"].get("conversion"),
                    "batch_sizes": manifest["config"]["batch_sizes"]}
        except BaseException as exc:  # noqa: BLE001 - one model's failure is one row
            if isinstance(exc, KeyboardInterrupt):
                raise
            last = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
            traceback.print_exc(limit=3)
    return {**row, "status": "failed", "error": last, "run_s": round(time.perf_counter() - start, 1)}


def check_conversion(exp: Export) -> dict:
    """Torch-backend conversion on the CPU against onnxruntime's outputs."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from tracegen.models.feed import generate
    from tracegen.models.shapes import plan_for
    from tracegen.models.source import load_model
    from tracegen.models.torch_convert import make_call, torch_model

    start = time.perf_counter()
    model = load_model(exp.spec)
    plan = plan_for(model, shapes=exp.shapes)
    rng = np.random.default_rng(0)
    xs = [generate(plan, i, 2 if plan.batched[i] else plan.specs[i].shape[0]) for i in range(len(plan.specs))]
    xs = [rng.standard_normal(x.shape).astype(x.dtype) if x.dtype.kind == "f" else x for x in xs]
    tm = torch_model(model)
    convert_s = time.perf_counter() - start
    with torch.inference_mode():
        ys = [y.numpy() for y in make_call(tm, [t.name for t in plan.specs], [torch.from_numpy(x) for x in xs])()]
    refs = ort.InferenceSession(model.path, providers=["CPUExecutionProvider"]).run(
        None, {t.name: x for t, x in zip(plan.specs, xs)})
    err = max(float(np.abs(y - r).max()) / max(float(np.abs(r).max()), 1e-12) for y, r in zip(ys, refs))
    return {"torch_cpu_rel_err": float(f"{err:.2e}"), "convert_s": round(convert_s, 1),
            "kept_ops": tm.info.get("kept_ops"), "opset": f"{tm.info.get('opset_in')}->{tm.info.get('opset_out')}"}


COLUMNS = [("model", "model"), ("exporter", "exporter"), ("backend", "backend"), ("status", "status"),
           ("precision", "precision"), ("p50_b1_ms", "p50 batch 1 (ms)"), ("infer_gpu_b1_ms", "infer GPU b1 (ms)"),
           ("p50_max_batch_per_item_ms", "p50 per item at max batch (ms)"), ("max_batch", "max batch"),
           ("p50_idle20_ms", "p50 after 20 ms gaps (ms)"), ("torch_cpu_rel_err", "torch vs ORT (CPU)"),
           ("error", "note")]


def table(rows: list[dict]) -> str:
    used = [(k, h) for k, h in COLUMNS if any(r.get(k) is not None for r in rows)]
    lines = ["| " + " | ".join(h for _, h in used) + " |", "|" + " --- |" * len(used)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(k) is None else str(r[k]).replace("|", "/") for k, _ in used) + " |")
    return "\n".join(lines)


def write(out: Path, rows: list[dict], meta: dict) -> None:
    rows = sorted(rows, key=lambda r: (r["model"], r["exporter"]))
    (out / "models_matrix.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    (out / "models_matrix.md").write_text(f"{meta['title']}\n\n{table(rows)}\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=list(RUN), default="torch")
    ap.add_argument("--out", default=os.environ.get("OUT", "matrix-out"))
    ap.add_argument("--exports", default=None, help="directory of the exports [default: OUT/../exports or /tmp]")
    ap.add_argument("--runs", default="/tmp/tracegen-matrix-runs", help="where the run directories go")
    ap.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) // 2)))
    ap.add_argument("--models", default=None, help="comma-separated subset of the zoo")
    ap.add_argument("--budget-s", type=float, default=420.0, help="start no new run after this many seconds")
    ap.add_argument("--export-timeout-s", type=float, default=180.0, help="give up on exports after this long")
    ap.add_argument("--check", action="store_true", help="also compare the torch conversion with onnxruntime (CPU)")
    ap.add_argument("--example", default="resnet50-legacy", help="tar this run directory into OUT (MODEL-EXPORTER)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exports = Path(args.exports or "/tmp/tracegen-model-zoo")
    runs = Path(args.runs)  # $OUT takes only a few files: the run directories come back as one tarball
    todo = jobs(args.models.split(",") if args.models else None)
    if args.backend == "onnxruntime":  # PyTorch-native forms run on the torch backend only
        todo = [j for j in todo if j[1] in ("legacy", "dynamo")]
    threads = max(1, (os.cpu_count() or 2) // args.workers)
    meta = {"title": f"tracegen model matrix: --backend {args.backend}", "command": " ".join(sys.argv),
            "workers": args.workers, "host": os.uname().nodename}
    try:
        import torch

        meta["torch"] = torch.__version__
        if torch.cuda.is_available():
            meta["gpu"] = torch.cuda.get_device_name(0)
            meta["title"] += f" on {meta['gpu']}"
    except ImportError:
        pass
    rows: list[dict] = []
    # Export everything first, in a pool of fresh interpreters (no CUDA state), and only then
    # measure: no exporter competes with the timed runs for the CPU.
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers) as pool:
        pending = [(m, e, pool.apply_async(export, (m, e, str(exports), threads))) for m, e in todo]
        done: list[Export] = []
        for m, e, p in pending:
            left = max(1.0, args.export_timeout_s - (time.perf_counter() - t0))
            try:
                done.append(p.get(timeout=left))
            except mp.TimeoutError:
                done.append(Export(m, e, error=f"export did not finish within {args.export_timeout_s:.0f} s"))
        pool.terminate()
    meta["export_s"] = round(time.perf_counter() - t0, 1)
    print(f"[{meta['export_s']:6.1f} s] {sum(not x.error for x in done)}/{len(done)} exports", flush=True)
    for exp in done:
        if time.perf_counter() - t0 > args.budget_s:
            rows.append({"model": exp.model, "exporter": exp.exporter, "backend": args.backend,
                         "status": "skipped", "error": f"time budget of {args.budget_s:.0f} s used"})
            continue
        row = run_one(exp, args.backend, runs)
        if args.check and exp.spec.endswith(".onnx") and not exp.error:
            try:
                row.update(check_conversion(exp))
            except Exception as exc:  # noqa: BLE001
                row["torch_cpu_rel_err"] = f"conversion failed: {str(exc).splitlines()[0][:160]}"
        rows.append(row)
        print(f"[{time.perf_counter() - t0:6.1f} s] {exp.model:20} {exp.exporter:12} {row['status']:8} "
              f"p50 b1 {row.get('p50_b1_ms')} ms  {row.get('error') or ''}", flush=True)
        write(out, rows, {**meta, "elapsed_s": round(time.perf_counter() - t0, 1)})
    example = next((r for r in rows if f"{r['model']}-{r['exporter']}" == args.example and r.get("run_dir")), None)
    if example:
        with tarfile.open(out / f"example-{args.example}-{args.backend}.tar.gz", "w:gz") as tar:
            tar.add(example["run_dir"], arcname=Path(example["run_dir"]).name)
    done = [r["run_dir"] for r in rows if r.get("run_dir")]
    if done:
        with tarfile.open(out / f"runs-{args.backend}.tar.gz", "w:gz") as tar:
            for d in done:
                tar.add(d, arcname=Path(d).name)
        if (out / f"runs-{args.backend}.tar.gz").stat().st_size > 15 << 20:  # over what $OUT brings back
            (out / f"runs-{args.backend}.tar.gz").unlink()
    meta["elapsed_s"] = round(time.perf_counter() - t0, 1)
    write(out, rows, meta)
    print(table(sorted(rows, key=lambda r: (r["model"], r["exporter"]))))
    print(f"{len(rows)} rows in {meta['elapsed_s']} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
