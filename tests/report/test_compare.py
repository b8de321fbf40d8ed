"""`tracegen compare`: what a reader expects to see change between two real H100 runs, the
statistics on runs with a known shift, and the exit status for CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.analysis.runs import baseline, make_run, paced
from tracegen.report import compare as C

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GAP_50 = {f"50 ms {p}, {launch}" for p in ("sleep", "spin", "keepalive") for launch in ("eager", "graph")}


@pytest.fixture(scope="module")
def sides():
    return {name: C.side_from_run(EXAMPLES / name) for name in ("h100-small-idle", "h100-large-idle", "h100-small-nsys")}


def tracegen(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tracegen", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300, stdin=subprocess.DEVNULL)


def test_a_larger_model_is_slower_in_every_matched_variant(sides):
    """builtin:small -> builtin:large on the same H100: every variant both runs have is slower,
    significantly, by well over half; the 50 ms gaps were only measured for small; the tiers and
    the short warm-up of the small run are gone, the launch-bound findings stay."""
    cmp = C.compare(sides["h100-small-idle"], sides["h100-large-idle"])
    assert len(cmp["variants"]) == 8 and set(cmp["only_a"]) == GAP_50 and cmp["only_b"] == []
    for v in cmp["variants"]:
        assert v["verdict"] == "slower", v["label"]
        assert v["p_value"] < 1e-10 and v["prob_slower"] > 0.9
        assert v["metrics"]["p50_ms"]["change_pct"] > 50
        lo, hi = v["ci_ms"]
        assert 0 < lo <= v["median_diff_ms"] <= hi
    f = cmp["findings"]
    assert "warmup-too-short" in {x["id"] for x in f["disappeared"]}
    assert {"enqueue-bound", "unstable-gpu-time"} <= {x["id"] for x in f["unchanged"]}
    assert f["appeared"] == [] and f["only_b"] == []
    assert f["only_a"] and all("50 ms" in x["title"] for x in f["only_a"])  # about variants large never ran
    assert len(C.regressions(cmp, 50)) == 8 and C.regressions(cmp, 200) == []
    _partition(cmp, sides["h100-small-idle"], sides["h100-large-idle"])


def _partition(cmp, a, b):
    """Every finding of A is in exactly one of disappeared/changed/unchanged/only_a, every one
    of B in exactly one of appeared/changed/unchanged/only_b."""
    f = cmp["findings"]
    in_a = len(f["disappeared"]) + len(f["changed"]) + len(f["unchanged"]) + len(f["only_a"])
    in_b = len(f["appeared"]) + len(f["changed"]) + len(f["unchanged"]) + len(f["only_b"])
    assert (in_a, in_b) == (len(a.findings), len(b.findings))


def test_findings_between_two_small_runs(sides):
    """h100-small-nsys (recorded under Nsight Systems, earlier) -> h100-small-idle: the critical
    idle-delay tiers of the nsys run are gone, and so is its host wake-up explanation."""
    a, b = sides["h100-small-nsys"], sides["h100-small-idle"]
    cmp = C.compare(a, b)
    gone = {x["id"]: x["severity"] for x in cmp["findings"]["disappeared"]}
    assert gone.get("idle-delay-tiers") == "critical" and "explained-host-wakeup" in gone
    _partition(cmp, a, b)
    tiers = {v["label"]: v["tiers"] for v in cmp["variants"]}
    assert len(tiers["no gap, eager"]["a"]["levels_ms"]) == 2 and tiers["no gap, eager"]["b"]["onset_iteration"] == 26


def _side(name, findings, variants):
    rows = [{"variant_id": i, "scenario": "idle", "batch": 1, "idle_ms": g, "pacing": p, "launch": "graph",
             "sync_mode": "auto", "pipeline": "full", "n": 100} for i, (g, p) in enumerate(variants)]
    return C.Side(name, {"id": name}, rows, findings=[{"id": i, "severity": s, "title": f"{i} {s}", "variants": [v]}
                                                      for i, s, v in findings])


def test_findings_are_matched_by_kind_and_variant():
    a = _side("a", [("tiers", "critical", 1), ("verdict", "warning", 1), ("verdict", "info", 3), ("old", "info", 0)],
              [(0, "none"), (20, "sleep"), (50, "sleep"), (80, "sleep")])
    b = _side("b", [("tiers", "warning", 2), ("verdict", "warning", 1), ("new", "warning", 0)],
              [(0, "none"), (20, "sleep"), (50, "sleep")])
    f = C.compare(a, b)["findings"]
    assert [(x["id"], x["severity_a"], x["severity_b"], x["worse"]) for x in f["changed"]] == [("tiers", "critical", "warning", False)]
    assert [x["id"] for x in f["unchanged"]] == ["verdict"]
    assert [x["title"] for x in f["only_a"]] == ["verdict info"]  # about the 80 ms variant b never ran
    assert [x["id"] for x in f["disappeared"]] == ["old"] and [x["id"] for x in f["appeared"]] == ["new"]


def test_a_run_against_itself_changes_nothing(sides):
    cmp = C.compare(sides["h100-small-idle"], sides["h100-small-idle"])
    assert {v["verdict"] for v in cmp["variants"]} == {"same"}
    assert all(v["p_value"] > 0.99 and v["ci_ms"][0] <= 0 <= v["ci_ms"][1] for v in cmp["variants"])
    assert cmp["findings"]["appeared"] == cmp["findings"]["disappeared"] == cmp["findings"]["changed"] == []


def test_a_known_shift_is_found_and_a_tiny_one_is_not(tmp_path):
    """GPU time 1.0 ms -> 1.08 ms (latency +5 %): slower; 1.0 -> 1.002 ms: not a change."""
    def run(name, infer, seed):
        return make_run(tmp_path, [baseline(iterations=300, infer_gpu_ms=infer, seed=seed),
                                   paced("sleep", 5, iterations=300, seed=seed)], run_id=name)

    from tracegen.report.page import RunPage

    a, b, c = (C.side_from_page_object(RunPage(r, None)) for r in (run("a", 1.0, 1), run("b", 1.08, 2), run("c", 1.002, 3)))
    ab = {v["label"]: v for v in C.compare(a, b)["variants"]}
    assert ab["no gap, graph"]["verdict"] == "slower"
    assert 3 < ab["no gap, graph"]["metrics"]["p50_ms"]["change_pct"] < 8
    assert ab["5 ms sleep, graph"]["verdict"] == "same"  # same settings, other seed
    ac = {v["label"]: v for v in C.compare(a, c)["variants"]}
    assert ac["no gap, graph"]["verdict"] == "same"


def test_the_median_interval_covers_the_true_shift_for_large_samples():
    rng = np.random.default_rng(0)
    a = rng.lognormal(np.log(2.0), 0.1, 200_000)
    b = rng.lognormal(np.log(2.1), 0.1, 200_000)
    lo, hi, method = C.median_diff_interval(a, b)
    assert method == "order statistics" and lo < 0.1 < hi and hi - lo < 0.01
    lo, hi, method = C.median_diff_interval(a[:2000], b[:2000])
    assert method == "bootstrap" and lo < 0.1 < hi


def test_cli_exit_status_json_and_page(tmp_path):
    small, large = EXAMPLES / "h100-small-idle", EXAMPLES / "h100-large-idle"
    slower = tracegen("compare", small, large, "--fail-on-regression", "10", "--json", "--out", tmp_path / "cmp")
    assert slower.returncode == 1, slower.stderr
    data = json.loads(slower.stdout)
    assert len(data["regressions"]) == 8 and data["a"]["id"] == "h100-small-idle"
    html = (tmp_path / "cmp/index.html").read_text(encoding="utf-8")
    assert html.count('data-verdict="slower"') == 8 and 'data-finding="disappeared"' in html
    assert json.loads((tmp_path / "cmp/compare.json").read_text())["auto"] is False
    faster = tracegen("compare", large, small, "--fail-on-regression", "10")
    assert faster.returncode == 0, faster.stderr
    assert "faster" in faster.stdout and "no regression beyond the threshold" in faster.stdout
    lenient = tracegen("compare", small, large, "--fail-on-regression", "150")
    assert lenient.returncode == 0, lenient.stderr


def test_cli_bad_input_is_one_line(tmp_path):
    proc = tracegen("compare", tmp_path / "nope", EXAMPLES / "h100-small-idle")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = tracegen("compare", EXAMPLES / "h100-small-idle", EXAMPLES / "h100-large-idle", "--fail-on-regression", "-3")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
