"""Power and clock rules: an SM clock drop that explains an idle slowdown, and power or
thermal caps (NVML clock-event reasons) during the benchmark."""

from __future__ import annotations

import numpy as np
import polars as pl

from tracegen.analysis import explain as X
from tracegen.analysis.clocks import REASON_BITS, REASON_LABELS
from tracegen.analysis.facts import Facts, max_sm_clock, name, nsys_hint
from tracegen.analysis.mitigations import advise, keepalive, lock_clocks
from tracegen.analysis.model import Finding
from tracegen.analysis.registry import finding_kind
from tracegen.units import as_float, ms_text, pct_text

CAP_SHARE = 0.05  # power/thermal: a cap reason active in >= 5 % of the GPU samples of measured iterations
MIN_CAP_SAMPLES = 3  # ... and in at least 3 samples

POWER_REASONS = ("sw_power_cap", "hw_power_brake_slowdown", "board_limit")
THERMAL_REASONS = ("sw_thermal_slowdown", "hw_thermal_slowdown")
HW_REASONS = ("hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")
CAP_REASONS = ("sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
               "hw_power_brake_slowdown", "board_limit")


@finding_kind("explained-gpu-clock", severities=("warning",))
def rule_explained_gpu_clock(f: Facts) -> Finding | None:
    """``explained-gpu-clock``: an idle slowdown (tiers or gap penalty) with the SM clock
    >= CLOCK_DROP (5 %) lower in the slow iterations and that drop accounting for
    >= CLOCK_EXPLAINS (25 %) of the extra time (``explain.explain_clock``). Never fires on flat
    clocks, whatever the clock-event reasons say (the H100 reports GpuIdle at rest at full clock)."""
    hits = X.hits(f, X.explain_clock)
    if not hits:
        return None
    max_clk = max_sm_clock(f)

    def title(c, e):
        return f"SM clock drops from {e['fast_mhz']:.0f} to {e['slow_mhz']:.0f} MHz in the slow iterations"

    def summary(c, e):
        where = "slow tier" if c["kind"] == "tiers" else "paced iterations"
        text = (f"In {c['row']['name']}, the SM clock in the {where} is {e['slow_mhz']:.0f} MHz against "
                f"{e['fast_mhz']:.0f} MHz ({pct_text(e['drop'])} lower; {e['n_slow']} and {e['n_fast']} NVML samples"
                f"{', taken while the GPU worked' if e['busy_only'] else ', including samples in the gap'}). "
                f"At that clock the GPU work needs about {ms_text(e['implied_extra_ms'])} more, "
                + (f"enough for all of the {ms_text(X.extra(c))} extra time" if e["explained_share"] >= 1.0 else
                   f"{pct_text(e['explained_share'])} of the {ms_text(X.extra(c))} extra time")
                + ": the clock governor lowers clocks at low duty cycle and the next inference runs before they "
                "ramp back.")
        reasons = [REASON_LABELS[r] for r, s in e["reasons_slow"].items() if s >= 0.2 and r != "applications_clocks"]
        if reasons:
            text += f" Clock-event reasons active in the slow iterations: {', '.join(reasons)}."
        if e["corr"] is not None:
            text += f" Latency vs SM clock: Spearman {e['corr']:.2f}."
        return text

    def evidence(c, e):
        return {"sm_clock_fast_mhz": e["fast_mhz"], "sm_clock_slow_mhz": e["slow_mhz"], "clock_drop": e["drop"],
                "implied_extra_ms": e["implied_extra_ms"], "extra_ms": X.extra(c), "explained_share": e["explained_share"],
                "corr_latency_sm_clock": e["corr"], "samples_slow": e["n_slow"], "samples_fast": e["n_fast"],
                "reasons_slow": ", ".join(f"{REASON_LABELS[k]} {pct_text(v)}" for k, v in e["reasons_slow"].items()) or "none",
                "threshold": f"SM clock >= {X.CLOCK_DROP:.0%} lower and explaining >= {X.CLOCK_EXPLAINS:.0%} of the extra time"}

    def mitigations(c, e):
        out = [lock_clocks(max_clk)]
        k = c["contrasts"].get("keepalive_vs_sleep")
        if k is None or (k.get("removed_fraction") is not None and k["removed_fraction"] >= X.RULED_OUT):
            out.append(keepalive(k, on=f))
        out.append(advise("pipelining", on=f))
        return out

    def per_variant(c, e):
        return {"variant": c["row"]["name"], "sm_clock_fast_mhz": e["fast_mhz"], "sm_clock_slow_mhz": e["slow_mhz"],
                "explained_share": e["explained_share"]}

    return X.explained_finding(f, "explained-gpu-clock", hits, title, summary, evidence, mitigations,
                               ("infer", "sync"), "clock_vs_latency", per_variant)


