"""One verdict per slowdown: for every paced variant slower than its continuous baseline, what
each controlled contrast of the run says about its extra time, as a share of it.

The extra time ``E`` is the trimmed mean latency of the variant minus that of its baseline
(``attribution``). Each contrast compares the variant with its sibling that differs in one
parameter only, each measured against its own baseline:

* host wake-up (sleep vs spin): share = 1 - extra(spin) / E. A spin variant has no wake-up.
* GPU idling (sleep vs keep-alive): the GPU's own compute growth (``gpu_extra_ms`` of the step
  decomposition) that keep-alive removes, over E. Keep-alive also wakes the host every few ms,
  so its latency gain alone does not say the GPU idled; the GPU time does.
* launch path (eager vs graph): for an eager variant, share = 1 - extra(graph) / E; for a graph
  variant the eager sibling is context (how much the graph already saves), no share.
* host sync (sync modes): the best other sync mode at the same gap, share = 1 - extra / E.
* GPU clock: the GPU time the SM clock drop implies (``explain.explain_clock``), over E; flat
  clocks and the clock-event reasons are stated as a negative result.

Shares are clamped to 0..1; they can overlap (a keep-alive loop also keeps the host awake), so
they are not forced to add up. Without a sibling, a mechanism is inferred from the step
breakdown (``measured: False``) or left out. "No variant isolates the mechanism" is said only
when the run has no sibling for any contrast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracegen.analysis import explain as X
from tracegen.analysis import mitigations as M
from tracegen.analysis.attribution import component_label, contrast, find_baseline, find_sibling
from tracegen.analysis.clocks import REASON_BITS, REASON_LABELS
from tracegen.analysis.facts import Facts, gap_label, max_sm_clock, name, paced_ids, row, stat
from tracegen.analysis.model import Mitigation
from tracegen.units import ms_text, pct_text

QUIET_REASONS = ("applications_clocks", "gpu_idle")  # set at rest or by configuration: no slowdown
_DOING = {"sleep": "sleeping", "keepalive": "the keep-alive loop", "spin": "spinning"}
REASON_SHARE = 0.2  # a clock-event reason counts when active in >= 20 % of the slow iterations' busy samples


@dataclass(frozen=True)
class Line:
    """What one contrast says about the extra time."""

    mechanism: str  # host wake-up | GPU idling | launch path | host sync | GPU clock
    contrast: str  # e.g. "sleep vs spin"
    share: float | None  # share of the extra time it explains (0..1); None: context, no share
    measured: bool  # from a sibling variant (or telemetry) of this run; False: inferred from the steps
    text: str
    compared: int | None = None  # the sibling variant
    evidence: str | None = None  # what the sibling measured, for the mitigation it supports

    def to_row(self, f: Facts) -> dict[str, Any]:
        return {"mechanism": self.mechanism, "contrast": self.contrast,
                "compared_with": name(f, self.compared) if self.compared is not None else "–",
                "share_of_extra": self.share, "measured": self.measured, "finding": self.text}


@dataclass(frozen=True)
class Verdict:
    variant_id: int
    baseline_id: int
    p50_ms: float
    baseline_p50_ms: float
    extra_ms: float | None  # trimmed mean over the baseline's
    lines: tuple[Line, ...]
    case: dict[str, Any]  # explain.case_of

    @property
    def ratio(self) -> float:
        return self.p50_ms / self.baseline_p50_ms

    @property
    def shares(self) -> dict[str, float]:
        return {ln.mechanism: ln.share for ln in self.lines if ln.share is not None}

    @property
    def isolated(self) -> bool:
        """Some sibling variant of this run isolates a mechanism."""
        return any(ln.compared is not None for ln in self.lines)

    @property
    def unexplained(self) -> float | None:
        if self.extra_ms is None or self.extra_ms <= 0:
            return None
        return max(0.0, 1.0 - sum(self.shares.values()))

    def line(self, mechanism: str) -> Line | None:
        return next((ln for ln in self.lines if ln.mechanism == mechanism), None)


def _clamp(x: float | None) -> float | None:
    return None if x is None else min(1.0, max(0.0, x))


def _sibling(f: Facts, vid: int, **change: Any) -> int | None:
    sib = find_sibling(f.variants, vid, **change)
    return sib if sib is not None and (stat(f, sib, "n") or 0) > 0 else None


def _extra_vs(f: Facts, vid: int, alt: int) -> dict[str, Any]:
    """``attribution.contrast`` of ``vid`` against ``alt``, each over its own continuous baseline."""
    def base(v: int) -> int | None:
        b, kind = find_baseline(f.variants, f.stats, v)
        return b if kind == "continuous" else None

    return contrast(f.iters, f.stats, vid, alt, base(vid), base(alt))


# -- the contrasts -----------------------------------------------------------------------------------
def _host(f: Facts, r: dict, E: float | None, case: dict) -> Line | None:
    vid = r["variant_id"]
    if r["pacing"] == "spin":
        return Line("host wake-up", "spin", 0.0, True, "the host busy-waits in this variant, so no CPU wake-up is in it.")
    cpu = (case.get("clock") or {}).get("cpu_freq_drop")
    freq = f" The CPU frequency was {pct_text(cpu)} lower in the slow iterations." if cpu is not None and cpu >= 0.05 else ""
    spin = _sibling(f, vid, pacing="spin")
    if spin is not None:
        c = _extra_vs(f, vid, spin)
        r0 = c["removed_fraction"]
        if r0 is None or E is None or E <= 0:
            return None
        share = _clamp(r0)
        if share >= X.RULED_OUT:
            text = (f"busy-waiting instead of {_DOING[r['pacing']]} removes {pct_text(share)} of it "
                    f"({ms_text(c['alt_p50_ms'])} vs {ms_text(c['ref_p50_ms'])} p50): the host wakes up late")
        elif r0 < 0.05:
            text = f"the host waking up is not the cause: busy-waiting (CPU wake-up) does not remove it ({pct_text(r0)})"
        else:
            text = f"the host waking up is a small part: busy-waiting (CPU wake-up) removes only {pct_text(r0)} of it"
        ev = (f"spin {ms_text(c['alt_p50_ms'])} vs {r['pacing']} {ms_text(c['ref_p50_ms'])} p50; removes "
              f"{pct_text(share)} of the gap's extra time")
        return Line("host wake-up", f"{r['pacing']} vs spin", share, True, text + "." + freq, spin, ev)
    comps = case["decomposition"].get("components_ms", {})
    host = sum(max(0.0, comps.get(k, 0.0)) for k in ("preprocess", "postprocess", "sync_wait"))
    if E and E > 0 and host >= X.HOST_SHARE * E:
        return Line("host wake-up", "step breakdown", _clamp(host / E), False,
                    f"no busy-wait variant; {pct_text(_clamp(host / E))} of the extra time sits in host steps "
                    f"(pre/postprocess and the sync wait).{freq}")
    return None


def _gpu_idle(f: Facts, r: dict, E: float | None, case: dict) -> Line | None:
    vid = r["variant_id"]
    if r["pacing"] == "keepalive":
        return Line("GPU idling", "keep-alive", 0.0, True,
                    "the GPU is kept busy during the gap in this variant, so it cannot idle down.")
    g_me = case["decomposition"].get("gpu_extra_ms") or 0.0
    k = _sibling(f, vid, pacing="keepalive")
    if k is not None:
        dec_k = (f.attribution.get(k, {}).get("vs_baseline") or {})
        if E is None or E <= 0 or not dec_k:
            return None
        g_k = dec_k.get("gpu_extra_ms") or 0.0
        share = _clamp((g_me - g_k) / E)
        if share >= X.RULED_OUT:
            text = (f"keeping the GPU busy during the gap removes {pct_text(share)} of it on the GPU (its compute "
                    f"grows by {ms_text(g_me)} after a {r['pacing']} gap, {ms_text(g_k)} with keep-alive): the GPU idles "
                    f"down between frames.")
        else:
            text = (f"keep-alive does not help: the GPU is not idling down (its compute after the gap grows by "
                    f"{ms_text(g_me)} without keep-alive and {ms_text(g_k)} with it).")
            c = _extra_vs(f, vid, k)
            lat = c["removed_fraction"]
            if lat is not None and lat >= X.RULED_OUT:
                text += (f" Keep-alive does lower the latency ({pct_text(lat)} of the extra time), but in host time: "
                         "its loop wakes the thread every few ms.")
        ev = (f"GPU compute after the gap +{ms_text(g_k)} with keep-alive vs +{ms_text(g_me)} without; removes "
              f"{pct_text(share)} of the gap's extra time on the GPU")
        return Line("GPU idling", f"{r['pacing']} vs keep-alive", share, True, text, k, ev)
    clock = case.get("clock") or {}
    steady = clock.get("sm_clock_drop") is not None and abs(clock["sm_clock_drop"]) < X.CLOCK_DROP
    if E and E > 0 and g_me >= X.GPU_SHARE * E and steady:
        return Line("GPU idling", "step breakdown", _clamp(g_me / E), False,
                    f"no keep-alive variant; {pct_text(_clamp(g_me / E))} of the extra time is GPU compute at an unchanged "
                    f"SM clock.")
    return None


def _launch(f: Facts, r: dict, E: float | None) -> Line | None:
    vid = r["variant_id"]
    if r["launch"] == "eager":
        g = _sibling(f, vid, launch="graph")
        if g is None or E is None or E <= 0:
            return None
        c = _extra_vs(f, vid, g)
        r0 = c["removed_fraction"]
        if r0 is None:
            return None
        share = _clamp(r0)
        text = (f"a CUDA graph removes {pct_text(share)} of it (the graph's gap costs {ms_text(c['alt_extra_ms'])}): "
                "the launch path pays for the gap" if share >= X.RULED_OUT else
                f"the launch path is not the cause: a CUDA graph (launch overhead) does not remove it ({pct_text(r0)})"
                if r0 < 0.05 else
                f"the launch path is a small part: a CUDA graph (launch overhead) removes only {pct_text(r0)} of it")
        ev = (f"graph {ms_text(c['alt_p50_ms'])} vs eager {ms_text(c['ref_p50_ms'])} p50 at the same gap; removes "
              f"{pct_text(share)} of the gap's extra time")
        return Line("launch path", "eager vs graph", share, True, text + ".", g, ev)
    if r["launch"] == "graph":
        e = _sibling(f, vid, launch="eager")
        if e is None:
            return None
        c = _extra_vs(f, e, vid)  # eager as the reference: how much of its extra the graph removes
        if c["ref_extra_ms"] is None or c["removed_fraction"] is None:
            return None
        saved = _clamp(c["removed_fraction"])
        text = (f"with eager launches the same gap costs {ms_text(c['ref_extra_ms'])}; the CUDA graph already removes "
                f"{pct_text(saved)} of that." if saved >= X.RULED_OUT else
                f"with eager launches the same gap costs {ms_text(c['ref_extra_ms'])}: the launch mode does not change it.")
        return Line("launch path", "graph vs eager", None, True, text, e)
    return None


def _sync(f: Facts, r: dict, E: float | None) -> Line | None:
    vid = r["variant_id"]
    alts = [(m, s) for m in ("spin", "yield", "blocking", "auto") if m != r["sync_mode"]
            for s in [_sibling(f, vid, sync_mode=m)] if s is not None]
    if not alts or E is None or E <= 0:
        return None
    found = [(m, s, _extra_vs(f, vid, s)["removed_fraction"]) for m, s in alts]
    found = [x for x in found if x[2] is not None]
    if not found:
        return None
    mode, sib, best = max(found, key=lambda x: x[2])
    share = _clamp(best)
    if share >= X.RULED_OUT:
        text = f"sync-{mode} instead of sync-{r['sync_mode']} removes {pct_text(share)} of it: how the host waits matters."
    else:
        text = f"the other sync modes ({', '.join('sync-' + m for m, _, _ in found)}) do not remove it."
    ev = (f"p50 sync-{r['sync_mode']} {ms_text(stat(f, vid, 'p50_ms'))} vs "
          + ", ".join(f"sync-{m} {ms_text(stat(f, x, 'p50_ms'))}" for m, x, _ in found) + " at the same gap")
    return Line("host sync", "sync modes", share, True, text, sib, ev)


def _clock(case: dict, E: float | None) -> Line | None:
    c = case.get("clock") or {}
    slow, fast = (c.get("slow") or {}), (c.get("fast") or {})
    if slow.get("sm_clock_mhz") is None or fast.get("sm_clock_mhz") is None:
        return None
    ex = X.explain_clock(case)
    reasons = slow.get("reasons_busy") if c.get("busy_only") else slow.get("reasons")
    active = [r for r, s in (reasons or {}).items() if s >= REASON_SHARE and r not in QUIET_REASONS and r in REASON_BITS]
    why = (f" Clock-event reasons while it worked: {', '.join(REASON_LABELS[r] for r in active)}." if active
           else " No clock-event reason that slows the GPU was active while it worked.")
    if ex is not None:
        return Line("GPU clock", "SM clock", ex["explained_share"], True,
                    f"the SM clock drops from {ex['fast_mhz']:.0f} to {ex['slow_mhz']:.0f} MHz in the slow iterations, "
                    f"which accounts for {pct_text(ex['explained_share'])} of the extra time.{why}")
    drop = c.get("sm_clock_drop") or 0.0
    if abs(drop) < X.CLOCK_DROP:
        text = f"clocks stayed at {slow['sm_clock_mhz']:.0f} MHz ({fast['sm_clock_mhz']:.0f} MHz back to back)."
    else:
        text = (f"the SM clock is {pct_text(drop)} lower ({fast['sm_clock_mhz']:.0f} -> {slow['sm_clock_mhz']:.0f} MHz), "
                f"too little to account for the extra time.")
    return Line("GPU clock", "SM clock", 0.0, True, text + why)


# -- verdicts --------------------------------------------------------------------------------------------
def verdict_of(f: Facts, vid: int) -> Verdict | None:
    """The verdict of one paced variant, or None when it is not slower than its baseline."""
    if not X.is_slow(f, vid):
        return None
    a = f.attribution[vid]
    case = X.case_of(f, vid, tiers=X.tier_facts(f, vid), gap=X.gap_penalty(f, vid),
                     use_tiers=X.tier_facts(f, vid) is not None)
    dec = a.get("vs_baseline")
    if case is None or dec is None:
        return None
    E = dec.get("extra_ms")
    r = row(f, vid)
    gpu = case["gpu"]
    lines = [_host(f, r, E, case)]
    if gpu:
        lines += [_gpu_idle(f, r, E, case), _launch(f, r, E), _sync(f, r, E), _clock(case, E)]
    return Verdict(vid, a["baseline_id"], a["p50_ms"], a["baseline_p50_ms"], E, tuple(x for x in lines if x), case)


def verdicts(f: Facts) -> list[Verdict]:
    """Every slowdown's verdict, largest extra time first."""
    out = [v for v in (verdict_of(f, vid) for vid in paced_ids(f)) if v is not None]
    return sorted(out, key=lambda v: (-(v.p50_ms - v.baseline_p50_ms), v.variant_id))


