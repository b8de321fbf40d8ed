"""What one NVML telemetry sample and one NVTX range cost (no profiler attached).

    python benchmarks/bench_telemetry_cost.py [--samples 500] [--ranges 200000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracegen.telemetry.nvtx import Ranges  # noqa: E402


def nvtx_cost(n: int) -> tuple[float, float]:
    """ns per push+pop with nvtx ranges enabled and disabled."""
    out = []
    for enabled in (True, False):
        r = Ranges(enabled=enabled)
        t = time.perf_counter_ns()
        for i in range(n):
            r.push_step("infer")
            r.pop()
        out.append((time.perf_counter_ns() - t) / n)
    return out[0], out[1]


def nvml_cost(n: int) -> float | None:
    try:
        from tracegen.telemetry.nvml import GpuSampler

        s = GpuSampler(0)
    except Exception as exc:  # noqa: BLE001
        print(f"NVML not available here: {exc}")
        return None
    times = []
    for _ in range(n):
        t = time.perf_counter_ns()
        s.sample()
        times.append(time.perf_counter_ns() - t)
    s.close()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--ranges", type=int, default=200_000)
    args = ap.parse_args()
    on, off = nvtx_cost(args.ranges)
    print(f"NVTX push+pop, nvtx installed, no tool attached: {on:.0f} ns; disabled: {off:.0f} ns")
    cost = nvml_cost(args.samples)
    if cost is not None:
        print(f"NVML sample (clocks, power, temperature, pstate, reasons, utilisation): median {cost / 1e3:.1f} us")


if __name__ == "__main__":
    main()
