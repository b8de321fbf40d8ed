"""The registry of finding kinds: one decorated rule function per kind.

    @finding_kind("enqueue-bound", severities=("warning",))
    def rule_enqueue_bound(f: Facts) -> Finding | None:
        ...

registers the kind ``enqueue-bound``: its rule (a pure function of the run's ``Facts``
returning a ``Finding``, a list of them, or None), the severities it may give, and its
template fragment ``templates/findings/enqueue-bound.html`` (its paragraph and evidence rows;
``templates/findings/_frame.html`` draws the rest). Rules live in the theme modules of
``tracegen.analysis.rules``, which are all imported when the package is; nothing else lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracegen.analysis.model import Finding
from tracegen.units import SEVERITY_ORDER

Rule = Callable[[Any], "Finding | list[Finding] | tuple[Finding, ...] | None"]


@dataclass(frozen=True)
class FindingKind:
    id: str
    rule: Rule
    severities: tuple[str, ...]  # the severities the rule may give (its docstring says when)
    module: str  # where the rule lives

    @property
    def fragment(self) -> str:
        """The kind's template fragment, relative to ``templates/``."""
        return f"findings/{self.id}.html"

    @property
    def doc(self) -> str:
        return (self.rule.__doc__ or "").strip()


_KINDS: dict[str, FindingKind] = {}


def finding_kind(kind_id: str, *, severities: tuple[str, ...]) -> Callable[[Rule], Rule]:
    """Register the decorated function as the rule of finding kind ``kind_id``."""
    bad = [s for s in severities if s not in SEVERITY_ORDER]
    if not severities or bad:
        raise ValueError(f"finding kind {kind_id!r}: severities {severities!r} must be among {SEVERITY_ORDER}")

    def register(rule: Rule) -> Rule:
        old = _KINDS.get(kind_id)
        if old is not None and (old.module, old.rule.__qualname__) != (rule.__module__, rule.__qualname__):
            raise ValueError(f"finding kind {kind_id!r} is registered twice ({old.module} and {rule.__module__})")
        _KINDS[kind_id] = FindingKind(kind_id, rule, tuple(severities), rule.__module__)
        rule.finding_id = kind_id  # type: ignore[attr-defined]
        return rule

    return register


def kinds() -> tuple[FindingKind, ...]:
    """Every registered kind, in id order (import ``tracegen.analysis.rules`` first)."""
    return tuple(_KINDS[k] for k in sorted(_KINDS))


def finding_ids() -> tuple[str, ...]:
    return tuple(k.id for k in kinds())


def run_rules(facts: Any) -> list[Finding]:
    """The findings of every registered rule; a rule that returns a finding of another kind or
    a severity it did not declare is a programming error and raises."""
    out: list[Finding] = []
    for kind in kinds():
        result = kind.rule(facts)
        if result is None:
            continue
        for finding in result if isinstance(result, (list, tuple)) else [result]:
            if finding.id != kind.id or finding.severity not in kind.severities:
                raise ValueError(f"rule of {kind.id!r} ({kind.module}) returned a {finding.severity!r} "
                                 f"finding {finding.id!r}; it declares {kind.severities!r}")
            out.append(finding)
    return out