def explanation(f: Facts, v: Verdict) -> str:
    """The verdict as sentences: where the extra time sits and what every contrast says."""
    dec = v.case["attribution"].get("vs_baseline") or {}
    dom = dec.get("dominant_step")
    text = (f"The extra time sits mostly in {component_label(dom, v.case['gpu'])} ({pct_text(dec.get('dominant_share'))}). "
            if dom else "")
    said = [ln.text[0].upper() + ln.text[1:] for ln in v.lines]
    text += " ".join(said)
    host = v.line("host wake-up")
    awake = host is not None and (host.compared is not None or host.contrast == "spin") and (host.share or 0) < X.RULED_OUT
    if dom == "infer_host" and v.case["gpu"] and awake:
        text += (" With the CPU kept awake the enqueue is still slow, so the submission path (driver and GPU front "
                 "end coming out of idle) is the likely cause.")
    if not v.isolated:
        text += " This run has no variant that isolates the mechanism."
    elif v.unexplained is not None and v.unexplained >= 0.05:
        text += f" Not accounted for by these contrasts: {pct_text(v.unexplained)}."
    return " ".join(text.split())


def headline(f: Facts, v: Verdict) -> str:
    """"After a 20 ms sleep gap (name), latency is 0.642 ms p50 against 0.591 ms back to back (1.09x)"."""
    r = row(f, v.variant_id)
    return (f"After a {gap_label(r)} ({r['name']}), latency is {ms_text(v.p50_ms)} p50 against "
            f"{ms_text(v.baseline_p50_ms)} back to back ({v.ratio:.2f}x"
            + (f", {ms_text(v.extra_ms)} more on average)" if v.extra_ms is not None else ")"))


