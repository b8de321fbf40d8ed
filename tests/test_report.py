"""The site as a reader sees it: pages, numbers that match the Parquet files, safety, no network."""

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from tracegen.analysis.stats import iterations, variant_stats
from tracegen.errors import ConfigError
from tracegen.report.downsample import downsample
from tracegen.report.site import build_site
from tracegen.trace.reader import read_run


@pytest.fixture(scope="module")
def site(small_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    result = build_site([small_run], out)
    return out, result


def _page(site):
    out, result = site
    return (out / "runs" / "small" / "index.html").read_text()


def test_index_lists_the_run_with_a_relative_link(site):
    out, result = site
    index = (out / "index.html").read_text()
    assert 'href="runs/small/index.html"' in index
    assert "builtin:tiny" in index and "onnxruntime" in index


def test_vega_is_inlined_once_and_nothing_is_fetched(site):
    page = _page(site)
    assert page.count("vegaEmbed(") == 1 or page.count("function vegaEmbed") <= 1
    assert len(re.findall(r"<script>", page)) == 2  # the bundle and the drawing script
    assert not re.search(r'<(script|link|img|iframe)[^>]+(src|href)="(https?:)?//', page)
    assert page.count('data-chart="') >= 3


def test_statistics_table_matches_the_parquet_files(site, small_run):
    page = _page(site)
    run = read_run(small_run)
    stats = variant_stats(run.variants, iterations(run.steps)).sort("variant_id")
    rows = re.findall(r'<tr data-variant="(\d+)">(.*?)</tr>', page, flags=re.S)
    table = {}
    for vid, row in rows:
        cells = [html.unescape(re.sub(r"<.*?>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        table[int(vid)] = cells
    assert set(table) == set(stats["variant_id"].to_list())
    for r in stats.iter_rows(named=True):
        cells = table[r["variant_id"]]
        assert cells[7] == str(r["n"])
        assert abs(float(cells[8]) - r["p50_ms"]) <= 0.0005 + 0.001 * r["p50_ms"]
        assert abs(float(cells[11]) - r["mean_ms"]) <= 0.0005 + 0.001 * r["mean_ms"]


def test_machine_readable_outputs(site, small_run):
    out, result = site
    stats = json.loads((out / "runs/small/stats.json").read_text())
    run = read_run(small_run)
    assert len(stats["variants"]) == run.variants.height
    findings = json.loads((out / "runs/small/findings.json").read_text())
    assert findings["run_id"] == "small" and isinstance(findings["findings"], list)


def test_model_names_are_escaped(small_run_copy, tmp_path):
    manifest_path = small_run_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"]["spec"] = "<script>alert(1)</script>"
    manifest_path.write_text(json.dumps(manifest))
    build_site([small_run_copy], tmp_path / "site")
    page = (tmp_path / "site/runs/small/index.html").read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_interrupted_run_is_marked(small_run_copy, tmp_path):
    manifest_path = small_run_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest.update(status="interrupted", error="stopped by Ctrl-C")
    manifest_path.write_text(json.dumps(manifest))
    build_site([small_run_copy], tmp_path / "site")
    page = (tmp_path / "site/runs/small/index.html").read_text()
    assert "was <strong>interrupted</strong>" in page
    assert 'class="badge interrupted"' in (tmp_path / "site/index.html").read_text()


def test_failed_report_leaves_the_previous_site(small_run, small_run_copy, tmp_path):
    out = tmp_path / "site"
    build_site([small_run], out)
    before = (out / "index.html").read_bytes()
    (small_run_copy / "steps.parquet").write_bytes(b"broken")
    with pytest.raises(Exception):
        build_site([small_run, small_run_copy], out)
    assert (out / "index.html").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".tracegen-")]


def test_output_that_is_a_file(small_run, tmp_path):
    (tmp_path / "site").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        build_site([small_run], tmp_path / "site")


def test_downsampling_keeps_tiers_and_change_points():
    import numpy as np

    rng = np.random.default_rng(0)
    n = 1_000_000
    y = np.where(np.arange(n) < 400_123, 5.0, 9.0) + rng.normal(0, 0.1, n)
    d = downsample(np.arange(n), y, max_points=1000, keep=[400_123])
    assert len(d["x"]) < 1100
    levels = np.round(np.median(d["y"][d["x"] < 400_000]), 1), np.round(np.median(d["y"][d["x"] > 401_000]), 1)
    assert levels == (5.0, 9.0)
    assert 400_123 in d["x"] and 400_122 in d["x"]  # the step is drawn at its exact iteration
    assert (d["hi"] >= d["y"]).all() and (d["lo"] <= d["y"]).all()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_pages_render_in_headless_chromium(site, tmp_path):
    out, _ = site
    for page in (out / "runs/small/index.html", out / "index.html"):
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chr'}",
             "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120)
        dom = proc.stdout
        assert "</html>" in dom
        if page.name == "index.html" and page.parent.name == "small":
            containers = re.findall(r'<div class="chart[^"]*" id="chart-[^"]+" data-rendered="(\w+)"', dom)
            assert containers and set(containers) == {"true"}, containers
            assert not re.search(r"<body[^>]*data-chart-errors=", dom)
            assert re.search(r'<body[^>]*data-charts-pending="0"', dom)
            assert dom.count("<svg") >= len(containers)
