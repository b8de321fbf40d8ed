"""The site as a reader sees it: what each page shows, numbers equal to the Parquet files
(recomputed here with polars), escaping, no network, atomic and polite writing."""

from __future__ import annotations

import json
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from tracegen.errors import ConfigError, TracegenError
from tracegen.report import render
from tracegen.report.site import build_site
from tracegen.trace.reader import read_run

from .conftest import BATCH_MS, STEP_AT, WARMUP, idle_latencies, idle_variants, write_run


# -- a small HTML reader ----------------------------------------------------------------------------

class Page(HTMLParser):
    """Tables (rows of cell texts, keyed by the row's attributes), tag attributes, text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.rows: list[tuple[dict[str, str], list[str]]] = []
        self.text: list[str] = []
        self._row: tuple[dict, list] | None = None
        self._cell: list[str] | None = None
        self._skip = 0
        self.feed(html)

    BLOCKS = {"td", "th", "tr", "p", "div", "li", "br", "h1", "h2", "h3", "h4", "pre", "table", "header", "footer"}

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag in self.BLOCKS:
            self.text.append(" ")
            if self._cell is not None:
                self._cell.append(" ")
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "tr":
            self._row = (a, [])
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in self.BLOCKS:
            self.text.append(" ")
        if tag in ("script", "style"):
            self._skip -= 1
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row[1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table(self, attr: str) -> dict[int, list[str]]:
        return {int(a[attr]): cells for a, cells in self.rows if attr in a}

    @property
    def plain(self) -> str:
        return " ".join("".join(self.text).split())


def number(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("x"))


def truth_stats(run_dir: Path) -> pl.DataFrame:
    """Per-variant statistics straight from steps.parquet, independent of tracegen.analysis."""
    steps = pl.read_parquet(run_dir / "steps.parquet")
    per_iter = (steps.filter(~pl.col("warmup") & (pl.col("step").cast(pl.String) != "idle"))
                .group_by("variant_id", "iteration").agg((pl.col("host_ns").sum() / 1e6).alias("ms")))
    variants = pl.read_parquet(run_dir / "variants.parquet").select("variant_id", "batch")
    return (per_iter.group_by("variant_id").agg(
        pl.len().alias("n"), pl.col("ms").quantile(0.5, "linear").alias("p50"),
        pl.col("ms").quantile(0.9, "linear").alias("p90"), pl.col("ms").quantile(0.99, "linear").alias("p99"),
        pl.col("ms").mean().alias("mean"), (pl.col("ms").std() / pl.col("ms").mean()).alias("cov"))
        .join(variants, on="variant_id")
        .with_columns((pl.col("p50") / pl.col("batch")).alias("per_image"),
                      (pl.col("batch") * 1000 / pl.col("p50")).alias("ips")))


def close(shown: str, value: float, rel: float = 5e-4) -> bool:
    """A formatted number agrees with the value to the digits shown."""
    digits = len(shown.split(".")[1]) if "." in shown else 0
    return abs(number(shown) - value) <= 0.5 * 10 ** -digits + 1e-9 or abs(number(shown) - value) <= rel * abs(value)


# -- sites ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(idle_run, batch_run, interrupted_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    result = build_site([idle_run, batch_run, interrupted_run], out, budget_ms=5.0)
    return out, result


def page(site, run_id: str) -> str:
    return (site[0] / "runs" / run_id / "index.html").read_text(encoding="utf-8")


def test_result_names_every_page(site):
    out, result = site
    assert result.index == out / "index.html"
    assert [rid for rid, _ in result.pages] == ["idle-run", "batch-run", "interrupted-run"]
    assert all(p.is_file() for _, p in result.pages)
    assert [f.severity for f in result.findings["idle-run"]][0] == "critical"


def test_index_lists_every_run_with_facts_and_relative_links(site):
    out, _ = site
    p = Page((out / "index.html").read_text(encoding="utf-8"))
    rows = {a["data-run"]: cells for a, cells in p.rows if "data-run" in a}
    assert set(rows) == {"idle-run", "batch-run", "interrupted-run"}
    idle = rows["idle-run"]
    assert "complete" in idle[2] and "Test GPU T4" in idle[4] and "tensorrt fp16" in idle[5]
    assert idle[6] == "builtin:tiny" and idle[7] == "idle" and idle[8] == "3" and idle[9] == f"{3 * (WARMUP + 300)}"
    assert "bench-host" in idle[10]
    assert "critical" in idle[3]
    assert rows["batch-run"][1] == "2026-01-02 03:04:05" and rows["batch-run"][7] == "batch"
    assert "interrupted" in rows["interrupted-run"][2] and "SIGINT" in rows["interrupted-run"][2]
    assert rows["interrupted-run"][8] == "2 of 3"
    links = [a["href"] for t, a in p.tags if t == "a"]
    assert "runs/idle-run/index.html" in links and all(not re.match(r"^[a-z]+:|^/", h) for h in links)


def test_run_page_sections_in_order(site):
    html = page(site, "idle-run")
    assert re.findall(r'<h2 id="(\w+)">', html) == ["findings", "environment", "idle", "stats", "steps", "telemetry",
                                                     "reproduce"]
    assert re.findall(r'<h2 id="(\w+)">', page(site, "batch-run"))[:3] == ["findings", "environment", "batch"]
    text = Page(html).plain
    assert "Test GPU T4" in text and "compute capability 7.5" in text and "CUDA 12.4" in text
    assert "input · [batch×3×224×224] · float32" in text and "123.46 k (123,456)" in text
    assert "987.65 MFLOP (987,654,321)" in text and "tensorrt 10.0.1" in text


def test_findings_come_first_in_severity_order_with_chart_mitigations_and_nsys_hint(site):
    html = page(site, "idle-run")
    findings = re.findall(r'<div class="finding (\w+)" id="finding-([\w-]+)"', html)
    assert findings and findings[0] == ("critical", "idle-delay-tiers")
    order = {"critical": 0, "warning": 1, "info": 2}
    assert [order[s] for s, _ in findings] == sorted(order[s] for s, _ in findings)
    first = html.split('id="finding-idle-delay-tiers"', 1)[1].split('<div class="finding ', 1)[0]
    assert 'class="chart"' in first and "What to do" in first and "Nsight Systems" in first


def test_statistics_table_equals_the_parquet_files(site, idle_run, batch_run, interrupted_run):
    for run_dir in (idle_run, batch_run, interrupted_run):
        table = Page(page(site, run_dir.name)).table("data-variant")
        truth = truth_stats(run_dir)
        assert set(table) == set(truth["variant_id"].to_list())
        for t in truth.iter_rows(named=True):
            cells = table[t["variant_id"]]
            assert int(cells[7]) == t["n"]
            for col, key in ((8, "p50"), (9, "p90"), (10, "p99"), (11, "mean"), (12, "cov"), (13, "per_image"), (14, "ips")):
                assert close(cells[col], t[key]), (run_dir.name, t["variant_id"], key, cells[col], t[key])


def test_batch_table_and_scaling_facts(site, batch_run):
    html = page(site, "batch-run")
    table = Page(html).table("data-batch-variant")
    truth = truth_stats(batch_run).sort("batch")
    one = truth.row(0, named=True)
    for t in truth.iter_rows(named=True):
        cells = table[t["variant_id"]]
        assert int(cells[1]) == t["batch"]
        assert close(cells[5], t["per_image"]) and close(cells[7], t["ips"])
        assert close(cells[6], one["per_image"] / t["per_image"], rel=0.01)
    text = Page(html).plain
    assert "Batch scaling" in text and "latency budget 5.0 ms" in text
    assert sorted(BATCH_MS) == sorted(int(c[1]) for c in table.values())


def test_idle_section_charts_and_tiers(site):
    html = page(site, "idle-run")
    p = Page(html)
    assert "20 ms gap before each inference" in p.plain and "Continuous (no gap)" not in p.plain
    tiers = p.table("data-tier-variant")
    assert [round(number(x)) for x in tiers[1][1].split(" / ")] == [5, 9]  # noisy levels near 5 and 9 ms
    assert tiers[1][3] == str(WARMUP + STEP_AT)  # onset iteration, warm-up counted


def test_interrupted_and_failed_runs_are_marked(site, runs_root, tmp_path):
    p = Page(page(site, "interrupted-run"))
    assert "This run was interrupted (stopped by SIGINT (Ctrl-C)): 2 of 3 variants finished" in p.plain
    assert p.table("data-variant")[2][-1] == "interrupted"
    assert "GPU none (CPU run)" in p.plain
    failed = write_run(tmp_path, "failed-run", idle_variants(), idle_latencies(), status="failed",
                       error="CUDA out of memory")
    build_site([failed], tmp_path / "site")
    text = Page((tmp_path / "site/runs/failed-run/index.html").read_text()).plain
    assert "This run failed: CUDA out of memory" in text
    assert 'class="badge failed"' in (tmp_path / "site/index.html").read_text()


def test_machine_readable_files(site, idle_run):
    out, result = site
    stats = json.loads((out / "runs/idle-run/stats.json").read_text())
    truth = truth_stats(idle_run)
    assert {v["variant_id"]: v["n"] for v in stats["variants"]} == dict(zip(truth["variant_id"], truth["n"]))
    assert stats["changepoints"]["1"] == [STEP_AT]
    findings = json.loads((out / "runs/idle-run/findings.json").read_text())
    assert [f["id"] for f in findings["findings"]] == [f.id for f in result.findings["idle-run"]]
    assert findings["budget_ms"] == 5.0


def test_pages_are_self_contained(site):
    bundle = render.vega_javascript()
    for path in [site[0] / "index.html", *(p for _, p in site[1].pages)]:
        html = path.read_text(encoding="utf-8")
        tags = Page(html).tags
        for tag, attrs in tags:
            for key in ("src", "href", "action", "srcset", "poster"):
                value = attrs.get(key, "")
                assert not re.match(r"^\s*(https?:)?//", value), (path, tag, key, value)
            assert not (tag == "link" and attrs.get("rel") == "stylesheet")
        [csp] = [a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
        assert csp.startswith("default-src 'none';")  # the browser refuses any request the page might try
        assert "@import" not in html and "url(http" not in html
        if path.name == "index.html" and path.parent.name != site[0].name:
            assert html.count(bundle[:300]) == 1 and html.count(bundle[-300:]) == 1  # Vega inlined once
            assert html.count('<script type="application/json" data-chart=') == html.count('class="chart" id="chart-')


def test_everything_from_the_run_files_is_escaped(tmp_path):
    evil = '<script>alert("x")</script>'
    variants = idle_variants()
    variants[1]["name"] = f"sleep {evil}"
    run_dir = write_run(tmp_path, "evil", variants, idle_latencies(),
                        model={"spec": evil, "input": {"name": evil, "shape": [1], "dtype": "f"}},
                        command=["tracegen", "run", "--model", evil])
    build_site([run_dir], tmp_path / "site")
    for html in ((tmp_path / "site/runs/evil/index.html").read_text(), (tmp_path / "site/index.html").read_text()):
        assert evil not in html and "&lt;script&gt;alert(" in html
        # chart data cannot end its script element either
        for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S):
            assert "<" not in block and json.loads(block)


def test_without_the_analysis_module_the_page_says_so(idle_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tracegen.analysis.findings", None)  # import now raises ImportError
    result = build_site([idle_run], tmp_path / "site")
    text = Page((tmp_path / "site/runs/idle-run/index.html").read_text()).plain
    assert "No findings section: the analysis module is not available" in text
    assert result.findings == {"idle-run": []} and "idle-run" in result.notes
    assert json.loads((tmp_path / "site/runs/idle-run/findings.json").read_text())["findings"] == []
    assert "Statistics" in text and "Idle delay" in text


def test_a_finding_without_its_own_template_uses_the_generic_one(idle_run, tmp_path, monkeypatch):
    from tracegen.analysis import findings as F

    made_up = F.Finding(id="made-up-rule", severity="warning", title="Something odd <b>here</b>", summary="Look.",
                        evidence={"ratio": 1.5, "per_variant": [{"variant": "a", "ms": 2.0}]}, variants=(1,),
                        iterations=((70, 99),), chart="latency_trace", nsys_hint="open range X",
                        mitigations=(F.Mitigation("Do this", "nvidia-smi -lgc 1590", "flat latency", "power", True, "-40 %"),))
    real = F.analyze

    def fake(run, budget_ms=None, **kw):
        return type("A", (), {"findings": [made_up], "tiers": real(run, **kw).tiers, "changepoints": {}, "scaling": None})()

    monkeypatch.setattr(F, "analyze", fake)
    build_site([idle_run], tmp_path / "site")
    html = (tmp_path / "site/runs/idle-run/index.html").read_text()
    block = html.split('id="finding-made-up-rule"', 1)[1].split('<h2 id="environment">', 1)[0]
    text = Page(html).plain
    assert "Something odd &lt;b&gt;here&lt;/b&gt;" in html
    assert "ratio 1.500" in text and "nvidia-smi -lgc 1590" in text and "measured in this run" in text
    assert "Iterations: 70–99" in text and "In Nsight Systems: open range X" in text
    assert 'class="chart"' in block


# -- writing the site ---------------------------------------------------------------------------------

def test_report_into_an_existing_site_replaces_only_its_own_files(idle_run, batch_run, tmp_path):
    out = tmp_path / "site"
    build_site([batch_run], out)
    (out / "notes.txt").write_text("mine")
    (out / "runs" / "other").mkdir()
    (out / "runs" / "other" / "keep.html").write_text("mine too")
    stale = out / "runs" / "batch-run" / "stale.txt"
    stale.write_text("from an older report")
    build_site([idle_run, batch_run], out)
    assert stale.exists()  # batch-run's page was up to date: kept as it was
    build_site([idle_run, batch_run], out, budget_ms=3.0)  # another budget: every page is rendered again
    assert (out / "notes.txt").read_text() == "mine" and (out / "runs/other/keep.html").read_text() == "mine too"
    assert not stale.exists()  # the run's own folder is replaced whole
    assert not [p for p in out.rglob(".*") if p.name.startswith((".tracegen-", "."))]


def test_the_index_keeps_run_pages_from_earlier_reports(idle_run, batch_run, tmp_path):
    out = tmp_path / "site"
    build_site([batch_run], out)
    build_site([idle_run], out)
    runs = {a["data-run"] for t, a in Page((out / "index.html").read_text()).tags if "data-run" in a}
    assert runs == {"idle-run", "batch-run"}


def test_a_failing_report_leaves_the_previous_site(idle_run, tmp_path):
    out = tmp_path / "site"
    build_site([idle_run], out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    broken = tmp_path / "broken"
    shutil.copytree(idle_run, broken)
    (broken / "steps.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(TracegenError):
        build_site([idle_run, broken], out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_output_that_is_a_file_is_refused(idle_run, tmp_path):
    (tmp_path / "site").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        build_site([idle_run], tmp_path / "site")


def test_run_ids_that_are_not_folder_names_are_refused(tmp_path):
    run_dir = write_run(tmp_path, "sneaky", idle_variants(), idle_latencies())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["run_id"] = "../../outside"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TracegenError, match="run id"):
        build_site([run_dir], tmp_path / "site")
    assert not (tmp_path / "outside").exists()


def test_templates_are_found_from_a_checkout():
    assert (render.templates_dir() / "run.html").is_file()
    assert (render.templates_dir() / "findings" / "_generic.html").is_file()


@pytest.mark.parametrize("value, text", [(None, "–"), (float("nan"), "–"), (0.01234, "0.0123"), (1.23456, "1.235"),
                                         (12.3456, "12.35"), (123.456, "123.5"), (12345.6, "12,345.6")])
def test_milliseconds_are_formatted_to_about_four_digits(value, text):
    assert render.fmt_ms(value) == text


def test_per_step_medians_table_equals_the_parquet_files(site, idle_run):
    p = Page(page(site, "idle-run"))
    header = next(cells for a, cells in p.rows if cells and cells[0] == "variant" and "infer GPU" in cells)
    table = p.table("data-step-variant")
    steps = pl.read_parquet(idle_run / "steps.parquet").filter(~pl.col("warmup"))
    for vid, cells in table.items():
        for col, clock in (("infer host", "host_ns"), ("infer GPU", "gpu_ns"), ("sync host", "host_ns")):
            step = col.split()[0]
            truth = steps.filter((pl.col("variant_id") == vid) & (pl.col("step") == step))[clock].median() / 1e6
            assert close(cells[header.index(col)], truth), (vid, col)


def test_several_findings_of_one_kind_get_their_own_anchor(tmp_path):
    """One verdict per slowdown: the H200 example has several idle-verdict findings; each has a
    unique id on the page and the list at the top links to each."""
    run = Path(__file__).resolve().parents[2] / "examples" / "h200-small-idle-infer"
    build_site([run], tmp_path / "site")
    html = (tmp_path / "site/runs/h200-small-idle-infer/index.html").read_text()
    ids = re.findall(r'<div class="finding \w+" id="([\w-]+)"', html)
    assert len(ids) == len(set(ids)) and sum(i.startswith("finding-idle-verdict") for i in ids) >= 4
    assert {h[1:] for h in re.findall(r'href="(#finding-[\w-]+)"', html)} == set(ids)


def test_compiled_templates_are_cached_and_an_unwritable_cache_is_skipped(tmp_path, monkeypatch):
    fresh = render.environment.__wrapped__  # a new environment, with the cache of TRACEGEN_CACHE_DIR

    monkeypatch.setenv("TRACEGEN_CACHE_DIR", str(tmp_path / "cache"))
    fresh().get_template("index.html")
    assert list((tmp_path / "cache").rglob("*.cache"))  # compiled once, kept
    again = fresh()
    monkeypatch.setattr(again, "compile", lambda *a, **k: pytest.fail("compiled again"))
    assert again.get_template("index.html") is not None  # read back, not compiled
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("TRACEGEN_CACHE_DIR", str(tmp_path / "file"))
    assert fresh().bytecode_cache is None and fresh().get_template("index.html") is not None
    monkeypatch.setenv("TRACEGEN_CACHE_DIR", str(tmp_path / "gone"))
    env = fresh()
    shutil.rmtree(tmp_path / "gone")
    assert env.get_template("index.html") is not None  # writing the cache fails quietly
