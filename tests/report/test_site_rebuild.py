"""A site that keeps up with a directory of runs: bad runs listed and skipped, unchanged pages
kept, deleted runs gone, neighbours and compare pages linked, scripts allowed by hash only."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tracegen.errors import TraceError
from tracegen.report.site import EXIT_SKIPPED, build_site

from .conftest import idle_latencies, idle_variants, write_run

ROOT = Path(__file__).resolve().parents[2]


def rows(out: Path) -> dict[str, str]:
    """run id -> the row's status class, from the index."""
    html = (out / "index.html").read_text(encoding="utf-8")
    return dict((b, a) for a, b in re.findall(r'<tr class="(\w+)" data-run="([^"]+)"', html))


@pytest.fixture()
def runs(tmp_path, idle_run):
    """A folder of runs: two good runs of one model (the second started later) and three bad ones."""
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(idle_run, root / "good-1")
    later = write_run(root, "good-2", idle_variants(), idle_latencies(), started_utc="2030-01-01T00:00:00.000Z")
    _set_id(root / "good-1", "good-1")
    corrupt = shutil.copytree(idle_run, root / "corrupt")
    _set_id(corrupt, "corrupt")
    (corrupt / "steps.parquet").write_bytes(b"PAR1 truncated")
    negative = shutil.copytree(idle_run, root / "negative")
    _set_id(negative, "negative")
    steps = pl.read_parquet(negative / "steps.parquet")
    steps.with_columns(pl.when(pl.col("iteration") == 40).then(-pl.col("host_ns")).otherwise(pl.col("host_ns"))
                       .alias("host_ns")).write_parquet(negative / "steps.parquet")
    orphan = root / "orphan"  # SIGTERM just after the run directory was created
    orphan.mkdir()
    (orphan / "manifest.json").write_text(json.dumps({"schema_version": 1, "run_id": "orphan", "status": "running"}))
    return root, later


def _set_id(run_dir: Path, rid: str) -> None:
    m = json.loads((run_dir / "manifest.json").read_text())
    m["run_id"] = rid
    (run_dir / "manifest.json").write_text(json.dumps(m))


def test_bad_runs_are_listed_with_their_problem_and_every_other_run_renders(runs, tmp_path):
    root, _ = runs
    out = tmp_path / "site"
    result = build_site(sorted(p for p in root.iterdir()), out)
    problems = {s.id: s.problem for s in result.skipped}
    assert set(problems) == {"corrupt", "negative", "orphan"}
    assert "unreadable or truncated" in problems["corrupt"]
    assert "negative" in problems["negative"]
    assert "no variants.parquet" in problems["orphan"]
    assert {rid for rid, _ in result.pages} == {"good-1", "good-2"}
    assert all(p.is_file() for _, p in result.pages)
    assert rows(out) == {"good-1": "complete", "good-2": "complete", "corrupt": "skipped", "negative": "skipped",
                         "orphan": "skipped"}
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "3 skipped" in html and "unreadable or truncated" in html
    assert not (out / "runs" / "corrupt").exists()


def test_cli_exit_status_says_runs_were_skipped(runs, tmp_path):
    root, _ = runs
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "tracegen", "report", str(root), "--out", str(tmp_path / "site")],
                          capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == EXIT_SKIPPED, proc.stderr
    assert proc.stderr.count("tracegen: skipped ") == 3 and "Traceback" not in proc.stderr
    assert (tmp_path / "site/runs/good-2/index.html").is_file()


def test_only_bad_runs_is_an_error_and_writes_nothing(runs, tmp_path):
    root, _ = runs
    with pytest.raises(TraceError, match="unreadable or truncated"):
        build_site([root / "corrupt"], tmp_path / "site")
    assert not (tmp_path / "site" / "index.html").exists()


def test_rebuild_keeps_unchanged_pages_adds_new_runs_and_drops_deleted_ones(runs, tmp_path, idle_run):
    root, _ = runs
    for bad in ("corrupt", "negative", "orphan"):
        shutil.rmtree(root / bad)
    out = tmp_path / "site"
    first = build_site(sorted(root.iterdir()), out)
    assert first.reused == [] and len(first.pages) == 2
    page = out / "runs/good-1/index.html"
    stamp = page.stat().st_mtime_ns, (out / "runs/good-1/stats.json").read_bytes()

    again = build_site(sorted(root.iterdir()), out)
    assert sorted(again.reused) == ["good-1", "good-2"]
    assert (page.stat().st_mtime_ns, (out / "runs/good-1/stats.json").read_bytes()) == stamp

    new = write_run(root, "good-3", idle_variants(), idle_latencies(), started_utc="2031-01-01T00:00:00.000Z")
    third = build_site(sorted(root.iterdir()), out)
    assert sorted(third.reused) == ["good-1", "good-2"] and "good-3" in dict(third.pages)
    assert (out / "runs/good-3/index.html").is_file()
    assert (out / "runs/good-1/stats.json").read_bytes() == stamp[1]

    shutil.rmtree(new)  # a deleted run leaves the index and the site
    shutil.rmtree(root / "good-1")
    build_site(sorted(root.iterdir()), out)
    assert set(rows(out)) == {"good-2"}
    assert not (out / "runs/good-3").exists() and not (out / "runs/good-1").exists()
    assert not list((out / "compare").iterdir())  # their compare pages went with them


def test_neighbours_and_compare_pages_link_runs_of_one_model(runs, tmp_path):
    root, _ = runs
    out = tmp_path / "site"
    result = build_site([root / "good-1", root / "good-2"], out)
    [cmp] = result.compares
    assert cmp == out / "compare/good-1--vs--good-2/index.html" and cmp.is_file()
    first = (out / "runs/good-1/index.html").read_text(encoding="utf-8")
    second = (out / "runs/good-2/index.html").read_text(encoding="utf-8")
    assert 'data-next="good-2"' in first and 'data-prev="good-1"' in second
    assert 'href="../../compare/good-1--vs--good-2/index.html"' in first
    assert 'href="../../compare/good-1--vs--good-2/index.html"' in second
    html = cmp.read_text(encoding="utf-8")
    assert 'href="../../runs/good-1/index.html"' in html
    assert html.count('data-verdict="same"') == 3  # the same synthetic run twice


def test_every_inline_script_is_allowed_by_its_hash_and_no_other(runs, tmp_path):
    root, _ = runs
    out = tmp_path / "site"
    result = build_site([root / "good-1", root / "good-2"], out)
    for page in [out / "index.html", *(p for _, p in result.pages), *result.compares]:
        html = page.read_text(encoding="utf-8")
        csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
        script_src = re.search(r"script-src ([^;]+);", csp).group(1).split()
        assert "'unsafe-inline'" not in script_src and csp.startswith("default-src 'none';")
        scripts = re.findall(r"<script(?![^>]*\btype=)[^>]*>(.*?)</script>", html, re.S)
        assert scripts
        hashes = {f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts}
        assert hashes == set(script_src) - {"'unsafe-eval'"}, page
