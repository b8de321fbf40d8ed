"""trtexec console logs for tests, laid out as trtexec prints them (section titles and keys as in
TensorRT's samples/common/sampleOptions.cpp, sampleDevice.cpp and sampleReporting.cpp). The
numbers in the performance summary are computed from the timing file the log goes with."""

from __future__ import annotations

import statistics

STAMP = "[12/02/2026-15:00:00] [I] "


def _stats(values: list[float]) -> str:
    v = sorted(values)
    pct = {p: v[min(len(v) - 1, int(len(v) * p / 100))] for p in (90, 95, 99)}
    return (f"min = {v[0]:g} ms, max = {v[-1]:g} ms, mean = {statistics.fmean(v):g} ms, median = {statistics.median(v):g} ms, "
            + ", ".join(f"percentile({p}%) = {x:g} ms" for p, x in pct.items()))


def trtexec_log(records: list[dict], *, idle_ms: float = 0, cuda_graph: bool = False, spin: bool = False,
                transfers: bool = True, shape: str | None = None, batch: str = "Explicit", version: str = "10.8.0",
                banner_version: str = "100800", precision: str | None = "FP32+FP16", device: str = "NVIDIA H200",
                profile_layers: list[str] | None = None) -> str:
    on = {True: "Enabled", False: "Disabled"}
    lines = [f"&&&& RUNNING TensorRT.trtexec [TensorRT v{banner_version}] [b43] # trtexec --loadEngine=model.plan "
             f"--idleTime={idle_ms:g} --exportTimes=times.json"]
    body = ["=== Model Options ===", "Format: *", "Model: ", "Output:"]
    if precision:
        body += ["=== Build Options ===", "Memory Pools: workspace: default", "avgTiming: 8", f"Precision: {precision}"]
    body += ["=== System Options ===", "Device: 0", "DLACore: ", "Plugins:",
             "=== Inference Options ===", f"Batch: {batch}",
             (f"Input inference shape : {shape}" if shape else "Input inference shapes: model"),
             "Iterations: 10", "Duration: 3s (+ 200ms warm up)", "Sleep time: 0ms", f"Idle time: {idle_ms:g}ms",
             "Inference Streams: 1", "ExposeDMA: Disabled", f"Data transfers: {on[transfers]}",
             f"Spin-wait: {on[spin]}", "Multithreading: Disabled", f"CUDA Graph: {on[cuda_graph]}",
             "Separate profiling: Disabled", "Time Deserialize: Disabled", "Time Refit: Disabled",
             "=== Reporting Options ===", "Verbose: Disabled", "Averages: 10 inferences", "Percentiles: 90,95,99",
             "Export timing to JSON file: times.json", "",
             "=== Device Information ===", "Available Devices: ", f"  Device 0: \"{device}\" UUID: GPU-0000",
             f"Selected Device: {device}", "Selected Device ID: 0", "Selected Device UUID: GPU-0000",
             "Compute Capability: 9.0", "SMs: 132", "Device Global Memory: 143156 MiB", "Shared Memory per SM: 228 KiB",
             "Memory Bus Width: 6144 bits (ECC enabled)", "Application Compute Clock Rate: 1.98 GHz",
             "Application Memory Clock Rate: 3.201 GHz", "",
             f"TensorRT version: {version}", "Loading standard plugins",
             "Engine loaded in 0.05 sec.", "Loaded engine with size: 10.5 MiB"]
    if profile_layers:
        body += ["", "=== Profile (100 iterations ) ===",
                 "   Time(ms)     Avg.(ms)   Median(ms)   Time(%)   Layer"]
        body += [f"       1.00       0.0100       0.0100       1.0   {n}" for n in profile_layers]
        body += ["     100.00       1.0000       1.0000     100.0   Total", ""]
    enq = [r["endEnqMs"] - r["startEnqMs"] for r in records]
    body += ["", "=== Performance summary ===", "Throughput: 1000 qps",
             f"Latency: {_stats([r['latencyMs'] for r in records])}",
             f"Enqueue Time: {_stats(enq)}",
             f"H2D Latency: {_stats([r['h2dMs'] for r in records])}",
             f"GPU Compute Time: {_stats([r['computeMs'] for r in records])}",
             f"D2H Latency: {_stats([r['d2hMs'] for r in records])}",
             "Total Host Walltime: 3.0 s", "Total GPU Compute Time: 2.9 s"]
    lines += [STAMP + b for b in body]
    lines.append("&&&& PASSED TensorRT.trtexec [TensorRT v%s] [b43] # trtexec --loadEngine=model.plan" % banner_version)
    return "\n".join(lines) + "\n"


def times_records(n: int = 60, *, idle_ms: float = 0.0, compute_ms: float = 1.25, copies: bool = True,
                  slow_after: int | None = None) -> list[dict]:
    """A timing file as trtexec writes it: one inference after the other, ``idle_ms`` apart, with
    6-significant-digit rounding like trtexec's default stream precision."""
    def r6(x: float) -> float:
        return float(f"{x:.6g}")

    out, t = [], 5.0
    for i in range(n):
        compute = compute_ms * (1.6 if slow_after is not None and i >= slow_after else 1.0) + 0.001 * (i % 7)
        h2d = 0.0625 if copies else 0.0
        d2h = 0.03125 if copies else 0.0
        enq0, enq1 = t, t + 0.02 + 0.001 * (i % 3)
        h0 = t + 0.004
        c0 = h0 + h2d
        d0 = c0 + compute
        d1 = d0 + d2h
        rec = {"startEnqMs": enq0, "endEnqMs": enq1, "startH2dMs": h0, "endH2dMs": c0, "startComputeMs": c0,
               "endComputeMs": d0, "startD2hMs": d0, "endD2hMs": d1, "h2dMs": h2d, "computeMs": compute, "d2hMs": d2h,
               "latencyMs": h2d + compute + d2h}
        out.append({k: r6(v) for k, v in rec.items()})
        t = d1 + 0.01 + idle_ms
    return out
