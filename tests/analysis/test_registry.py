"""The registry of finding kinds: every kind has its template fragment and no fragment is
orphaned; a rule cannot return a finding of another kind or an undeclared severity."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracegen.analysis import registry
from tracegen.analysis.findings import Finding, finding_ids, kinds

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_every_kind_has_a_fragment_and_every_fragment_a_kind():
    ids = set(finding_ids())
    assert len(ids) >= 12
    for kind in kinds():
        assert (TEMPLATES / kind.fragment).is_file(), kind.id
        assert kind.doc.startswith(f"``{kind.id}``"), kind.id  # the rule's docstring says when it fires
        assert kind.module.startswith("tracegen.analysis.rules.")
    fragments = {p.stem for p in (TEMPLATES / "findings").glob("*.html") if not p.name.startswith("_")}
    assert fragments == ids


def test_fragments_hold_only_their_part():
    """The frame draws badge, mitigations, iterations and the Nsight hint; a fragment does not."""
    for kind in kinds():
        text = (TEMPLATES / kind.fragment).read_text(encoding="utf-8")
        for shared in ("badge", "mitigation", "Nsight", "finding.iterations", "<h3"):
            assert shared not in text, (kind.id, shared)
        assert len(text.splitlines()) <= 20, kind.id


def test_a_kind_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        registry.finding_kind("enqueue-bound", severities=("warning",))(lambda f: None)
    with pytest.raises(ValueError, match="severities"):
        registry.finding_kind("made-up", severities=("fatal",))


def test_a_rule_returning_another_kind_is_an_error(monkeypatch):
    monkeypatch.setattr(registry, "_KINDS", {})
    registry.finding_kind("made-up", severities=("info",))(
        lambda f: Finding(id="other", severity="info", title="t", summary="s"))
    with pytest.raises(ValueError, match="made-up"):
        registry.run_rules(object())
    monkeypatch.setattr(registry, "_KINDS", {})
    registry.finding_kind("made-up", severities=("info",))(
        lambda f: [Finding(id="made-up", severity="critical", title="t", summary="s")])
    with pytest.raises(ValueError, match="declares"):
        registry.run_rules(object())
