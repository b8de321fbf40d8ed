"""Rules on imported Nsight Systems data (``tracegen nsys-import``): what the GPU did in slow
iterations against fast ones (``tracegen.analysis.kernels``)."""

from __future__ import annotations

from tracegen.analysis.facts import Facts, fmt_ranges, name, ranges
from tracegen.analysis.kernels import Comparison, comparisons
from tracegen.analysis.mitigations import advise, busy_wait, keepalive, lock_clocks
from tracegen.analysis.facts import max_sm_clock
from tracegen.analysis.model import Finding
from tracegen.analysis.nsys_nav import where_to_look
from tracegen.analysis.registry import finding_kind
from tracegen.units import ms_text

WARN_SHARE = 0.10  # warning when the slow iterations are >= 10 % slower than the fast ones

_VERDICT = {
    "clocks": "every kernel got slower by about the same factor: the GPU ran at a lower clock",
    "few-kernels": "a few kernels got much slower while the rest did not: memory (HBM clock, caches) or "
                   "contention from other work on the GPU",
    "mixed": "the kernels got slower, unevenly",
    "host": "the kernels took the same time; the GPU waited for the host (launch path after the gap)",
    "outside-gpu": "neither kernel time nor launch bubbles grew: the extra time is on the host, outside the GPU work",
}


def _span(its: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    import numpy as np

    arr = np.asarray(its)
    return ranges(arr, np.ones(arr.size, dtype=bool)) if arr.size else ()


def _mitigations(f: Facts, c: Comparison):
    if c.verdict == "clocks":
        return [lock_clocks(max_sm_clock(f)), keepalive()]
    if c.verdict == "host":
        launch = f.variants.filter(f.variants["variant_id"] == c.slow_variant)["launch"].to_list()
        return [busy_wait()] + ([advise("cuda_graph")] if launch != ["graph"] else [])
    if c.verdict == "few-kernels":
        return [advise("isolate_gpu")]
    return [advise("measure", flags="--pacing sleep,spin,keepalive --launch eager,graph --nsys")]


@finding_kind("kernel-time", severities=("info", "warning"))
def rule_kernel_time(f: Facts) -> Finding | None:
    """``kernel-time``: with an imported Nsight Systems report, the slow iterations (slowest tier
    of a variant, or a paced variant against its continuous baseline) compared with fast ones:
    kernel time against launch bubbles and, per kernel, which got slower
    (``tracegen.analysis.kernels`` documents the verdicts and thresholds). Warning when the slow
    iterations are >= WARN_SHARE (10 %) slower, else info."""
    if f.nsys is None:
        return None
    found = [c for c in comparisons(f, f.nsys) if c.verdict != "none"]
    if not found:
        return None
    found.sort(key=lambda c: -c.extra_ms)
    c = found[0]
    n = c.numbers
    fast_ms = n["latency_fast_ms"] or 0
    sev = "warning" if fast_ms and c.extra_ms >= WARN_SHARE * fast_ms else "info"
    slow_r, fast_r = _span(c.slow_iterations), _span(c.fast_iterations)
    what = ("its slowest tier against its fastest" if c.kind == "tiers"
            else f"after each gap against {name(f, c.fast_variant)} back to back")
    d_compute = (n["compute_slow_ms"] or 0) - (n["compute_fast_ms"] or 0)
    d_bubble = (n["bubble_slow_ms"] or 0) - (n["bubble_fast_ms"] or 0) if n["bubble_slow_ms"] is not None else None
    summary = (f"In {name(f, c.slow_variant)}, {what}: latency {ms_text(n['latency_slow_ms'])} vs "
               f"{ms_text(n['latency_fast_ms'])} (+{ms_text(c.extra_ms)}); kernel time {ms_text(n['compute_slow_ms'])} vs "
               f"{ms_text(n['compute_fast_ms'])} ({d_compute * 1e3:+.1f} us)"
               + (f", GPU idle inside the infer step {d_bubble * 1e3:+.1f} us" if d_bubble is not None else "")
               + f". So {_VERDICT[c.verdict]}.")
    top = [{"kernel": r["name"], "occurrence": r["occurrence"], "fast_us": r["fast_us"], "slow_us": r["slow_us"],
            "ratio": r["ratio"]} for r in c.kernels.head(15).iter_rows(named=True)] if c.per_kernel else []
    pointer = where_to_look(f.manifest, name(f, c.slow_variant), slow_r[:2], ("infer",), variant_id=c.slow_variant,
                            nsys_steps=f.nsys.steps, compare=(name(f, c.fast_variant), c.fast_variant, fast_r[:1]))
    evidence = {
        "verdict": c.verdict, "comparison": c.kind, "slow_variant_id": c.slow_variant,
        "fast_variant_id": c.fast_variant, "slow_example": c.examples[0], "fast_example": c.examples[1], "latency_slow_ms": n["latency_slow_ms"],
        "latency_fast_ms": n["latency_fast_ms"], "kernel_slow_ms": n["compute_slow_ms"],
        "kernel_fast_ms": n["compute_fast_ms"], "bubble_slow_ms": n["bubble_slow_ms"],
        "bubble_fast_ms": n["bubble_fast_ms"], "launch_slow_ms": n["launch_slow_ms"],
        "launch_fast_ms": n["launch_fast_ms"], "slow_iterations": fmt_ranges(slow_r),
        "fast_iterations": fmt_ranges(fast_r), "kernels_slowed": top, "notes": c.notes,
        "nsys_commands": list(pointer.commands),
        "per_variant": [{"variant": name(f, x.slow_variant), "against": name(f, x.fast_variant), "verdict": x.verdict,
                         "extra_ms": x.extra_ms} for x in found],
    }
    title = {"clocks": "Slow iterations: every kernel slower (GPU clock)",
             "few-kernels": "Slow iterations: a few kernels much slower (memory or contention)",
             "mixed": "Slow iterations: kernels slower, unevenly",
             "host": "Slow iterations: same kernel time, the GPU waits for the host",
             "outside-gpu": "Slow iterations: not in the GPU work"}[c.verdict]
    return Finding(id="kernel-time", severity=sev, title=title, summary=summary, evidence=evidence,
                   variants=(c.slow_variant, c.fast_variant), iterations=slow_r, mitigations=tuple(_mitigations(f, c)),
                   nsys_hint=pointer.text)
