"""The pages in a real browser (headless Chromium from file://): every chart drawn, no script or
console error, no request attempted. The pages' Content-Security-Policy blocks every request
and their first script records blocked requests and errors on <body>; a control page with an
external image and a console error shows that those records work."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tracegen.report.site import build_site

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p and Path(p).exists()), None)

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")]


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM after scripts ran (virtual time lets vega's promises settle without waiting)."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert "</html>" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def body_attrs(dom: str) -> str:
    # the real <body> follows </head>; the inlined JavaScript holds "<body>" strings of its own
    return re.search(r"</head>\s*<body([^>]*)>", dom).group(1)


@pytest.fixture(scope="module")
def site(idle_run, batch_run, interrupted_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("browser-site")
    result = build_site([idle_run, batch_run, interrupted_run], out, budget_ms=5.0)
    return out, result


def test_every_chart_is_drawn_without_errors_or_requests(site, tmp_path):
    out, result = site
    for run_id, page in result.pages:
        dom = dump_dom(page, tmp_path / "profile")
        attrs = body_attrs(dom)
        assert "data-page-errors" not in attrs, (run_id, attrs)
        assert 'data-charts-pending="0"' in attrs, (run_id, attrs)
        charts = re.findall(r'<div class="chart[^"]*" id="(chart-[^"]+)" data-rendered="(\w+)"', dom)
        expected = page.read_text(encoding="utf-8").count('<script type="application/json" data-chart=')
        assert len(charts) == expected >= 3, (run_id, len(charts), expected)
        assert {state for _, state in charts} == {"true"}, (run_id, charts)
        for chart_id, _ in charts:  # each container holds a drawn SVG with marks in it
            inner = dom.split(f'id="{chart_id}"', 1)[1][:200_000]
            assert re.search(r"<svg[^>]*>.*?<path", inner, re.S), (run_id, chart_id)


def test_the_index_opens_without_errors(site, tmp_path):
    out, _ = site
    dom = dump_dom(out / "index.html", tmp_path / "profile")
    assert "data-page-errors" not in body_attrs(dom)
    assert dom.count('href="runs/') == 3


def test_the_error_and_request_records_work(site, tmp_path):
    """Control: the same page with an external image, an injected inline script (not allowed by
    the policy's hashes) and a chart whose spec is broken (a console error) must be caught."""
    out, result = site
    page = result.pages[0][1]
    bad = page.with_name("control.html")
    html = page.read_text(encoding="utf-8")
    html = html.replace("<main>", '<main><img src="https://example.invalid/pixel.png">'
                                  '<script>document.title = "injected"</script>', 1)
    html = re.sub(r'(<script type="application/json" data-chart="[^"]+">)\{', r"\1{broken", html, count=1)
    bad.write_text(html, encoding="utf-8")
    try:
        dom = dump_dom(bad, tmp_path / "profile")
    finally:
        bad.unlink()
    attrs = body_attrs(dom)
    assert "blocked: https://example.invalid/pixel.png" in attrs
    assert "blocked: inline" in attrs and "<title>injected</title>" not in dom
    assert "error: " in attrs  # JSON.parse of the broken spec


# -- compare page and index -------------------------------------------------------------------------

def test_compare_pages_draw_without_errors_or_requests(site, tmp_path):
    out, result = site
    assert result.compares
    for page in result.compares:
        dom = dump_dom(page, tmp_path / "profile")
        attrs = body_attrs(dom)
        assert "data-page-errors" not in attrs and 'data-charts-pending="0"' in attrs, (page, attrs)
        assert re.findall(r'id="chart-[^"]+" data-rendered="(\w+)"', dom) == ["true"]
        assert "data-compare-variant=" in dom


@pytest.fixture(scope="module")
def many(tmp_path_factory, idle_run):
    """Six runs on two devices, two models, three dates; one with a finding id of its own."""
    from .conftest import idle_latencies, idle_variants, write_run

    root = tmp_path_factory.mktemp("many-runs")
    dirs = []
    for i in range(6):
        gpu = {"name": "Test GPU T4" if i % 2 else "Test GPU A10"}
        dirs.append(write_run(root, f"run-{i}", idle_variants(), idle_latencies(n_measured=40 + 10 * i), gpu=gpu,
                              model={"spec": "builtin:tiny" if i < 4 else "builtin:small"},
                              started_utc=f"2026-0{1 + i // 2}-1{i}T00:00:00.000Z"))
    out = tmp_path_factory.mktemp("many-site")
    build_site(dirs, out)
    return out


def shown_rows(dom: str) -> tuple[list[str], list[str]]:
    """Run ids of the visible and of the hidden rows, in table order."""
    rows = re.findall(r'<tr class="\w+" data-run="([^"]+)"[^>]*?( hidden(?:="")?)?>', dom)
    return [r for r, h in rows if not h], [r for r, h in rows if h]


def test_index_filters_hide_rows(many, tmp_path):
    page = (many / "index.html").as_uri()
    for query, expect in (("", 6), ("?device=Test%20GPU%20T4", 3), ("?model=builtin%3Asmall", 2),
                          ("?from=2026-02-01&to=2026-02-28", 2), ("?device=Test%20GPU%20T4&model=builtin%3Asmall", 1),
                          ("?q=run-3", 1)):
        dom = dump_dom_url(page + query, tmp_path / "profile")
        assert "data-page-errors" not in body_attrs(dom), query
        visible, hidden = shown_rows(dom)
        assert len(visible) == expect and len(hidden) == 6 - expect, (query, visible)
        assert f'data-shown="{expect}"' in dom
    visible, _ = shown_rows(dump_dom_url(page + "?device=Test%20GPU%20T4", tmp_path / "profile"))
    assert visible == ["run-5", "run-3", "run-1"]


def test_index_sorting_orders_rows(many, tmp_path):
    page = (many / "index.html").as_uri()
    visible, _ = shown_rows(dump_dom_url(page + "?sort=iterations&order=asc", tmp_path / "profile"))
    assert visible == [f"run-{i}" for i in range(6)]  # 40 + 10 i measured iterations
    visible, _ = shown_rows(dump_dom_url(page + "?sort=run&order=desc", tmp_path / "profile"))
    assert visible == [f"run-{i}" for i in reversed(range(6))]
    dom = dump_dom_url(page + "?sort=device&order=asc", tmp_path / "profile")
    visible, _ = shown_rows(dom)
    assert [int(r[-1]) % 2 for r in visible] == [0, 0, 0, 1, 1, 1]  # A10 before T4
    assert "data-page-errors" not in body_attrs(dom)


def dump_dom_url(url: str, profile: Path) -> str:
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    assert "</html>" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout
