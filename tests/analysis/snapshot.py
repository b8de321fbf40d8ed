"""The analysis of every run under ``examples/`` (and of three synthetic runs) as plain JSON, and
the recorded snapshot it is compared with (``test_examples_snapshot.py``).

Record it again only when a change of the findings is intended (say why in the commit):

    PYTHONPATH=. python -m tests.analysis.snapshot --write
"""

from __future__ import annotations

import argparse
import html as htmllib
import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SNAPSHOT = Path(__file__).resolve().parent / "data" / "analysis_snapshot.json"
PAGES = Path(__file__).resolve().parent / "data" / "findings_text_snapshot.json"
BUDGET_MS = 50.0  # the synthetic batch run is also analysed with a latency budget


def example_dirs() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if (p / "manifest.json").is_file())


def _synthetic(root: Path) -> dict[str, Any]:
    """Synthetic runs like the analysis tests': T4-like tiers with batch scaling, a host
    wake-up (sleep vs spin) run and a GPU-idling (sleep vs keep-alive) run at a power cap, so the snapshot also covers rules the examples do not fire."""
    import numpy as np

    from tests.analysis.runs import XAVIER_PER_IMAGE, baseline, batch_series, const, make_run, paced, ramp

    gpu = ramp(60, 160, 4.4, 9.7)
    tel = {"clock": lambda i, busy: np.where(busy, 1590.0 * 4.4 / gpu(i), 300.0),
           "reasons": lambda i, busy: np.where(busy, 0, 1), "power": const(70.0), "temperature": const(60.0),
           "tel_ms": 3.0}
    both = (batch_series({b: v * b for b, v in XAVIER_PER_IMAGE.items()}, iterations=12)
            + [baseline(infer_gpu_ms=4.4, iterations=150, clock=const(1590.0), reasons=const(0), tel_ms=3.0),
               paced("sleep", 20, infer_gpu_ms=gpu, iterations=300, **tel),
               paced("spin", 20, infer_gpu_ms=gpu, iterations=300, seed=1, **tel)])
    host = [baseline(iterations=120), paced("sleep", 20, iterations=120, pre_ms=0.9, sync_extra_ms=0.4),
            paced("spin", 20, iterations=120, seed=2), paced("keepalive", 20, iterations=120, seed=3,
                                                                pre_ms=0.9, sync_extra_ms=0.4)]
    steady = {"clock": const(1980.0), "reasons": const(0x4), "power": const(300.0), "temperature": const(50.0), "h2d_gpu_ms": 0.8,
              "tel_ms": 2.0}
    idling = [baseline(iterations=120, **steady),
              paced("sleep", 20, iterations=120, infer_gpu_ms=1.6, **steady),
              paced("keepalive", 20, iterations=120, seed=4, **steady)]
    return {"synthetic-gpu-idling": (make_run(root / "idling", idling), None),
            "synthetic-t4-xavier": (make_run(root / "both", both, manifest={"gpu": {"name": "Tesla T4"}}), BUDGET_MS),
            "synthetic-host-wakeup": (make_run(root / "host", host), None)}


def _render(finding: Any) -> str:
    """The text a reader sees of one finding on the run page (tags dropped, white space folded)."""
    from tracegen.report.render import environment

    html = environment().get_template("findings/_frame.html").render(finding=finding, chart_html="")
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def analyses() -> tuple[dict[str, Any], dict[str, list[str]]]:
    """run name -> ``Analysis.to_dict()`` (findings, stats, tiers, change points, scaling,
    attribution), and run name -> the rendered text of each finding."""
    from tracegen.analysis.findings import analyze
    from tracegen.trace.reader import read_run

    data, pages = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {d.name: (read_run(d), None) for d in example_dirs()} | _synthetic(Path(tmp))
        for name, (run, budget) in runs.items():
            a = analyze(run, budget_ms=budget)
            data[name] = a.to_dict()
            pages[name] = [_render(f) for f in a.findings]
    return json.loads(json.dumps(data, allow_nan=False)), pages


def differences(a: Any, b: Any, path: str = "", rel: float = 1e-9) -> list[str]:
    """Where two JSON values differ; floats within ``rel`` (summation order) count as equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in {'recorded' if k in a else 'current'}" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += differences(a[k], b[k], f"{path}/{k}", rel)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items recorded, {len(b)} now"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]", rel)]
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return [] if math.isclose(a, b, rel_tol=rel, abs_tol=1e-12) else [f"{path}: {a!r} recorded, {b!r} now"]
    if isinstance(a, str) and isinstance(b, str) and a != b:
        i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return [f"{path}: ...{a[max(0, i - 60):i + 60]!r}... recorded, ...{b[max(0, i - 60):i + 60]!r}... now"]
    return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} recorded, {b!r} now"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"record the snapshot ({SNAPSHOT.relative_to(ROOT)})")
    args = p.parse_args()
    data, pages = analyses()
    if args.write:
        SNAPSHOT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        PAGES.write_text(json.dumps(pages, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {SNAPSHOT} and {PAGES} ({len(data)} runs)")
        return
    diff = differences(json.loads(SNAPSHOT.read_text(encoding="utf-8")), data)
    diff += differences(json.loads(PAGES.read_text(encoding="utf-8")), pages)
    print("\n".join(diff[:50]) or "identical")


if __name__ == "__main__":
    main()