@finding_kind("power-thermal-cap", severities=("warning", "critical"))
def rule_power_thermal_cap(f: Facts) -> Finding | None:
    """``power-thermal-cap``: a power or thermal clock-event reason (SwPowerCap, HwSlowdown,
    Sw/HwThermalSlowdown, HwPowerBrakeSlowdown, BoardLimit) active in >= CAP_SHARE (5 %) and
    >= MIN_CAP_SAMPLES of the GPU samples taken during measured iterations. Critical for the
    hardware and thermal reasons, warning for SwPowerCap/BoardLimit alone."""
    s = f.samples
    if s is None or s.height == 0 or "clock_event_reasons" not in s.columns:
        return None
    s = s.filter(~pl.col("warmup") & pl.col("clock_event_reasons").is_not_null())
    if s.height == 0:
        return None
    r = s["clock_event_reasons"].cast(pl.UInt64).to_numpy()
    active = {}
    for reason in CAP_REASONS:
        hit = (r & np.uint64(REASON_BITS[reason])) != 0
        if hit.sum() >= MIN_CAP_SAMPLES and hit.mean() >= CAP_SHARE:
            active[reason] = float(hit.mean())
    if not active:
        return None
    mask = np.zeros(r.size, dtype=bool)
    for reason in active:
        mask |= (r & np.uint64(REASON_BITS[reason])) != 0
    hit_rows = s.filter(pl.Series(mask))
    per = (hit_rows.group_by("variant_id").agg(pl.len().alias("samples"), pl.col("iteration").min().alias("first"),
                                               pl.col("iteration").max().alias("last"))
           .join(s.group_by("variant_id").agg(pl.len().alias("total")), on="variant_id").sort("samples", descending=True))
    critical = any(n in active for n in HW_REASONS + THERMAL_REASONS)
    temp = as_float(s["temperature_c"].max()) if "temperature_c" in s.columns else None
    power = as_float(hit_rows["power_w"].median()) if "power_w" in hit_rows.columns else None
    gpu = f.manifest.get("gpu") or {}
    limit = next((as_float(v) for k, v in gpu.items() if "power" in k.lower() and "limit" in k.lower() and as_float(v)), None)
    names = ", ".join(f"{REASON_LABELS[n]} ({pct_text(v)} of samples)" for n, v in active.items())
    vid = per["variant_id"][0]
    mitigations = []
    if any(n in active for n in THERMAL_REASONS + ("hw_slowdown",)):
        mitigations.append(advise("cooling", on=f))
    if any(n in active for n in POWER_REASONS + ("hw_slowdown",)):
        mitigations.append(advise("power_limit", on=f))
    mitigations.append(advise("steady_clock_cap", on=f))
    summary = (f"During measured iterations the GPU reported {names}: it was held below its clocks by "
               f"{'hardware or thermal protection' if critical else 'its power limit'}, so latency depends on power "
               f"and temperature rather than the model alone.")
    if temp is not None:
        summary += f" Peak temperature {temp:.0f} °C."
    if power is not None:
        summary += f" Median power while capped {power:.0f} W" + (f" (limit {limit:.0f} W)." if limit else ".")
    span = ((int(per["first"][0]), int(per["last"][0])),)
    return Finding(
        id="power-thermal-cap", severity="critical" if critical else "warning",
        title=("Thermal or hardware slowdown during the benchmark" if critical else "Power cap active during the benchmark"),
        summary=summary,
        evidence={**{f"{k}_share": v for k, v in active.items()}, "max_temperature_c": temp, "median_power_w_capped": power,
                  "power_limit_w": limit,
                  "threshold": f"a cap reason in >= {CAP_SHARE:.0%} (and >= {MIN_CAP_SAMPLES}) of the GPU samples of measured iterations",
                  "per_variant": [{"variant": name(f, x["variant_id"]), "capped_samples": x["samples"], "samples": x["total"],
                                   "iterations": f"{x['first']}-{x['last']}"} for x in per.iter_rows(named=True)]},
        variants=tuple(int(v) for v in per["variant_id"].to_list()),
        iterations=span, mitigations=tuple(mitigations),
        nsys_hint=nsys_hint(f, vid, span, ("infer",),
                            compare="the GPU metrics rows (nsys profile --gpu-metrics-devices=all) for clock and power"),
        chart="clock_vs_latency")
