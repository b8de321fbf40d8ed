"""``analyze``: findings as data, JSON, ordering, templates, the CLI on top, a real CPU run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.analysis.runs import (
    XAVIER_PER_IMAGE,
    baseline,
    batch_series,
    const,
    make_run,
    paced,
    ramp,
    step_at,
)
from tracegen.analysis import rules as R
from tracegen.analysis.findings import (
    SEVERITY_ORDER,
    Analysis,
    Finding,
    Mitigation,
    analyze,
    finding_ids,
    sort_findings,
    worst_severity,
)

W = 5
TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "findings"


def _t4_specs():
    gpu = ramp(55 + W, 155 + W, 4.4, 9.7)
    tel = {"clock": lambda i, busy: np.where(busy, 1590.0 * 4.4 / gpu(i), 300.0),
               "reasons": lambda i, busy: np.where(busy, 0, 1), "power": const(70.0), "temperature": const(60.0), "tel_ms": 3.0}
    return [baseline(infer_gpu_ms=4.4, iterations=150, clock=const(1590.0), reasons=const(0), tel_ms=3.0),
            paced("sleep", 20, infer_gpu_ms=gpu, iterations=300, **tel),
            paced("spin", 20, infer_gpu_ms=gpu, iterations=300, seed=1, **tel)]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """A run with both scenarios: Xavier-like batch scaling and T4-like idle tiers."""
    specs = batch_series({b: v * b for b, v in XAVIER_PER_IMAGE.items()}, iterations=12) + _t4_specs()
    return make_run(tmp_path_factory.mktemp("both"), specs, manifest={"gpu": {"name": "Tesla T4"}})


def test_analyze_both_scenarios_is_json_ready(both):
    a = analyze(both, budget_ms=50)
    assert isinstance(a, Analysis) and a.run_id == "synthetic"
    d = a.to_dict()
    text = json.dumps(d, allow_nan=False)  # plain JSON: no numpy types, no NaN
    back = json.loads(text)
    ids = {f["id"] for f in back["findings"]}
    assert {"batch-saturated-at-batch-1", "batch-budget", "idle-delay-tiers", "explained-gpu-clock"} <= ids
    assert back["worst_severity"] == "critical"
    assert back["scaling"]["saturation_class"] == "saturated at batch 1"
    assert set(a.attribution) == {7, 8}  # the paced variants
    assert a.attribution[7]["baseline_id"] == 6
    for vid in (6, 7, 8):  # tiers for idle variants, with what the report's table reads
        t = a.tiers[vid]
        assert "levels" in t and "shares" in t and "onset_iteration" in t
    assert all(isinstance(c, int) for cps in a.changepoints.values() for c in cps)
    assert a.stats.height == 9
    f = back["findings"][0]
    assert set(f) == {"id", "severity", "title", "summary", "evidence", "variants", "iterations", "mitigations",
                      "nsys_hint", "chart"}
    assert set(f["mitigations"][0]) == {"title", "action", "expected_effect", "cost", "measured", "evidence"}


def test_findings_are_sorted_by_severity_then_id(both):
    a = analyze(both, budget_ms=50)
    keys = [(SEVERITY_ORDER.index(f.severity), f.id) for f in a.findings]
    assert keys == sorted(keys)
    assert worst_severity(a.findings) == a.findings[0].severity
    assert all(f.id in finding_ids() for f in a.findings)


def test_every_finding_kind_has_a_template_that_renders(both, tmp_path):
    pytest.importorskip("jinja2")
    from tracegen.report.render import environment

    for fid in finding_ids():
        assert (TEMPLATES / f"{fid}.html").is_file(), fid
    env = environment()
    findings = list(analyze(both, budget_ms=50).findings)
    findings += [x for x in (R.rule_batch_budget(R.Facts(**{**vars_(both), "budget_ms": 1.0})),) if x]
    rendered = set()
    for f in findings:
        html = env.get_template("findings/_frame.html").render(finding=f, chart_html="<div class='chart'></div>")
        assert f.severity in html and "What to do" in html or not f.mitigations
        assert "<div class='chart'></div>" in html  # the chart goes in as given
        rendered.add(f.id)
    # a finding whose text holds markup is escaped (autoescape on)
    evil = Finding(id="enqueue-bound", severity="warning", title="<script>x</script>", summary="a < b",
                   evidence={"ratio": 1.0, "per_variant": [{"variant": "<b>", "ratio": 1.0}, {"variant": "c", "ratio": 2.0}]},
                   mitigations=(Mitigation("m", "echo '<x>'", "e", "c"),))
    html = env.get_template("findings/_frame.html").render(finding=evil, chart_html="")
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html
    assert len(rendered) >= 4


def vars_(run):
    from tracegen.analysis.findings import collect_facts

    f = collect_facts(run)
    return {k: getattr(f, k) for k in f.__dataclass_fields__}


def test_finding_validation_and_helpers():
    with pytest.raises(ValueError):
        Finding(id="x", severity="fatal", title="", summary="")
    with pytest.raises(ValueError):
        Finding(id="x", severity="info", title="", summary="", chart="pie")
    a = Finding(id="b", severity="info", title="", summary="")
    b = Finding(id="a", severity="critical", title="", summary="", evidence={"x": np.float64("nan"), "y": np.int64(3)},
                iterations=((1, 2),))
    assert sort_findings([a, b]) == (b, a)
    assert worst_severity([]) is None and worst_severity([a, b]) == "critical"
    assert b.to_dict()["evidence"] == {"x": None, "y": 3}
    assert b.to_dict()["iterations"] == [[1, 2]]


def test_quiet_run_has_no_findings(tmp_path):
    tel = {"clock": const(1980.0), "reasons": lambda i, busy: np.where(busy, 0, 1), "tel_ms": 3.0}
    specs = [baseline(iterations=100, **tel), paced("sleep", 20, iterations=100, **tel),
             paced("spin", 20, iterations=100, seed=2, **tel)]
    a = analyze(make_run(tmp_path, specs))
    assert a.findings == () and a.scaling is None and worst_severity(a.findings) is None


def test_cli_analyze_json_and_fail_on(both, tmp_path):
    from click.testing import CliRunner

    from tracegen.cli import cli

    res = CliRunner().invoke(cli, ["analyze", str(both.path), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["worst_severity"] == "critical"
    assert CliRunner().invoke(cli, ["analyze", str(both.path), "--fail-on", "critical"]).exit_code == 1
    quiet = make_run(tmp_path, [baseline(iterations=50)])
    assert CliRunner().invoke(cli, ["analyze", str(quiet.path), "--fail-on", "info"]).exit_code == 0


def test_real_cpu_run(small_run):
    """The default CPU path (onnxruntime): no GPU times, no GPU telemetry; analysis still works."""
    from tracegen.trace.reader import read_run

    a = analyze(read_run(small_run), budget_ms=100)
    json.dumps(a.to_dict(), allow_nan=False)
    gpu_only = {"enqueue-bound", "transfer-bound", "unstable-gpu-time", "explained-gpu-clock", "explained-gpu-idling",
                "power-thermal-cap"}
    assert not gpu_only & {f.id for f in a.findings}
    assert a.scaling is not None and a.scaling["batches"] == "1, 2, 4"
    for f in a.findings:
        for m in f.mitigations:
            assert "keepalive" not in m.action or "--pacing" not in m.action or m.title != "Isolate the mechanism with the variants this run lacks"


def test_warmup_and_host_findings_in_one_run(tmp_path):
    specs = [baseline(infer_gpu_ms=lambda i: np.where(i < W + 20, 1.5, 1.0), iterations=150),
             paced("sleep", 20, pre_ms=step_at(60 + W, 1.5, 0.3), iterations=200),
             paced("spin", 20, iterations=200, seed=4)]
    ids = [f.id for f in analyze(make_run(tmp_path, specs)).findings]
    assert ids.index("idle-delay-tiers") < ids.index("explained-host-wakeup")
    assert "warmup-too-short" in ids