# -- what to do --------------------------------------------------------------------------------------------
def advice(f: Facts, v: Verdict) -> list[Mitigation]:
    """Mitigations for one slowdown: the measured ones that helped, largest share first; untested
    ones for the contrasts this run lacks (dropped once a measured one removes most of the extra
    time); measured ones that did not help are left out (the verdict says so)."""
    r = row(f, v.variant_id)
    gpu = v.case["gpu"]
    helped: list[tuple[float, Mitigation]] = []
    key_of = {"host wake-up": "busy_wait", "GPU idling": "keepalive", "launch path": "cuda_graph",
              "host sync": "sync_mode"}
    for ln in v.lines:
        if ln.mechanism in key_of and ln.compared is not None and (ln.share or 0) >= X.RULED_OUT:
            helped.append((ln.share, M.advise(key_of[ln.mechanism], on=f, measured=True, evidence=ln.evidence)))
    out = [m for _, m in sorted(helped, key=lambda x: -x[0])]
    clock = v.line("GPU clock")
    if clock is not None and (clock.share or 0) >= X.CLOCK_EXPLAINS:
        out.insert(0, M.lock_clocks(max_sm_clock(f)))
    untested = []
    have = {ln.mechanism for ln in v.lines if ln.compared is not None or ln.contrast in ("spin", "keep-alive")}
    if r["pacing"] == "sleep" and "host wake-up" not in have:
        untested.append(M.advise("busy_wait", on=f))
    if gpu and r["pacing"] == "sleep" and "GPU idling" not in have:
        untested.append(M.advise("keepalive", on=f))
    dom = (v.case["attribution"].get("vs_baseline") or {}).get("dominant_step")
    if gpu and r["launch"] == "eager" and "launch path" not in have and dom == "infer_host":
        untested.append(M.advise("cuda_graph", on=f))
    if any(share >= X.REMOVES_MOST for share, _ in helped):
        untested = []  # a measured fix exists: do not pad the list with guesses
    out += untested + ([M.advise("pipelining", on=f)] if gpu else [])
    flags = X.measure_flags(f)
    if flags and not v.isolated:
        out.append(M.advise("measure", on=f, flags=flags))
    return out
