"""The rules, grouped by theme: ``batch`` (batch scaling), ``launch`` (enqueue, transfers, GPU-time
stability), ``idle`` (tiers, gap penalty, host wake-up, GPU idling), ``power`` (clock drops,
power and thermal caps), ``warmup``.

Importing this package imports every module in it, and each registers its rules with
``tracegen.analysis.registry`` (``@finding_kind``); a new theme module needs no line here.
Every rule is also reachable as ``tracegen.analysis.rules.<function name>``.
"""

from __future__ import annotations

import importlib
import pkgutil

from tracegen.analysis.facts import Facts
from tracegen.analysis.registry import kinds

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

globals().update({k.rule.__name__: k.rule for k in kinds()})

__all__ = ["Facts", *sorted(k.rule.__name__ for k in kinds())]
