"""Units, number formatting and JSON conversion shared by the analysis and the report.

Two kinds of formatting live here: ``ms_text`` / ``pct_text`` write numbers into sentences (a
finding's title and summary, "0.593 ms", "60 %"), and the ``fmt_*`` functions are the report's
template filters for table cells ("0.593", "1,234.6", "60 %").
"""

from __future__ import annotations

import math
from typing import Any

NS_PER_MS = 1_000_000
SEVERITY_ORDER = ("critical", "warning", "info")  # most severe first


def as_float(x: Any) -> float | None:
    """A finite float, or None for None, booleans, NaN, infinities and anything not numeric."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def ns_to_ms(x: Any) -> float | None:
    v = as_float(x)
    return None if v is None else v / NS_PER_MS


def jsonable(x: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays to Python, NaN/inf to None, tuples and sets to
    lists, dict keys to strings, polars frames to lists of rows, dataclasses to dicts, anything
    else to its string."""
    import numpy as np  # lazy: the CLI imports this module before it needs numpy

    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [jsonable(v) for v in x.tolist()]
    if hasattr(x, "to_dicts"):  # polars DataFrame
        return [jsonable(r) for r in x.to_dicts()]
    if hasattr(x, "to_list"):  # polars Series
        return [jsonable(v) for v in x.to_list()]
    if hasattr(x, "__dataclass_fields__"):
        return {k: jsonable(getattr(x, k)) for k in x.__dataclass_fields__}
    return str(x)


# -- numbers in sentences ------------------------------------------------------------------------
def ms_text(x: float | None, digits: int = 3) -> str:
    """"0.593 ms" (``digits`` significant digits); "?" when unknown."""
    return "?" if x is None else f"{x:.{digits}g} ms"


def pct_text(x: float | None) -> str:
    """A share in 0..1 as a whole percentage ("60 %"; never "-0 %"); "?" when unknown."""
    return "?" if x is None else f"{round(100 * x) + 0:.0f} %"


# -- table cells (the report's template filters) ----------------------------------------------------
def _missing(value: Any) -> str:
    return "–" if value is None or isinstance(value, float) else str(value)


def fmt_ms(value: Any) -> str:
    """Milliseconds with about four significant digits: 0.0123, 1.234, 12.35, 123.5, 1,234.6."""
    v = as_float(value)
    if v is None:
        return _missing(value)
    a = abs(v)
    if a >= 1000:
        return f"{v:,.1f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    if a >= 0.1 or a == 0:
        return f"{v:.3f}"
    return f"{v:.4f}"


def fmt_num(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    v = as_float(value)
    if v is None:
        return _missing(value)
    return f"{v:,.{digits}f}"


def fmt_rate(value: Any) -> str:
    """Rates such as images/s: whole numbers from 100 up, else three significant digits."""
    v = as_float(value)
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def fmt_pct(value: Any, digits: int = 0) -> str:
    """A share in 0..1 as a percentage."""
    v = as_float(value)
    return "–" if v is None else f"{100 * v:.{digits}f} %"


def fmt_si(value: Any, unit: str = "") -> str:
    """Large counts with an SI prefix: 11.68 M, 24.91 G."""
    v = as_float(value)
    if v is None:
        return "–"
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f} {prefix}{unit}"
    return f"{v:g} {unit}".rstrip()
