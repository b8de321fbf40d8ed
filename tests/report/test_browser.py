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
    """Control: the same page with an external image and a console error must be caught."""
    out, result = site
    page = result.pages[0][1]
    bad = page.with_name("control.html")
    html = page.read_text(encoding="utf-8")
    bad.write_text(html.replace("<main>", '<main><img src="https://example.invalid/pixel.png">'
                                          '<script>console.error("boom")</script>', 1), encoding="utf-8")
    try:
        attrs = body_attrs(dump_dom(bad, tmp_path / "profile"))
    finally:
        bad.unlink()
    assert "blocked: https://example.invalid/pixel.png" in attrs
    assert "console: boom" in attrs
