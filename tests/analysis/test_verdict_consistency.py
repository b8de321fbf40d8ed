"""On every example run: one verdict per slowdown, and no finding contradicts a verdict (the
mechanism findings state the same shares; "no variant isolates the mechanism" only where the run
has no sibling variant for any contrast)."""

from pathlib import Path

import pytest

from tracegen.analysis import explain as X
from tracegen.analysis.facts import collect_facts, paced_ids
from tracegen.analysis.findings import analyze
from tracegen.trace.reader import read_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUNS = sorted(p.name for p in EXAMPLES.iterdir() if (p / "manifest.json").is_file())


@pytest.fixture(scope="module", params=RUNS)
def example(request):
    run = read_run(EXAMPLES / request.param)
    return run, analyze(run), collect_facts(run)


def test_one_verdict_per_slowdown(example):
    _, a, facts = example
    heads = [f.variants[0] for f in a.findings if f.id == "idle-verdict"]
    assert sorted(heads) == sorted(v for v in paced_ids(facts) if X.is_slow(facts, v))


def test_mechanism_findings_agree_with_the_verdicts(example):
    run, a, _ = example
    names = dict(zip(run.variants["name"].to_list(), run.variants["variant_id"].to_list()))
    shares = {f.variants[0]: f.evidence["shares"] for f in a.findings if f.id == "idle-verdict"}
    for f in a.findings:
        key = {"explained-host-wakeup": ("host wake-up", "removed_by_spin"),
               "explained-gpu-idling": ("GPU idling", "removed_by_keepalive"),
               "explained-gpu-clock": ("GPU clock", "explained_share")}.get(f.id)
        if key is None:
            continue
        for row in f.evidence["per_variant"]:
            stated = shares[names[row["variant"]]].get(key[0])
            if row[key[1]] is not None and stated is not None:
                assert stated == pytest.approx(min(1.0, max(0.0, row[key[1]])), abs=1e-9), (f.id, row)


def test_no_variant_isolates_only_when_none_ran(example):
    run, a, _ = example
    pacings = set(run.variants["pacing"].to_list())
    siblings = len(pacings - {"none"}) > 1 or run.variants["launch"].n_unique() > 1 or run.variants["sync_mode"].n_unique() > 1
    said = any("no variant that isolates the mechanism" in f.summary for f in a.findings)
    assert not (said and siblings)
