"""The run page's GPU-kernels section: present with imported nsys tables, absent without."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.analysis.runs import baseline, make_run, paced
from tests.importers.fake_nsys import Plan, from_run
from tracegen.importers.nsys import import_into_run
from tracegen.report.site import build_site

REAL = Path(__file__).parent / "data" / "h200-small-nsys"


def _charts(html: str) -> dict[str, dict]:
    return {m.group(1): json.loads(m.group(2)) for m in
            re.finditer(r'<script type="application/json" data-chart="([^"]+)">(.*?)</script>', html, re.S)}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One site (building one costs seconds) with a synthetic imported run, the real one, and a
    run without an import."""
    tmp = tmp_path_factory.mktemp("nsys-page")
    specs = [baseline(iterations=30, warmup=2, noise=0.01),
             paced("sleep", 5, iterations=30, warmup=2, noise=0.01, infer_gpu_ms=1.5)]
    run = make_run(tmp / "runs", specs)
    import_into_run(run.path, from_run(run, tmp / "r.sqlite", Plan(kernel_ns=250_000, kernels=4)))
    real = tmp / "runs" / "h200-small-nsys"
    shutil.copytree(REAL, real)
    import_into_run(real)
    plain = make_run(tmp / "runs", [baseline(iterations=12, warmup=2)], run_id="plain")
    build_site([run.path, real, plain.path], tmp / "site")
    return tmp / "site" / "runs"


def test_section_shows_step_medians_and_a_slow_and_fast_timeline(site):
    html = (site / "synthetic" / "index.html").read_text()
    assert 'id="kernels"' in html and "GPU kernels (Nsight Systems)" in html
    rows = re.findall(r'<tr data-kernel-variant="(\d+)"><td class="name">[^<]*</td><td>(\w+)</td>'
                      r'<td class="num">(\d+)</td><td class="num">(\d+)</td><td class="num">([\d.,]+)</td>', html)
    infer = [r for r in rows if r[1] == "infer"]
    assert [(v, n, k, c) for v, _, n, k, c in infer] == [("0", "32", "4", "1,000.0"), ("1", "32", "4", "1,000.0")]
    chart = next(spec for cid, spec in _charts(html).items() if cid.endswith("-kernels"))
    values = next(iter(chart["datasets"].values())) if "datasets" in chart else chart["data"]["values"]
    lanes = {v["lane"] for v in values}
    assert len(lanes) == 4 and any(lane.startswith("slow, it ") for lane in lanes)
    gpu = [v for v in values if v["lane"].endswith("GPU") and v["kind"] == "kernel"]
    assert len(gpu) == 8 and all(abs(v["us"] - 250.0) < 1e-6 for v in gpu)
    # the kernel-time finding picked the paced variant as slow, the baseline as fast
    assert "slow = idle b1 5ms-sleep" in " ".join(html.split()) and "fast = idle b1 no-gap" in " ".join(html.split())


def test_real_run_page_and_a_run_without_import(site):
    page = (site / "h200-small-nsys" / "index.html").read_text()
    assert 'id="kernels"' in page and "graph launches were traced as a whole" in " ".join(page.split())
    assert 'id="kernels"' not in (site / "plain" / "index.html").read_text()
