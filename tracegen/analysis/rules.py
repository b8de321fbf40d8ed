"""Rules: small pure functions from the facts of one analysed run to findings.

Every rule takes a ``Facts`` and returns a ``Finding`` or ``None``. Each threshold is a module
constant, documented where it is defined and in the rule's docstring; a rule fires only on
evidence it can show (numbers, variants, iterations) and every finding carries mitigations with
the exact command or code, whether this run measured them and what it measured.

Vocabulary:

* *paced* variant: idle scenario with a gap (> 0 ms) before every inference (pacing sleep,
  spin or keepalive). Its *baseline* is the continuous (no-gap) variant with the same batch,
  launch, sync mode and pipeline (``attribution.find_baseline``).
* *continuous* variant: no gap (pacing ``none``): every batch-scenario variant and the idle
  scenario's 0 ms baseline. Steady-state rules (enqueue-, transfer-bound, unstable GPU time)
  look at those only, so idle effects do not leak into them.
* Contrasts (``attribution``): ``removed_fraction`` = the fraction of a sleep variant's extra
  time over the baseline that busy-waiting (``spin``), keep-alive or a CUDA graph removes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from tracegen.analysis.attribution import (
    REASON_BITS,
    component_label,
    has_gpu_times,
    measured,
)
from tracegen.analysis.findings import Finding, Mitigation
from tracegen.analysis.scaling import SATURATED, SATURATED_GAIN

NS_PER_MS = 1_000_000

# -- thresholds ----------------------------------------------------------------------------------
# batch saturated at batch 1: scaling.SATURATED_GAIN (throughput gain < 1.5x over a >= 4x span of batch sizes)
ENQUEUE_RATIO = 0.8  # enqueue-bound: median infer enqueue >= 0.8 x median infer GPU time
TRANSFER_SHARE = 0.5  # transfer-bound: median (h2d + d2h GPU time) >= 0.5 x median infer GPU time
GPU_COV = 0.10  # unstable GPU time: CoV of infer GPU time (1 % trimmed each side) above 0.10 ...
GPU_ROBUST_COV = 0.05  # ... and its robust spread (IQR / 1.349 / median) >= 0.05: the bulk varies, not a few spikes
MIN_COV_POINTS = 20  # ... over at least 20 measured iterations
TIER_RATIO = 1.15  # tiers: slowest level >= 1.15 x fastest level (and x the continuous baseline)
TIER_CRITICAL = 1.5  # tiers: slowest level >= 1.5 x baseline is critical (the seed saw 2.1x)
MIN_TIER_SHARE = 0.05  # tiers: slower tiers hold >= 5 % of the measured iterations ...
MIN_TIER_ITERS = 5  # ... and at least 5 iterations
GAP_RATIO = 1.05  # slow after gap: the p10 latency of a paced variant >= 1.05 x the baseline p50 ...
GAP_MIN_MS = 0.05  # ... and >= 0.05 ms above it (below that, timer and scheduling noise)
GAP_WARNING = 1.25  # slow after gap: warning from 1.25x, info below
CLOCK_DROP = 0.05  # clock explanation: SM clock >= 5 % lower in the slow iterations ...
CLOCK_EXPLAINS = 0.25  # ... and the drop accounts for >= 25 % of the extra time (GPU time x f_fast/f_slow)
REMOVES_MOST = 0.5  # a contrast (spin / keepalive vs sleep) that removes >= 50 % of the extra time explains it
RULED_OUT = 0.2  # ... one that removes < 20 % rules its mechanism out
HOST_SHARE = 0.6  # without a spin variant: >= 60 % of the extra time in host steps (pre/post, sync wait)
GPU_SHARE = 0.6  # without a keepalive variant: >= 60 % of the extra time in GPU compute, clocks steady
WARMUP_RATIO = 1.10  # warm-up: first segment's median >= 1.10 x the rest's median ...
WARMUP_MAX_FRACTION = 1 / 3  # ... and it ends within the first third of the measured iterations
WARMUP_SPIKE = 1.5  # or the first >= 2 measured iterations are each >= 1.5 x the median ...
WARMUP_FIRST = 2.0  # or the first one alone is >= 2 x the median
MIN_WARMUP_POINTS = 10  # measured iterations needed to judge the warm-up
CAP_SHARE = 0.05  # power/thermal: a cap reason active in >= 5 % of the GPU samples of measured iterations
MIN_CAP_SAMPLES = 3  # ... and in at least 3 samples

POWER_REASONS = ("sw_power_cap", "hw_power_brake_slowdown", "board_limit")
THERMAL_REASONS = ("sw_thermal_slowdown", "hw_thermal_slowdown")
HW_REASONS = ("hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")
CAP_REASONS = ("sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
               "hw_power_brake_slowdown", "board_limit")
REASON_LABELS = {
    "gpu_idle": "GpuIdle", "applications_clocks": "ApplicationsClocksSetting", "sw_power_cap": "SwPowerCap",
    "hw_slowdown": "HwSlowdown", "sync_boost": "SyncBoost", "sw_thermal_slowdown": "SwThermalSlowdown",
    "hw_thermal_slowdown": "HwThermalSlowdown", "hw_power_brake_slowdown": "HwPowerBrakeSlowdown",
    "display_clock": "DisplayClockSetting", "board_limit": "BoardLimit", "reliability": "Reliability",
}


@dataclass(frozen=True)
class Facts:
    """Everything the rules read about one run (built by ``findings.analyze``)."""

    run_id: str
    manifest: dict
    variants: pl.DataFrame
    iters: pl.DataFrame  # stats.iterations: all iterations, warm-up flagged
    stats: pl.DataFrame  # stats.variant_stats
    tiers: dict[int, Any] = field(default_factory=dict)  # variant_id -> Tiers (levels, labels over measured)
    tier_summaries: dict[int, dict] = field(default_factory=dict)
    changepoints: dict[int, list[int]] = field(default_factory=dict)  # indices into measured iterations
    scaling: dict | None = None
    attribution: dict[int, dict] = field(default_factory=dict)
    telemetry: pl.DataFrame | None = None
    samples: pl.DataFrame | None = None  # attribution.samples_to_iterations
    iter_telemetry: pl.DataFrame | None = None  # attribution.iteration_telemetry
    budget_ms: float | None = None


# -- small helpers ----------------------------------------------------------------------------------
def _row(f: Facts, vid: int) -> dict:
    return f.variants.filter(pl.col("variant_id") == vid).row(0, named=True)


def _stat(f: Facts, vid: int, col: str) -> Any:
    s = f.stats.filter(pl.col("variant_id") == vid)
    return s[col][0] if s.height and col in s.columns else None


def _name(f: Facts, vid: int) -> str:
    return _row(f, vid)["name"]


def _is_paced(row: dict) -> bool:
    return row["pacing"] != "none" and (row["idle_ms"] or 0) > 0


def _continuous_ids(f: Facts) -> list[int]:
    have = set(f.stats.filter(pl.col("n") > 0)["variant_id"].to_list())
    return [r["variant_id"] for r in f.variants.sort("variant_id").iter_rows(named=True)
            if not _is_paced(r) and r["variant_id"] in have]


def _paced_ids(f: Facts) -> list[int]:
    have = set(f.stats.filter(pl.col("n") > 0)["variant_id"].to_list())
    return [r["variant_id"] for r in f.variants.sort("variant_id").iter_rows(named=True)
            if _is_paced(r) and r["variant_id"] in have]


def _ms(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "?"
    return f"{x:.{digits}g} ms"


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{round(100 * x) + 0:.0f} %"


def _f(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) or math.isinf(v) else v


def _iteration_numbers(f: Facts, vid: int) -> np.ndarray:
    return measured(f.iters, vid)["iteration"].to_numpy()


def _ranges(numbers: np.ndarray, mask: np.ndarray, *, max_gap: int = 5, keep: int = 5) -> tuple[tuple[int, int], ...]:
    """Inclusive (first, last) iteration numbers of the runs where ``mask`` holds, runs closer
    than ``max_gap`` merged; the ``keep`` longest, in order."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return ()
    runs: list[list[int]] = [[int(idx[0]), int(idx[0])]]
    for i in idx[1:]:
        if i - runs[-1][1] <= max_gap:
            runs[-1][1] = int(i)
        else:
            runs.append([int(i), int(i)])
    runs.sort(key=lambda r: r[0] - r[1])
    runs = sorted(runs[:keep])
    return tuple((int(numbers[a]), int(numbers[b])) for a, b in runs)


def _fmt_ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in ranges)


def nsys_hint(f: Facts, vid: int, ranges: tuple[tuple[int, int], ...], steps: tuple[str, ...],
              compare: str | None = None) -> str:
    """Where to look in Nsight Systems (NVTX domain "tracegen")."""
    where = f"iterations {_fmt_ranges(ranges)}" if ranges else "its iterations"
    cats = ", ".join(f'"{s}"' for s in steps)
    text = (f'NVTX domain "tracegen": open the range "{_name(f, vid)}", {where} (iteration ranges carry the '
            f"iteration index as payload), and the step ranges with category {cats} and the CUDA rows beneath them")
    if compare:
        text += f"; compare with {compare}"
    return text + "."


def _max_sm_clock(f: Facts) -> tuple[float | None, str]:
    """The GPU's maximum SM clock and where it comes from: the manifest when recorded
    (``"manifest"``), else the highest SM clock sampled in this run (``"observed"``)."""
    gpu = f.manifest.get("gpu") or {}

    def walk(d: Any, path: str = "") -> float | None:
        if isinstance(d, dict):
            for k, v in d.items():
                r = walk(v, f"{path}.{k}".lower())
                if r is not None:
                    return r
        elif isinstance(d, (int, float)) and "max" in path and ("sm" in path or "graphics" in path) \
                and "mem" not in path.rsplit(".", 1)[-1]:
            return float(d)
        return None

    v = walk(gpu)
    if v:
        return v, "manifest"
    tel = f.telemetry
    if tel is not None and tel.height and "sm_clock_mhz" in tel.columns and tel["sm_clock_mhz"].null_count() < tel.height:
        return _f(tel["sm_clock_mhz"].max()), "observed"
    return None, "unknown"


def _gap_label(row: dict) -> str:
    return f"{row['idle_ms']:g} ms {row['pacing']} gap"


# -- mitigations ---------------------------------------------------------------------------------------
def m_lock_clocks(max_clock: tuple[float | None, str] | None, evidence: str | None = None) -> Mitigation:
    mhz, source = max_clock or (None, "unknown")
    clk = f"{mhz:.0f}" if mhz else "<max>"
    note = {"manifest": "# the GPU's max SM clock",
            "observed": "# the highest SM clock seen in this run; check the board's max below"}.get(source, "# use the max below")
    return Mitigation(
        title="Lock the GPU clocks",
        action=(f"sudo nvidia-smi -lgc {clk},{clk}   {note}\n"
                "# undo: sudo nvidia-smi -rgc\n"
                "# supported clocks: nvidia-smi -q -d SUPPORTED_CLOCKS   (Jetson: sudo jetson_clocks)"),
        expected_effect="the clock governor can no longer lower the SM clock at low duty cycle, so latency stays "
                        "at the continuous level between frames",
        cost="needs root and persists until -rgc or reboot; the GPU draws more power and runs warmer while idle; "
             "applies to every process on the GPU; not supported on every board",
        measured=False, evidence=evidence)


def m_busy_wait(c: dict | None = None) -> Mitigation:
    ev = None
    if c is not None:
        ev = (f"spin {_ms(c['alt_p50_ms'])} vs sleep {_ms(c['ref_p50_ms'])} p50; removes "
              f"{_pct(c['removed_fraction'])} of the gap's extra time")
    return Mitigation(
        title="Busy-wait instead of sleeping between frames",
        action=("import time\n"
                "def wait_until(deadline_ns, spin_ns=2_000_000):\n"
                "    # sleep most of the gap, spin the last 2 ms so the core is awake and at frequency\n"
                "    remaining = deadline_ns - time.perf_counter_ns()\n"
                "    if remaining > spin_ns:\n"
                "        time.sleep((remaining - spin_ns) / 1e9)\n"
                "    while time.perf_counter_ns() < deadline_ns:\n"
                "        pass\n"
                "# measure it: tracegen run --scenario idle --pacing sleep,spin"),
        expected_effect="the host thread does not pay the CPU wake-up (C-state exit, frequency ramp, scheduler "
                        "latency) before the next inference",
        cost="one CPU core busy for the spun part of every gap (power, heat, less CPU for other threads)",
        measured=c is not None, evidence=ev)


def m_keepalive(c: dict | None = None) -> Mitigation:
    ev = None
    if c is not None:
        ev = (f"keepalive {_ms(c['alt_p50_ms'])} vs sleep {_ms(c['ref_p50_ms'])} p50; removes "
              f"{_pct(c['removed_fraction'])} of the gap's extra time")
    return Mitigation(
        title="Keep the GPU busy during the gap",
        action=("tracegen run --scenario idle --pacing keepalive   # measures it\n"
                "# in the application (PyTorch): cheap work on a side stream until the next frame\n"
                "import torch, time\n"
                "side = torch.cuda.Stream()\n"
                "buf = torch.zeros(1 << 16, device='cuda')\n"
                "def keep_busy_until(deadline_s):\n"
                "    with torch.cuda.stream(side):\n"
                "        while time.perf_counter() < deadline_s - 0.001:\n"
                "            buf.add_(1.0)        # a tiny kernel on the side stream\n"
                "            side.synchronize()   # one at a time, so the next frame never queues behind many\n"),
        expected_effect="the GPU never sees an idle period, so it does not drop into a low-power state or lower "
                        "its clocks between frames",
        cost="the GPU draws power during the gap; a CPU thread drives the side stream; the side-stream work can "
             "delay the real inference by up to one tiny kernel",
        measured=c is not None, evidence=ev)


def m_cuda_graph(evidence: str | None = None, measured_: bool = False) -> Mitigation:
    return Mitigation(
        title="Launch the network as a CUDA graph",
        action=("tracegen run --launch eager,graph   # measures it\n"
                "# TensorRT (cuda-python): capture execute_async_v3 once, replay it per frame\n"
                "from cuda.bindings import runtime as cudart   # older cuda-python: from cuda import cudart\n"
                "context.execute_async_v3(stream.handle)        # one normal launch first (shapes, allocations)\n"
                "stream.synchronize()\n"
                "cudart.cudaStreamBeginCapture(stream.handle, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal)\n"
                "context.execute_async_v3(stream.handle)\n"
                "_, graph = cudart.cudaStreamEndCapture(stream.handle)\n"
                "_, graph_exec = cudart.cudaGraphInstantiate(graph, 0)\n"
                "cudart.cudaGraphLaunch(graph_exec, stream.handle)   # per frame, instead of execute_async_v3\n"
                "# PyTorch: g = torch.cuda.CUDAGraph(); with torch.cuda.graph(g): out = model(static_in); then g.replay()"),
        expected_effect="one launch per inference instead of one per kernel: the host enqueue shrinks to tens of "
                        "microseconds and the GPU no longer waits for Python",
        cost="fixed input shapes and buffer addresses (re-capture on change); capture code to maintain",
        measured=measured_, evidence=evidence)


def m_batching(evidence: str | None = None, measured_: bool = False) -> Mitigation:
    return Mitigation(
        title="Batch frames (or streams) into one inference",
        action=("tracegen run --scenario batch --batch-sizes 1,2,4,8,16,32   # measures it\n"
                "# application: collect frames from N cameras (or N consecutive frames) and run them as one batch"),
        expected_effect="launch and wake-up costs are paid once per batch instead of once per frame",
        cost="adds up to one frame interval of queueing latency per extra frame waited for",
        measured=measured_, evidence=evidence)


def m_pipelining() -> Mitigation:
    return Mitigation(
        title="Pipeline frames so the GPU never idles",
        action=("# double-buffer: while frame N runs on the GPU, prepare and upload frame N+1 on a second stream\n"
                "import pycuda.driver as cuda\n"
                "streams = [cuda.Stream(), cuda.Stream()]\n"
                "for n, frame in enumerate(frames):\n"
                "    s = streams[n % 2]\n"
                "    cuda.memcpy_htod_async(d_in[n % 2], frame, s)\n"
                "    contexts[n % 2].execute_async_v3(s.handle)   # one execution context per buffer\n"
                "    cuda.memcpy_dtoh_async(h_out[n % 2], d_out[n % 2], s)\n"
                "    streams[(n + 1) % 2].synchronize()             # collect the previous frame"),
        expected_effect="copies, host work and compute overlap; the GPU sees back-to-back work instead of gaps",
        cost="one frame of extra latency; two sets of buffers and execution contexts",
        measured=False)


def m_warmup(n: int) -> Mitigation:
    return Mitigation(
        title="Warm up longer before measuring or serving",
        action=(f"tracegen run --warmup {n}\n"
                f"# application: run {n} inferences on a representative input before taking traffic\n"
                f"for _ in range({n}):\n"
                f"    infer(dummy_input)"),
        expected_effect="the slow first iterations (lazy allocation, autotuning, caches, clocks ramping) stay out "
                        "of the statistics and away from the first real requests",
        cost=f"{n} extra inferences at start-up",
        measured=False)


def m_sync_mode(evidence: str | None = None, measured_: bool = False) -> Mitigation:
    return Mitigation(
        title="Choose how the host waits for the GPU (spin vs blocking sync)",
        action=("import pycuda.driver as cuda\n"
                "cuda.init()\n"
                "ctx = cuda.Device(0).make_context(flags=cuda.ctx_flags.SCHED_SPIN)   # lowest wake-up latency\n"
                "# ctx_flags.SCHED_BLOCKING_SYNC frees the core but wakes up later (an interrupt)\n"
                "# measure both: tracegen run --sync-mode spin,yield,blocking"),
        expected_effect="SCHED_SPIN returns from the sync as soon as the GPU finishes; blocking sync adds the "
                        "thread's wake-up time to every inference",
        cost="SCHED_SPIN keeps one CPU core at 100 % while the GPU works",
        measured=measured_, evidence=evidence)


def m_cpu_power() -> Mitigation:
    return Mitigation(
        title="Keep the CPU out of deep sleep states",
        action=("sudo cpupower frequency-set -g performance   # frequency governor\n"
                "sudo cpupower idle-set -D 10                 # disable C-states with > 10 us exit latency\n"
                "taskset -c 2 python app.py                   # pin the inference thread to one core"),
        expected_effect="the core wakes up fast and at full frequency after a sleep",
        cost="needs root; higher idle power for the whole machine",
        measured=False)


def m_power_limit(limit: float | None) -> Mitigation:
    return Mitigation(
        title="Check and, if allowed, raise the power limit",
        action=("nvidia-smi -q -d POWER            # current, default and max power limit\n"
                f"sudo nvidia-smi -pl {limit:.0f}   # up to 'Max Power Limit'" if limit else
                "nvidia-smi -q -d POWER            # current, default and max power limit\n"
                "sudo nvidia-smi -pl <watts>       # up to 'Max Power Limit'"),
        expected_effect="the board can hold its clocks under sustained load instead of capping power",
        cost="needs root; more heat and power draw; not possible beyond the board's max limit",
        measured=False)


def m_cooling() -> Mitigation:
    return Mitigation(
        title="Check cooling and thermal headroom",
        action=("nvidia-smi -q -d TEMPERATURE,PERFORMANCE   # slowdown temperatures and active reasons\n"
                "nvidia-smi dmon -s pucv                   # power, temperature, clocks, violations while it runs"),
        expected_effect="with enough airflow the GPU stays below its slowdown temperature and keeps its clocks",
        cost="fans, chassis airflow or a lower ambient temperature; for sealed edge devices, a lower clock cap "
             "(nvidia-smi -lgc) that the cooling can sustain",
        measured=False)


def m_transfers() -> Mitigation:
    return Mitigation(
        title="Move fewer bytes, and overlap the copies with compute",
        action=("# upload uint8 frames (4x fewer bytes than float32) and normalise on the GPU\n"
                "import torch\n"
                "x = frame_u8_pinned.to('cuda', non_blocking=True)          # pinned host memory\n"
                "x = (x.permute(2, 0, 1).float() / 255 - mean) / std       # on the GPU\n"
                "# keep outputs on the GPU (top-k there) and copy back only what you need\n"
                "# overlap: double-buffer inputs on a second stream (see 'Pipeline frames')"),
        expected_effect="copy time shrinks with the bytes moved, and overlapped copies leave the critical path",
        cost="preprocessing code moves to the GPU; pinned buffers",
        measured=False)


def m_reduce_work(knee: int | None) -> Mitigation:
    return Mitigation(
        title="Reduce the work per image instead of batching",
        action=("trtexec --onnx=model.onnx --fp16 --saveEngine=model_fp16.engine   # or --int8 with calibration\n"
                "# builder API: config.set_flag(trt.BuilderFlag.FP16)\n"
                f"# serve at batch {knee or 1}: larger batches only add latency on this device"),
        expected_effect="lower precision or a smaller input/model shortens every inference; batching beyond the "
                        "knee adds latency for little throughput",
        cost="accuracy must be re-validated at lower precision or resolution",
        measured=False)


def m_isolate_gpu() -> Mitigation:
    return Mitigation(
        title="Make sure nothing else shares the GPU",
        action=("nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv\n"
                "sudo nvidia-smi -c EXCLUSIVE_PROCESS   # one process per GPU (undo: -c DEFAULT)"),
        expected_effect="no other work interleaves with the inference kernels",
        cost="needs root; other users lose the GPU",
        measured=False)


def m_measure(flags: str) -> Mitigation:
    return Mitigation(
        title="Isolate the mechanism with the variants this run lacks",
        action=f"tracegen run --scenario idle {flags}",
        expected_effect="the busy-wait, keep-alive and CUDA-graph variants show which mechanism the gap triggers",
        cost="a few more minutes of benchmarking",
        measured=False)


# -- batch scaling ---------------------------------------------------------------------------------------
def _scaling_groups(f: Facts) -> list[dict]:
    if not f.scaling:
        return []
    return list(f.scaling.get("groups") or [f.scaling])


def rule_batch_saturated(f: Facts) -> Finding | None:
    """``batch-saturated-at-batch-1``: a batch group whose throughput grows less than
    SATURATED_GAIN (1.5x) from batch 1 to its best batch, over at least a 4x span of batch sizes
    (``scaling.classify``)."""
    sat = [g for g in _scaling_groups(f) if g["saturation_class"] == SATURATED]
    if not sat:
        return None
    g = max(sat, key=lambda g: len(g["curve"]))
    pts = g["curve"]
    b0 = pts[0]
    best = max(pts, key=lambda p: p["throughput_ips"])
    last = pts[-1]
    evidence = {
        "group": g["group_label"], "batches": g["batches"],
        "per_image_ms_batch1": b0["per_image_ms"], "per_image_ms_best": best["per_image_ms"],
        "best_batch": best["batch"], "throughput_gain": g["throughput_gain"],
        "knee_batch": g["knee_batch"], "latency_ms_largest_batch": last["p50_ms"], "largest_batch": last["batch"],
        "threshold": f"throughput gain < {SATURATED_GAIN}x from batch {b0['batch']} to the best batch",
    }
    if b0.get("infer_gpu_ms") is not None:
        evidence["infer_gpu_ms_batch1"] = b0["infer_gpu_ms"]
    if g.get("sm_clock_mhz_range"):
        evidence["sm_clock_mhz_range"] = g["sm_clock_mhz_range"]
    return Finding(
        id="batch-saturated-at-batch-1", severity="info",
        title=f"Batching barely helps: the device is saturated at batch {b0['batch']}",
        summary=(f"Per-image time goes only from {_ms(b0['per_image_ms'])} at batch {b0['batch']} to "
                 f"{_ms(best['per_image_ms'])} at batch {best['batch']} ({g['throughput_gain']:.2f}x throughput), "
                 f"while latency grows to {_ms(last['p50_ms'])} at batch {last['batch']}. One input already keeps "
                 f"the device busy ({g['group_label']}); batching trades latency for almost no throughput. "
                 f"The knee (90 % of the best throughput) is batch {g['knee_batch']}."),
        evidence=evidence, variants=tuple(p["variant_id"] for p in pts),
        mitigations=(m_reduce_work(g["knee_batch"]),),
        nsys_hint=nsys_hint(f, b0["variant_id"], (), ("infer",),
                            compare=f'"{_name(f, last["variant_id"])}": the kernels take proportionally longer, '
                                    "the gaps between them do not shrink"),
        chart="batch_scaling")


def rule_batch_budget(f: Facts) -> Finding | None:
    """``batch-budget``: with ``--budget-ms``, the largest batch whose p99 latency fits it
    (info), or that none does (warning)."""
    if f.budget_ms is None or not f.scaling:
        return None
    g = f.scaling
    pts = g["curve"]
    b = g.get("largest_batch_within_budget")
    if b is None:
        first = pts[0]
        return Finding(
            id="batch-budget", severity="warning",
            title=f"No batch size meets the {f.budget_ms:g} ms latency budget",
            summary=(f"Even batch {first['batch']} takes {_ms(first['p99_ms'] or first['p50_ms'])} at p99 "
                     f"({g['group_label']}), above the {f.budget_ms:g} ms budget."),
            evidence={"budget_ms": f.budget_ms, "budget_stat": "p99", "smallest_batch": first["batch"],
                      "p99_ms_smallest_batch": first["p99_ms"] or first["p50_ms"], "group": g["group_label"]},
            variants=(first["variant_id"],), mitigations=(m_reduce_work(1), m_cuda_graph()),
            nsys_hint=nsys_hint(f, first["variant_id"], (), ("infer", "sync")), chart="batch_scaling")
    p = next(p for p in pts if p["batch"] == b)
    return Finding(
        id="batch-budget", severity="info",
        title=f"Batch {b} is the largest that fits {f.budget_ms:g} ms at p99",
        summary=(f"At batch {b}, p99 latency is {_ms(p['p99_ms'] or p['p50_ms'])} and throughput "
                 f"{p['throughput_ips']:.0f} images/s ({g['group_label']}); the knee is batch {g['knee_batch']} and "
                 f"the best throughput {g['max_throughput_ips']:.0f} images/s at batch {g['best_batch']}."),
        evidence={"budget_ms": f.budget_ms, "budget_stat": "p99", "recommended_batch": b,
                  "p99_ms": p["p99_ms"] or p["p50_ms"], "throughput_ips": p["throughput_ips"],
                  "knee_batch": g["knee_batch"], "best_batch": g["best_batch"], "group": g["group_label"]},
        variants=(p["variant_id"],), mitigations=(), nsys_hint="", chart="batch_scaling")


# -- steady-state rules (continuous variants) ------------------------------------------------------------
def _median_ms(frame: pl.DataFrame, col: str) -> float | None:
    if col not in frame.columns or frame.height == 0 or frame[col].null_count() == frame.height:
        return None
    return _f(frame[col].cast(pl.Float64).median() / NS_PER_MS)


def _graph_evidence(f: Facts, vid: int) -> tuple[str | None, bool]:
    """Measured effect of a CUDA graph for a continuous eager variant (same batch/sync/pipeline)."""
    row = _row(f, vid)
    if row["launch"] != "eager":
        return None, False
    for r in f.variants.iter_rows(named=True):
        if (r["launch"] == "graph" and not _is_paced(r) and r["scenario"] == row["scenario"]
                and all(r[k] == row[k] for k in ("batch", "sync_mode", "pipeline"))):
            g, e = _stat(f, r["variant_id"], "p50_ms"), _stat(f, vid, "p50_ms")
            ge, ee = _stat(f, r["variant_id"], "infer_host_p50_ms"), _stat(f, vid, "infer_host_p50_ms")
            if g and e:
                txt = f"graph p50 {_ms(g)} vs eager {_ms(e)} ({e / g:.2f}x)"
                if ge is not None and ee is not None:
                    txt += f"; enqueue {_ms(ge)} vs {_ms(ee)}"
                return txt, True
    return None, False


def _batching_evidence(f: Facts) -> tuple[str | None, bool]:
    g = f.scaling
    if not g or len(g.get("curve", [])) < 2:
        return None, False
    pts = g["curve"]
    best = max(pts, key=lambda p: p["throughput_ips"])
    return (f"per-image time {_ms(pts[0]['per_image_ms'])} at batch {pts[0]['batch']} -> "
            f"{_ms(best['per_image_ms'])} at batch {best['batch']} ({g['group_label']})"), True


def rule_enqueue_bound(f: Facts) -> Finding | None:
    """``enqueue-bound``: in a continuous variant, the median infer enqueue (host) time is
    >= ENQUEUE_RATIO (0.8) x the median infer GPU time: the GPU waits for the host to launch."""
    hits = []
    for vid in _continuous_ids(f):
        enq, gpu = _stat(f, vid, "infer_host_p50_ms"), _stat(f, vid, "infer_gpu_p50_ms")
        if enq is not None and gpu and enq >= ENQUEUE_RATIO * gpu:
            hits.append({"variant": _name(f, vid), "variant_id": vid, "enqueue_ms": enq, "gpu_ms": gpu,
                         "ratio": enq / gpu, "p50_ms": _stat(f, vid, "p50_ms")})
    if not hits:
        return None
    hits.sort(key=lambda h: (-h["ratio"], h["variant_id"]))
    h = hits[0]
    vid = h["variant_id"]
    graph_ev, graph_measured = _graph_evidence(f, vid)
    batch_ev, batch_measured = _batching_evidence(f)
    mitigations = []
    if _row(f, vid)["launch"] == "eager":
        mitigations.append(m_cuda_graph(graph_ev, graph_measured))
    mitigations.append(m_batching(batch_ev, batch_measured))
    cls = f.scaling.get("saturation_class") if f.scaling else None
    summary = (f"In {h['variant']}, enqueueing the network takes {_ms(h['enqueue_ms'])} on the host against "
               f"{_ms(h['gpu_ms'])} of GPU time ({h['ratio']:.2f}x): the GPU waits for Python and the launch "
               f"path, not for its own compute.")
    if len(hits) > 1:
        summary += f" {len(hits)} continuous variants cross the threshold."
    if cls == "launch-bound":
        summary += " Batch scaling agrees: latency barely grows at small batch sizes."
    return Finding(
        id="enqueue-bound", severity="warning", title=f"Enqueue-bound: host launch time ≈ GPU time ({h['ratio']:.2f}x)",
        summary=summary,
        evidence={"enqueue_ms": h["enqueue_ms"], "gpu_ms": h["gpu_ms"], "ratio": h["ratio"],
                  "threshold": f"median infer enqueue >= {ENQUEUE_RATIO} x median infer GPU time",
                  "per_variant": [{k: v for k, v in x.items() if k != "variant_id"} for x in hits]},
        variants=tuple(x["variant_id"] for x in hits), mitigations=tuple(mitigations),
        nsys_hint=nsys_hint(f, vid, (), ("infer",),
                            compare="the gaps between kernels on the GPU row: they are the host launching the next one"),
        chart="step_breakdown")


def rule_transfer_bound(f: Facts) -> Finding | None:
    """``transfer-bound``: in a continuous full-pipeline variant, the median of h2d + d2h GPU
    time per iteration is >= TRANSFER_SHARE (0.5) x the median infer GPU time."""
    hits = []
    for vid in _continuous_ids(f):
        m = measured(f.iters, vid)
        if not all(c in m.columns for c in ("h2d_gpu_ns", "infer_gpu_ns")):
            continue
        copies = m.select((pl.col("h2d_gpu_ns").fill_null(0) + (pl.col("d2h_gpu_ns").fill_null(0)
                                                                 if "d2h_gpu_ns" in m.columns else pl.lit(0)))
                          .alias("c"))["c"]
        if m["h2d_gpu_ns"].null_count() == m.height:
            continue
        cp, gpu = _f(copies.median() / NS_PER_MS), _median_ms(m, "infer_gpu_ns")
        if cp is not None and gpu and cp >= TRANSFER_SHARE * gpu:
            hits.append({"variant": _name(f, vid), "variant_id": vid, "copies_ms": cp, "h2d_ms": _median_ms(m, "h2d_gpu_ns"),
                         "d2h_ms": _median_ms(m, "d2h_gpu_ns"), "infer_gpu_ms": gpu, "ratio": cp / gpu})
    if not hits:
        return None
    hits.sort(key=lambda h: (-h["ratio"], h["variant_id"]))
    h = hits[0]
    return Finding(
        id="transfer-bound", severity="warning",
        title=f"Transfer-bound: copies take {h['ratio']:.2f}x the inference's GPU time",
        summary=(f"In {h['variant']}, host-to-device and device-to-host copies take {_ms(h['copies_ms'])} on the GPU "
                 f"(h2d {_ms(h['h2d_ms'])}, d2h {_ms(h['d2h_ms'])}) against {_ms(h['infer_gpu_ms'])} of inference: "
                 f"PCIe traffic, not compute, limits every frame."),
        evidence={"copies_ms": h["copies_ms"], "infer_gpu_ms": h["infer_gpu_ms"], "ratio": h["ratio"],
                  "threshold": f"median (h2d + d2h GPU time) >= {TRANSFER_SHARE} x median infer GPU time",
                  "per_variant": [{k: v for k, v in x.items() if k != "variant_id"} for x in hits]},
        variants=tuple(x["variant_id"] for x in hits), mitigations=(m_transfers(), m_pipelining()),
        nsys_hint=nsys_hint(f, h["variant_id"], (), ("h2d", "d2h"),
                            compare='the "infer" step: the memcpy rows are longer than the kernels'),
        chart="step_breakdown")


def rule_unstable_gpu_time(f: Facts) -> Finding | None:
    """``unstable-gpu-time``: in a continuous variant with >= MIN_COV_POINTS measured
    iterations, the CoV (std / mean) of the infer GPU time, after dropping the top and bottom
    1 %, is above GPU_COV (0.10), and the robust spread (IQR / 1.349 / median) is at least
    GPU_ROBUST_COV (0.05), so a handful of spikes in a steady series does not count."""
    hits = []
    for vid in _continuous_ids(f):
        m = measured(f.iters, vid)
        if "infer_gpu_ns" not in m.columns:
            continue
        g = m["infer_gpu_ns"].drop_nulls().cast(pl.Float64)
        if g.len() < MIN_COV_POINTS:
            continue
        lo, hi = g.quantile(0.01, "linear"), g.quantile(0.99, "linear")
        t = g.filter((g >= lo) & (g <= hi))
        mean = t.mean()
        cov = _f(t.std() / mean) if mean else None
        med = g.median()
        robust = _f((g.quantile(0.75, "linear") - g.quantile(0.25, "linear")) / 1.349 / med) if med else None
        if cov is not None and cov > GPU_COV and robust is not None and robust >= GPU_ROBUST_COV:
            enq, gmed = _stat(f, vid, "infer_host_p50_ms"), _stat(f, vid, "infer_gpu_p50_ms")
            clock_cov = None
            if f.iter_telemetry is not None and f.iter_telemetry.height:
                c = m.select("variant_id", "iteration").join(f.iter_telemetry, on=["variant_id", "iteration"])
                c = c["sm_clock_mhz"].drop_nulls() if "sm_clock_mhz" in c.columns else pl.Series([], dtype=pl.Float64)
                if c.len() >= 3 and c.mean():
                    clock_cov = _f(c.std() / c.mean())
            hits.append({"variant": _name(f, vid), "variant_id": vid, "cov": cov, "robust_cov": robust,
                         "p50_ms": _f(g.median() / NS_PER_MS), "p99_ms": _f(g.quantile(0.99, "linear") / NS_PER_MS),
                         "launch_bound": bool(enq is not None and gmed and enq >= ENQUEUE_RATIO * gmed),
                         "sm_clock_cov": clock_cov})
    if not hits:
        return None
    hits.sort(key=lambda h: (-h["cov"], h["variant_id"]))
    h = hits[0]
    summary = (f"In {h['variant']}, the inference's GPU time varies with a CoV of {h['cov']:.2f} "
               f"(p50 {_ms(h['p50_ms'])}, p99 {_ms(h['p99_ms'])}) with no gap between inferences.")
    mitigations = [m_isolate_gpu()]
    if h["launch_bound"]:
        summary += (" The GPU time follows the host enqueue here (launch-bound), so the jitter comes from the host "
                    "launching kernels, not from the GPU.")
        mitigations.insert(0, m_cuda_graph(*_graph_evidence(f, h["variant_id"])))
    if h["sm_clock_cov"] is not None and h["sm_clock_cov"] > 0.02:
        summary += f" The SM clock moved too (CoV {h['sm_clock_cov']:.2f})."
        mitigations.insert(0, m_lock_clocks(_max_sm_clock(f)))
    return Finding(
        id="unstable-gpu-time", severity="warning", title=f"Unstable GPU time (CoV {h['cov']:.2f})",
        summary=summary,
        evidence={"cov": h["cov"], "p50_ms": h["p50_ms"], "p99_ms": h["p99_ms"],
                  "robust_cov": h["robust_cov"],
                  "threshold": f"CoV of infer GPU time (1 % trimmed) > {GPU_COV} and IQR/1.349/median >= {GPU_ROBUST_COV}",
                  "per_variant": [{k: v for k, v in x.items() if k != "variant_id"} for x in hits]},
        variants=tuple(x["variant_id"] for x in hits), mitigations=tuple(mitigations),
        nsys_hint=nsys_hint(f, h["variant_id"], (), ("infer",), compare="the slowest and fastest iterations side by side"),
        chart="latency_trace")


# -- idle delay -------------------------------------------------------------------------------------------
def tier_facts(f: Facts, vid: int) -> dict[str, Any] | None:
    """The tiers of a paced variant when they pass the thresholds (TIER_RATIO between slowest
    and fastest level, and between slowest level and the continuous baseline; slower tiers
    holding >= MIN_TIER_SHARE and >= MIN_TIER_ITERS iterations). Slow tiers only at the start,
    ending in the fastest tier, are a warm-up and left to ``warmup-too-short``. Onset and settle come from
    ``tiers.tier_summary`` (as iteration numbers); without a summary, onset is the first of
    >= 3 consecutive iterations in a slower tier and settle the first iteration in the slowest
    tier from which >= 90 % of the remaining iterations are in it."""
    t = f.tiers.get(vid)
    if t is None:
        return None
    levels = [float(x) for x in (getattr(t, "levels", None) if getattr(t, "levels", None) is not None else [])]
    labels = getattr(t, "labels", None)
    if len(levels) < 2 or labels is None:
        return None
    labels = np.asarray(labels).astype(int)
    numbers = _iteration_numbers(f, vid)
    if labels.size != numbers.size or labels.size == 0:
        return None
    low, high = levels[0], levels[-1]
    if not low or high < TIER_RATIO * low:
        return None
    slower = labels > 0
    top = labels == len(levels) - 1
    if slower.sum() < MIN_TIER_ITERS or slower.mean() < MIN_TIER_SHARE:
        return None
    a = f.attribution.get(vid, {})
    base = a.get("baseline_p50_ms") if a.get("baseline_kind") == "continuous" else None
    if base and high < TIER_RATIO * base:
        return None
    summary = f.tier_summaries.get(vid) or {}
    start, final = summary.get("start_tier"), summary.get("final_tier")
    if start is None:
        tail = labels[-10:][labels[-10:] >= 0]
        start, final = int(labels[0]), (int(np.bincount(tail).argmax()) if tail.size else 0)
    if start is not None and final is not None and start > 0 and final == 0:
        return None  # slow first, fast afterwards: a warm-up (``warmup-too-short``), not an idle effect
    if "onset" in summary:  # the tier module's definitions, so the finding and the tier table agree
        onset_idx, settle_idx = summary.get("onset"), summary.get("settle")
    else:
        onset_idx = int(np.flatnonzero(slower)[0])
        run = np.convolve(slower.astype(int), np.ones(3, dtype=int), mode="valid")
        hit = np.flatnonzero(run == 3)
        if hit.size:
            onset_idx = int(hit[0])
        suffix_top = np.cumsum(top[::-1])[::-1] / np.arange(top.size, 0, -1)
        cand = np.flatnonzero(top & (suffix_top >= 0.9))
        settle_idx = int(cand[0]) if cand.size else None
    return {
        "variant_id": vid, "levels_ms": levels,
        "shares": [float(np.mean(labels == k)) for k in range(len(levels))],
        "slower_share": float(slower.mean()), "low_ms": low, "high_ms": high, "baseline_ms": base,
        "ratio_high_low": high / low, "ratio_to_baseline": (high / base) if base else None,
        "onset_iteration": int(numbers[onset_idx]) if onset_idx is not None else None,
        "settle_iteration": int(numbers[settle_idx]) if settle_idx is not None else None,
        "switch_rate": float(np.mean(labels[1:] != labels[:-1])) if labels.size > 1 else 0.0,
        "slow_ranges": _ranges(numbers, slower),
        "n": int(labels.size),
    }


def gap_penalty(f: Facts, vid: int) -> dict[str, Any] | None:
    """A paced variant in which (nearly) every iteration is slower than the continuous
    baseline: its p10 latency >= GAP_RATIO (1.05) x and >= GAP_MIN_MS above the baseline p50.
    (The p10, not a tier level: a tier's mean can include part of a ramp.)"""
    a = f.attribution.get(vid, {})
    base = a.get("baseline_p50_ms")
    if a.get("baseline_kind") != "continuous" or not base:
        return None
    m = measured(f.iters, vid)
    if m.height == 0:
        return None
    p10 = _f(m["latency_ns"].cast(pl.Float64).quantile(0.10, "linear") / NS_PER_MS)
    if p10 is None or p10 < GAP_RATIO * base or p10 - base < GAP_MIN_MS:
        return None
    return {"variant_id": vid, "level_ms": p10, "baseline_ms": base, "extra_ms": p10 - base, "ratio": p10 / base,
            "p50_ms": _stat(f, vid, "p50_ms"), "tiered": tier_facts(f, vid) is not None}


def _cases(f: Facts) -> list[dict[str, Any]]:
    """Every paced variant with a slowdown (tiers and/or a gap penalty), with the decomposition
    and clock comparison that fit it: slowest vs fastest tier for tiers, variant vs baseline for
    a uniform penalty."""
    out = []
    for vid in _paced_ids(f):
        tf, gp = tier_facts(f, vid), gap_penalty(f, vid)
        if tf is None and gp is None:
            continue
        a = f.attribution.get(vid, {})
        if tf is not None and a.get("tiers"):
            dec, clock, kind = a["tiers"]["decomposition"], a["tiers"]["clock"], "tiers"
        else:
            dec, clock, kind = a.get("vs_baseline"), a.get("clock_vs_baseline"), "gap"
        if dec is None:
            continue
        out.append({"variant_id": vid, "row": _row(f, vid), "tiers": tf, "gap": gp, "kind": kind,
                    "decomposition": dec, "clock": clock, "attribution": a, "contrasts": a.get("contrasts", {}),
                    "gpu": has_gpu_times(f.iters)})
    return out


def _extra(case: dict) -> float:
    return case["decomposition"].get("extra_ms") or 0.0


def explain_clock(case: dict) -> dict[str, Any] | None:
    """The SM clock explains the slowdown: >= CLOCK_DROP (5 %) lower in the slow iterations
    (busy samples; for tiers, samples of the same variant's gap allowed) and the GPU time that
    drop implies (reference GPU time x (f_fast / f_slow - 1)) covers >= CLOCK_EXPLAINS (25 %)
    of the extra time. Flat clocks never pass."""
    c = case["clock"]
    if not c or c.get("sm_clock_drop") is None or c["sm_clock_drop"] < CLOCK_DROP:
        return None
    extra = _extra(case)
    if extra <= 0:
        return None
    fast, slow = c["fast"]["sm_clock_mhz"], c["slow"]["sm_clock_mhz"]
    dec = case["decomposition"]
    basis = dec.get("reference_gpu_ms") or dec.get("reference_ms")
    implied = basis * (fast / slow - 1.0) if basis and slow else None
    share = min(1.0, implied / extra) if implied is not None else None
    if share is None or share < CLOCK_EXPLAINS:
        return None
    return {"fast_mhz": fast, "slow_mhz": slow, "drop": c["sm_clock_drop"], "implied_extra_ms": implied,
            "explained_share": share, "busy_only": c["busy_only"], "n_slow": c["slow"]["n_clock_samples"],
            "n_fast": c["fast"]["n_clock_samples"],
            # reasons while the GPU worked when the clocks are from busy samples (GpuIdle in a gap says nothing)
            "reasons_slow": c["slow"]["reasons_busy"] if c["busy_only"] else c["slow"]["reasons"],
            "reasons_fast": c["fast"]["reasons_busy"] if c["busy_only"] else c["fast"]["reasons"],
            "corr": case["attribution"].get("clock", {}).get("corr_latency_sm_clock")}


def explain_host(case: dict) -> dict[str, Any] | None:
    """Host wake-up explains the slowdown (sleep pacing only): the busy-wait (spin) variant
    removes >= REMOVES_MOST (50 %) of the extra time; without a spin variant, >= HOST_SHARE
    (60 %) of the extra time sits in host-only steps (preprocess, postprocess) and the sync
    wait. A spin variant that removes < 50 % rules it out."""
    row = case["row"]
    if row["pacing"] != "sleep":
        return None
    c = case["contrasts"].get("spin_vs_sleep")
    dec = case["decomposition"]
    comps = dec.get("components_ms", {})
    host = sum(max(0.0, comps.get(k, 0.0)) for k in ("preprocess", "postprocess", "sync_wait"))
    extra = _extra(case)
    cpu = (case["clock"] or {}).get("cpu_freq_drop")
    if c is not None and c.get("removed_fraction") is not None:
        if c["removed_fraction"] >= REMOVES_MOST:
            return {"measured": True, "contrast": c, "host_extra_ms": host, "extra_ms": extra, "cpu_freq_drop": cpu,
                    "sync_wait_ms": comps.get("sync_wait")}
        return None
    if extra > 0 and host >= HOST_SHARE * extra:
        return {"measured": False, "contrast": None, "host_extra_ms": host, "extra_ms": extra, "cpu_freq_drop": cpu,
                "sync_wait_ms": comps.get("sync_wait")}
    return None


def explain_gpu_idle(case: dict) -> dict[str, Any] | None:
    """GPU idling explains the slowdown: the keep-alive variant removes >= REMOVES_MOST (50 %)
    of the extra time; without one, >= GPU_SHARE (60 %) of the extra time sits in GPU compute
    (and copies) while the SM clock stayed within CLOCK_DROP (measured, not assumed). A
    keep-alive variant that removes < 50 % rules it out."""
    c = case["contrasts"].get("keepalive_vs_sleep")
    extra = _extra(case)
    dec = case["decomposition"]
    gpu = dec.get("gpu_extra_ms") or 0.0
    clock = case["clock"]
    if c is not None and c.get("removed_fraction") is not None:
        if c["removed_fraction"] >= REMOVES_MOST:
            return {"measured": True, "contrast": c, "gpu_extra_ms": gpu, "extra_ms": extra}
        return None
    if case["row"]["pacing"] == "keepalive":
        return None  # the GPU was kept busy: idling cannot be the cause
    steady = clock is not None and clock.get("sm_clock_drop") is not None and abs(clock["sm_clock_drop"]) < CLOCK_DROP
    if extra > 0 and gpu >= GPU_SHARE * extra and steady:
        return {"measured": False, "contrast": None, "gpu_extra_ms": gpu, "extra_ms": extra,
                "sm_clock_mhz": clock["slow"]["sm_clock_mhz"], "baseline_sm_clock_mhz": clock["fast"]["sm_clock_mhz"]}
    return None


def _ruled_out(case: dict) -> list[str]:
    out = []
    for key, what in (("spin_vs_sleep", "busy-waiting (CPU wake-up)"), ("keepalive_vs_sleep", "keep-alive (GPU idling)"),
                      ("graph_vs_eager", "a CUDA graph (launch overhead)")):
        c = case["contrasts"].get(key)
        if c and c.get("removed_fraction") is not None and c["removed_fraction"] < RULED_OUT:
            r = c["removed_fraction"]
            out.append(f"{what} does not remove it ({_pct(r)})" if r < 0.05 else f"{what} removes only {_pct(r)} of it")
    return out


def _explained(case: dict) -> bool:
    return bool(explain_clock(case) or explain_host(case) or explain_gpu_idle(case))


def _diagnosis(case: dict) -> str:
    parts = []
    if explain_clock(case):
        parts.append("the SM clock dropped")
    if explain_host(case):
        parts.append("the host wakes up late")
    if explain_gpu_idle(case):
        parts.append("the GPU idles between frames")
    dec = case["decomposition"]
    dom = dec.get("dominant_step")
    text = ""
    if dom:
        text = f"The extra time sits mostly in {component_label(dom, case.get('gpu', True))} ({_pct(dec.get('dominant_share'))})."
    if parts:
        text += " Explained by: " + "; ".join(parts) + " (see the findings below)."
    ruled = _ruled_out(case)
    if ruled:
        text += " Ruled out by this run: " + "; ".join(ruled) + "."
        if dom == "infer_host" and case.get("gpu", True) and any("busy-waiting" in r for r in ruled):
            text += (" With the CPU kept awake the enqueue is still slow, so the submission path (driver and GPU "
                     "front end coming out of idle) is the likely cause.")
    if not parts and not ruled:
        text += " This run has no variant that isolates the mechanism."
    return text.strip()


def _contrast_mitigations(case: dict, *, clock: bool, max_clock: tuple[float | None, str] | None = None) -> list[Mitigation]:
    """Mitigations for an idle slowdown: measured ones that helped first, untested ones after;
    measured ones that did not help are left out (they are in the diagnosis)."""
    cs = case["contrasts"]
    gpu = case.get("gpu", True)
    helped, untested = [], []
    for key, make in (("spin_vs_sleep", m_busy_wait), ("keepalive_vs_sleep", m_keepalive)):
        if key == "keepalive_vs_sleep" and not gpu:
            continue  # nothing to keep busy on a host backend
        c = cs.get(key)
        if c is None or c.get("removed_fraction") is None:
            if case["row"]["pacing"] == "sleep":
                untested.append(make(None))
        elif c["removed_fraction"] >= RULED_OUT:
            helped.append((c["removed_fraction"], make(c)))
    g = cs.get("graph_vs_eager")
    if g is not None and g.get("removed_fraction") is not None:
        if g["removed_fraction"] >= RULED_OUT:
            helped.append((g["removed_fraction"], m_cuda_graph(
                f"graph {_ms(g['alt_p50_ms'])} vs eager {_ms(g['ref_p50_ms'])} p50 at the same gap; removes "
                f"{_pct(g['removed_fraction'])} of the gap's extra time", True)))
    elif gpu and case["row"]["launch"] == "eager" and case["decomposition"].get("dominant_step") == "infer_host":
        untested.append(m_cuda_graph())
    out = [m for _, m in sorted(helped, key=lambda x: -x[0])]
    if clock:
        out.insert(0, m_lock_clocks(max_clock))
    if any(r >= REMOVES_MOST for r, _ in helped):
        untested = []  # a measured fix exists: do not pad the list with guesses
    return out + untested + ([m_pipelining()] if gpu else [])


def _measure_flags(f: Facts) -> str | None:
    """Flags for the variants that would isolate the mechanism and this run lacks (keep-alive
    and CUDA graphs only on GPU runs)."""
    from tracegen.analysis.attribution import has_gpu_times

    gpu = has_gpu_times(f.iters)
    pac = set(f.variants["pacing"].to_list())
    launch = set(f.variants["launch"].to_list())
    want = {"sleep", "spin", "keepalive"} if gpu else {"sleep", "spin"}
    need = []
    if not want <= pac:
        need.append("--pacing " + ",".join(sorted(want)))
    if gpu and "graph" not in launch:
        need.append("--launch eager,graph")
    return " ".join(need) or None


_STEP_OF = {"preprocess": "preprocess", "h2d": "h2d", "infer_host": "infer", "infer_gpu": "infer", "d2h": "d2h",
            "sync_wait": "sync", "postprocess": "postprocess"}


def _focus_steps(case: dict | None, default: tuple[str, ...] = ("infer", "sync")) -> tuple[str, ...]:
    """NVTX step categories to open: the step carrying the extra time first."""
    dom = ((case or {}).get("decomposition") or {}).get("dominant_step")
    if not dom:
        return default
    first = _STEP_OF[dom]
    return (first,) + tuple(s for s in default if s != first)


def _per_variant_tiers(f: Facts, tfs: list[dict]) -> list[dict]:
    rows = []
    for t in tfs:
        r = _row(f, t["variant_id"])
        rows.append({"variant": r["name"], "gap_ms": r["idle_ms"], "pacing": r["pacing"],
                     "levels_ms": " / ".join(f"{x:.3g}" for x in t["levels_ms"]),
                     "slower_share": t["slower_share"], "onset_iteration": t["onset_iteration"],
                     "settle_iteration": t["settle_iteration"], "ratio_to_baseline": t["ratio_to_baseline"]})
    return rows


def rule_idle_tiers(f: Facts) -> Finding | None:
    """``idle-delay-tiers``: a paced variant whose latency has >= 2 tiers with the slowest
    >= TIER_RATIO (1.15x) the fastest and the continuous baseline, the slower tiers holding
    >= 5 % (and >= 5) of the measured iterations (``tier_facts``). Critical when the slowest tier
    is >= TIER_CRITICAL (1.5x) the baseline (or the fastest tier, without a baseline)."""
    tfs = [t for t in (tier_facts(f, vid) for vid in _paced_ids(f)) if t is not None]
    if not tfs:
        return None
    # headline: the worst sleep-paced variant (what applications do; it carries the contrasts), else the worst
    tfs.sort(key=lambda t: (_row(f, t["variant_id"])["pacing"] != "sleep",
                            -(t["ratio_to_baseline"] or t["ratio_high_low"]), t["variant_id"]))
    t = tfs[0]
    vid = t["variant_id"]
    row = _row(f, vid)
    ratio = t["ratio_to_baseline"] or t["ratio_high_low"]
    severity = "critical" if ratio >= TIER_CRITICAL else "warning"
    case = next((c for c in _cases(f) if c["variant_id"] == vid), None)
    levels = " -> ".join(_ms(x) for x in t["levels_ms"])
    shape = "alternates between" if t["switch_rate"] > 0.25 else "moves through"
    summary = (f"With a {_gap_label(row)} before each inference ({row['name']}), latency {shape} "
               f"{len(t['levels_ms'])} tiers: {levels}. The slowest tier is {t['ratio_high_low']:.2f}x the fastest")
    if t["baseline_ms"]:
        summary += f" and {t['ratio_to_baseline']:.2f}x the continuous baseline ({_ms(t['baseline_ms'])})"
    if t["onset_iteration"] is not None:
        summary += (f"; slower tiers start at iteration {t['onset_iteration']}"
                    + (f" and the slowest holds from iteration {t['settle_iteration']}"
                       if t["settle_iteration"] is not None else "")
                    + f" ({_pct(t['slower_share'])} of measured iterations).")
    else:
        summary += (f"; the slow iterations ({_pct(t['slower_share'])}) are at iterations "
                    f"{_fmt_ranges(t['slow_ranges'])}.")
    if len(tfs) > 1:
        summary += f" {len(tfs)} paced variants show tiers."
    if case:
        summary += " " + _diagnosis(case)
    mitigations = (_contrast_mitigations(case, clock=bool(explain_clock(case)), max_clock=_max_sm_clock(f)) if case
                   else [m_pipelining()] if has_gpu_times(f.iters) else [])
    flags = _measure_flags(f)
    if flags and not (case and _explained(case)):
        mitigations.append(m_measure(flags))
    variants = [x["variant_id"] for x in tfs]
    base = f.attribution.get(vid, {}).get("baseline_id")
    if base is not None and f.attribution[vid].get("baseline_kind") == "continuous":
        variants.insert(1, base)
    first = t["slow_ranges"][0] if t["slow_ranges"] else None
    fast_hint = None
    if first:
        numbers = _iteration_numbers(f, vid)
        fast_hint = f"iterations {int(numbers[0])}-{max(int(numbers[0]), first[0] - 1)} of the same range (fast tier)"
    return Finding(
        id="idle-delay-tiers", severity=severity,
        title=f"Latency tiers after a {row['idle_ms']:g} ms gap: {_ms(t['low_ms'])} -> {_ms(t['high_ms'])} ({ratio:.2f}x)",
        summary=summary,
        evidence={"gap_ms": row["idle_ms"], "pacing": row["pacing"], "levels_ms": t["levels_ms"],
                  "shares": t["shares"], "slowest_ms": t["high_ms"], "fastest_ms": t["low_ms"],
                  "baseline_ms": t["baseline_ms"], "ratio_to_baseline": t["ratio_to_baseline"],
                  "ratio_slowest_fastest": t["ratio_high_low"], "onset_iteration": t["onset_iteration"],
                  "settle_iteration": t["settle_iteration"], "slower_share": t["slower_share"],
                  "dominant_step": (case or {}).get("decomposition", {}).get("dominant_step"),
                  "threshold": f"slowest tier >= {TIER_RATIO}x the fastest and the baseline; critical from {TIER_CRITICAL}x",
                  "per_variant": _per_variant_tiers(f, tfs)},
        variants=tuple(dict.fromkeys(variants)), iterations=t["slow_ranges"], mitigations=tuple(mitigations),
        nsys_hint=nsys_hint(f, vid, t["slow_ranges"][:2], _focus_steps(case), compare=fast_hint),
        chart="latency_trace")


def rule_slow_after_gap(f: Facts) -> Finding | None:
    """``slow-after-gap``: with pacing every iteration follows a gap, so "the first iteration
    after a gap" is every iteration of a paced variant, measured against the continuous baseline
    (the gap starts at the iteration's idle step; the work after it is the iteration's latency):
    the paced variant's p10 >= GAP_RATIO (1.05x) and >= GAP_MIN_MS (0.05 ms) above the baseline
    p50 (``gap_penalty``). Warning from GAP_WARNING (1.25x), info below."""
    gps = [g for g in (gap_penalty(f, vid) for vid in _paced_ids(f)) if g is not None]
    if not gps:
        return None
    gps.sort(key=lambda g: (_row(f, g["variant_id"])["pacing"] != "sleep", -g["ratio"], g["variant_id"]))
    g = gps[0]
    vid = g["variant_id"]
    row = _row(f, vid)
    a = f.attribution.get(vid, {})
    dec = a.get("vs_baseline") or {}
    case = {"variant_id": vid, "row": row, "decomposition": dec, "clock": a.get("clock_vs_baseline"),
            "attribution": a, "contrasts": a.get("contrasts", {}), "tiers": None, "gap": g, "kind": "gap",
            "gpu": has_gpu_times(f.iters)}
    per_gap = []
    for x in sorted(gps, key=lambda x: (_row(f, x["variant_id"])["idle_ms"], x["variant_id"])):
        r = _row(f, x["variant_id"])
        per_gap.append({"variant": r["name"], "gap_ms": r["idle_ms"], "pacing": r["pacing"], "p10_ms": x["level_ms"],
                        "baseline_ms": x["baseline_ms"], "extra_ms": x["extra_ms"], "ratio": x["ratio"],
                        "dominant_step": (f.attribution.get(x["variant_id"], {}).get("vs_baseline") or {}).get("dominant_step")})
    summary = (f"Inferences after a {_gap_label(row)} take {_ms(g['p50_ms'])} (p50) against {_ms(g['baseline_ms'])} "
               f"back to back; even the fastest 10 % take {_ms(g['level_ms'])} (+{_ms(g['extra_ms'])}, {g['ratio']:.2f}x), "
               f"so the gap itself costs time on every frame, not only in slow tiers. " + _diagnosis(case))
    severity = "warning" if g["ratio"] >= GAP_WARNING else "info"
    mitigations = _contrast_mitigations(case, clock=bool(explain_clock(case)), max_clock=_max_sm_clock(f))
    flags = _measure_flags(f)
    if flags and not _explained(case):
        mitigations.append(m_measure(flags))
    numbers = _iteration_numbers(f, vid)
    its = ((int(numbers[0]), int(numbers[-1])),) if numbers.size else ()
    base = a.get("baseline_id")
    return Finding(
        id="slow-after-gap", severity=severity,
        title=f"Inferences after a {row['idle_ms']:g} ms gap are {g['ratio']:.2f}x slower than back to back",
        summary=summary,
        evidence={"gap_ms": row["idle_ms"], "pacing": row["pacing"], "p50_ms": g["p50_ms"], "p10_ms": g["level_ms"],
                  "baseline_ms": g["baseline_ms"], "extra_ms": g["extra_ms"], "ratio": g["ratio"],
                  "dominant_step": dec.get("dominant_step"), "dominant_share": dec.get("dominant_share"),
                  "threshold": f"p10 >= {GAP_RATIO}x and >= {GAP_MIN_MS} ms above the continuous baseline p50",
                  "per_variant": per_gap},
        variants=tuple(dict.fromkeys([vid] + ([base] if base is not None else []) + [x["variant_id"] for x in gps])),
        iterations=its, mitigations=tuple(mitigations),
        nsys_hint=nsys_hint(f, vid, ((int(numbers[0]), int(numbers[min(4, numbers.size - 1)])),) if numbers.size else (),
                            _focus_steps(case, ("idle", "infer", "sync")),
                            compare=f'the range "{_name(f, base)}" (no gap)' if base is not None else None),
        chart="step_breakdown")


def _explained_finding(f: Facts, fid: str, hits: list[tuple[dict, dict]], title: Callable[[dict, dict], str],
                       summary: Callable[[dict, dict], str], evidence: Callable[[dict, dict], dict],
                       mitigations: Callable[[dict, dict], list[Mitigation]], steps: tuple[str, ...],
                       chart: str, per_variant: Callable[[dict, dict], dict]) -> Finding:
    case, ex = hits[0]
    vid = case["variant_id"]
    tf = case["tiers"]
    its = tf["slow_ranges"] if tf else ()
    s = summary(case, ex)
    if len(hits) > 1:
        s += f" The same holds in {len(hits) - 1} more paced variant{'s' if len(hits) > 2 else ''}."
    ev = evidence(case, ex)
    ev["per_variant"] = [per_variant(c, e) for c, e in hits]
    base = case["attribution"].get("baseline_id")
    variants = [c["variant_id"] for c, _ in hits]
    if base is not None:
        variants.insert(1, base)
    return Finding(
        id=fid, severity="warning", title=title(case, ex), summary=s, evidence=ev,
        variants=tuple(dict.fromkeys(variants)), iterations=its, mitigations=tuple(mitigations(case, ex)),
        nsys_hint=nsys_hint(f, vid, its[:2], steps,
                            compare=f'the range "{_name(f, base)}" (no gap)' if base is not None else None),
        chart=chart)


def _hits(f: Facts, explain: Callable[[dict], dict | None]) -> list[tuple[dict, dict]]:
    hits = [(c, e) for c in _cases(f) for e in [explain(c)] if e is not None]
    hits.sort(key=lambda h: (h[0]["row"]["pacing"] != "sleep", -_extra(h[0]), h[0]["variant_id"]))
    return hits


def rule_explained_gpu_clock(f: Facts) -> Finding | None:
    """``explained-gpu-clock``: an idle slowdown (tiers or gap penalty) with the SM clock
    >= CLOCK_DROP (5 %) lower in the slow iterations and that drop accounting for
    >= CLOCK_EXPLAINS (25 %) of the extra time (``explain_clock``). Never fires on flat clocks,
    whatever the clock-event reasons say (the H100 reports GpuIdle at rest at full clock)."""
    hits = _hits(f, explain_clock)
    if not hits:
        return None
    max_clk = _max_sm_clock(f)

    def title(c, e):
        return f"SM clock drops from {e['fast_mhz']:.0f} to {e['slow_mhz']:.0f} MHz in the slow iterations"

    def summary(c, e):
        where = "slow tier" if c["kind"] == "tiers" else "paced iterations"
        text = (f"In {c['row']['name']}, the SM clock in the {where} is {e['slow_mhz']:.0f} MHz against "
                f"{e['fast_mhz']:.0f} MHz ({_pct(e['drop'])} lower; {e['n_slow']} and {e['n_fast']} NVML samples"
                f"{', taken while the GPU worked' if e['busy_only'] else ', including samples in the gap'}). "
                f"At that clock the GPU work needs about {_ms(e['implied_extra_ms'])} more, "
                + (f"enough for all of the {_ms(_extra(c))} extra time" if e["explained_share"] >= 1.0 else
                   f"{_pct(e['explained_share'])} of the {_ms(_extra(c))} extra time")
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
                "implied_extra_ms": e["implied_extra_ms"], "extra_ms": _extra(c), "explained_share": e["explained_share"],
                "corr_latency_sm_clock": e["corr"], "samples_slow": e["n_slow"], "samples_fast": e["n_fast"],
                "reasons_slow": ", ".join(f"{REASON_LABELS[k]} {_pct(v)}" for k, v in e["reasons_slow"].items()) or "none",
                "threshold": f"SM clock >= {CLOCK_DROP:.0%} lower and explaining >= {CLOCK_EXPLAINS:.0%} of the extra time"}

    def mitigations(c, e):
        out = [m_lock_clocks(max_clk)]
        k = c["contrasts"].get("keepalive_vs_sleep")
        if k is None or (k.get("removed_fraction") is not None and k["removed_fraction"] >= RULED_OUT):
            out.append(m_keepalive(k))
        out.append(m_pipelining())
        return out

    def per_variant(c, e):
        return {"variant": c["row"]["name"], "sm_clock_fast_mhz": e["fast_mhz"], "sm_clock_slow_mhz": e["slow_mhz"],
                "explained_share": e["explained_share"]}

    return _explained_finding(f, "explained-gpu-clock", hits, title, summary, evidence, mitigations,
                              ("infer", "sync"), "clock_vs_latency", per_variant)


def _sync_evidence(f: Facts, vid: int) -> tuple[str | None, bool]:
    """p50 of the same variant under the other sync modes this run measured."""
    from tracegen.analysis.attribution import find_sibling

    row = _row(f, vid)
    parts = []
    for mode in ("spin", "yield", "blocking", "auto"):
        if mode == row["sync_mode"]:
            continue
        sib = find_sibling(f.variants, vid, sync_mode=mode)
        p = _stat(f, sib, "p50_ms") if sib is not None else None
        if p is not None:
            parts.append(f"sync-{mode} {_ms(p)}")
    if not parts:
        return None, False
    return f"p50 sync-{row['sync_mode']} {_ms(_stat(f, vid, 'p50_ms'))} vs " + ", ".join(parts), True


def rule_explained_host_wakeup(f: Facts) -> Finding | None:
    """``explained-host-wakeup``: an idle slowdown of a sleep-paced variant that busy-waiting
    removes (>= 50 % of the extra time), or, without a spin variant, whose extra time sits
    >= 60 % in host-only steps and the sync wait (``explain_host``)."""
    hits = _hits(f, explain_host)
    if not hits:
        return None

    def title(c, e):
        if e["measured"]:
            return f"Host wake-up after sleep: busy-waiting removes {_pct(e['contrast']['removed_fraction'])} of the extra time"
        return f"Host wake-up after sleep: {_pct(e['host_extra_ms'] / e['extra_ms'])} of the extra time is on the host"

    def summary(c, e):
        if e["measured"]:
            k = e["contrast"]
            text = (f"After a {_gap_label(c['row'])}, latency is {_ms(k['ref_p50_ms'])} p50; with a busy-wait instead "
                    f"of sleep it is {_ms(k['alt_p50_ms'])} ({k['ratio_of_medians']:.2f}x), removing "
                    f"{_pct(k['removed_fraction'])} of the {_ms(k['ref_extra_ms'])} the gap adds. ")
        else:
            text = (f"After a {_gap_label(c['row'])}, {_ms(e['host_extra_ms'])} of the {_ms(e['extra_ms'])} extra time "
                    f"sits in host steps (pre/postprocess and the sync wait), not on the GPU. ")
        text += "The sleeping thread's core drops into an idle state and lower frequency, and pays to come back."
        if e.get("cpu_freq_drop") is not None and e["cpu_freq_drop"] >= 0.05:
            text += f" The CPU frequency was {_pct(e['cpu_freq_drop'])} lower in the slow iterations."
        if e.get("sync_wait_ms") and e["extra_ms"] > 0 and e["sync_wait_ms"] >= 0.3 * e["extra_ms"]:
            text += " Much of it is the sync wait: the thread wakes late from waiting for the GPU."
        return text

    def evidence(c, e):
        ev = {"gap_ms": c["row"]["idle_ms"], "extra_ms": e["extra_ms"], "host_extra_ms": e["host_extra_ms"],
              "measured_by_spin_variant": e["measured"],
              "threshold": f"spin removes >= {REMOVES_MOST:.0%} of the extra time, or (no spin variant) "
                           f">= {HOST_SHARE:.0%} of it in host steps"}
        if e["measured"]:
            k = e["contrast"]
            ev.update(sleep_p50_ms=k["ref_p50_ms"], spin_p50_ms=k["alt_p50_ms"], removed_fraction=k["removed_fraction"])
        if e.get("cpu_freq_drop") is not None:
            ev["cpu_freq_drop"] = e["cpu_freq_drop"]
        return ev

    def mitigations(c, e):
        out = [m_busy_wait(e["contrast"]), m_cpu_power()]
        if e.get("sync_wait_ms") and e["extra_ms"] > 0 and e["sync_wait_ms"] >= 0.3 * e["extra_ms"]:
            out.append(m_sync_mode(*_sync_evidence(f, c["variant_id"])))
        return out

    def per_variant(c, e):
        k = e["contrast"] or {}
        return {"variant": c["row"]["name"], "extra_ms": e["extra_ms"], "host_extra_ms": e["host_extra_ms"],
                "removed_by_spin": k.get("removed_fraction")}

    return _explained_finding(f, "explained-host-wakeup", hits, title, summary, evidence, mitigations,
                              ("idle", "preprocess", "sync"), "step_breakdown", per_variant)


def rule_explained_gpu_idling(f: Facts) -> Finding | None:
    """``explained-gpu-idling``: an idle slowdown that keep-alive pacing removes (>= 50 % of the
    extra time), or, without a keep-alive variant, whose extra time sits >= 60 % in GPU compute
    while the SM clock stayed within 5 % (``explain_gpu_idle``)."""
    hits = _hits(f, explain_gpu_idle)
    if not hits:
        return None

    def title(c, e):
        if e["measured"]:
            return f"GPU idling: keeping the GPU busy removes {_pct(e['contrast']['removed_fraction'])} of the extra time"
        return "GPU idling: the extra time is GPU compute at an unchanged clock"

    def summary(c, e):
        if e["measured"]:
            k = e["contrast"]
            text = (f"After a {_gap_label(c['row'])}, latency is {_ms(k['ref_p50_ms'])} p50; keeping the GPU busy during "
                    f"the gap gives {_ms(k['alt_p50_ms'])} ({k['ratio_of_medians']:.2f}x), removing "
                    f"{_pct(k['removed_fraction'])} of the {_ms(k['ref_extra_ms'])} the gap adds. ")
        else:
            text = (f"After a {_gap_label(c['row'])}, {_ms(e['gpu_extra_ms'])} of the {_ms(e['extra_ms'])} extra time is "
                    f"GPU compute while the SM clock stayed at {e['sm_clock_mhz']:.0f} MHz "
                    f"({e['baseline_sm_clock_mhz']:.0f} MHz reference). ")
        text += ("An idle GPU leaves its working state (power gating, caches and TLBs cold, memory clock down) and "
                 "the first work after the gap pays to restore it.")
        return text

    def evidence(c, e):
        ev = {"gap_ms": c["row"]["idle_ms"], "extra_ms": e["extra_ms"], "gpu_extra_ms": e["gpu_extra_ms"],
              "measured_by_keepalive_variant": e["measured"],
              "threshold": f"keepalive removes >= {REMOVES_MOST:.0%} of the extra time, or (no keepalive variant) "
                           f">= {GPU_SHARE:.0%} of it in GPU compute with the SM clock within {CLOCK_DROP:.0%}"}
        if e["measured"]:
            k = e["contrast"]
            ev.update(sleep_p50_ms=k["ref_p50_ms"], keepalive_p50_ms=k["alt_p50_ms"], removed_fraction=k["removed_fraction"])
        else:
            ev.update(sm_clock_mhz=e["sm_clock_mhz"], baseline_sm_clock_mhz=e["baseline_sm_clock_mhz"])
        return ev

    def mitigations(c, e):
        return [m_keepalive(e["contrast"]), m_pipelining(), m_batching()]

    def per_variant(c, e):
        k = e["contrast"] or {}
        return {"variant": c["row"]["name"], "extra_ms": e["extra_ms"], "gpu_extra_ms": e["gpu_extra_ms"],
                "removed_by_keepalive": k.get("removed_fraction")}

    return _explained_finding(f, "explained-gpu-idling", hits, title, summary, evidence, mitigations,
                              ("infer", "sync"), "step_breakdown", per_variant)


# -- warm-up, caps -----------------------------------------------------------------------------------------
def warmup_excess(f: Facts, vid: int) -> dict[str, Any] | None:
    """Slow first measured iterations of a variant (>= MIN_WARMUP_POINTS measured): the first
    change point c lies within the first third and median(first c) >= WARMUP_RATIO (1.10) x
    median(rest); or the first >= 2 measured iterations are each >= WARMUP_SPIKE (1.5) x the
    median; or the first alone is >= WARMUP_FIRST (2) x the median."""
    m = measured(f.iters, vid)
    if m.height < MIN_WARMUP_POINTS:
        return None
    y = m["latency_ns"].cast(pl.Float64).to_numpy() / 1e6
    med = float(np.median(y))
    count = None
    cps = [c for c in f.changepoints.get(vid, []) if 0 < c < y.size]
    if cps and cps[0] <= WARMUP_MAX_FRACTION * y.size:
        c = cps[0]
        if np.median(y[:c]) >= WARMUP_RATIO * np.median(y[c:]):
            count = c
    if count is None:
        spike = y >= WARMUP_SPIKE * med
        k = int(np.argmin(spike)) if not spike.all() else y.size
        if k >= 2 and k <= WARMUP_MAX_FRACTION * y.size:
            count = k
        elif y[0] >= WARMUP_FIRST * med:
            count = 1
    if count is None:
        return None
    numbers = m["iteration"].to_numpy()
    rest = float(np.median(y[count:]))
    return {"variant_id": vid, "slow_iterations": count, "first_ms": float(np.median(y[:count])), "steady_ms": rest,
            "ratio": float(np.median(y[:count])) / rest if rest else None,
            "excess_ms": float(np.sum(y[:count] - rest)), "warmup": int(_row(f, vid)["warmup"] or 0),
            "range": (int(numbers[0]), int(numbers[count - 1]))}


def rule_warmup_too_short(f: Facts) -> Finding | None:
    """``warmup-too-short``: some variant's first measured iterations are still slow
    (``warmup_excess``)."""
    hits = [h for h in (warmup_excess(f, vid) for vid in _continuous_ids(f) + _paced_ids(f)) if h is not None]
    if not hits:
        return None
    hits.sort(key=lambda h: (-h["excess_ms"], h["variant_id"]))
    h = hits[0]
    vid = h["variant_id"]
    need = h["warmup"] + h["slow_iterations"]
    suggest = int(max(10, 10 ** math.ceil(math.log10(need)) if need <= 10 else math.ceil(2 * need / 10) * 10))
    return Finding(
        id="warmup-too-short", severity="warning",
        title=f"Warm-up too short: the first {h['slow_iterations']} measured iterations are {h['ratio']:.2f}x slower",
        summary=(f"In {_name(f, vid)}, after {h['warmup']} warm-up iterations, the first {h['slow_iterations']} measured "
                 f"iterations (iterations {h['range'][0]}-{h['range'][1]}) take {_ms(h['first_ms'])} against "
                 f"{_ms(h['steady_ms'])} afterwards. They inflate the statistics, and in production the first "
                 f"requests after start-up pay the same."
                 + (f" {len(hits)} variants are affected." if len(hits) > 1 else "")),
        evidence={"warmup": h["warmup"], "slow_iterations": h["slow_iterations"], "first_ms": h["first_ms"],
                  "steady_ms": h["steady_ms"], "ratio": h["ratio"], "suggested_warmup": suggest,
                  "threshold": (f"first change point within the first third and >= {WARMUP_RATIO}x the rest, or the first "
                                f"2+ iterations >= {WARMUP_SPIKE}x the median, or the first >= {WARMUP_FIRST}x"),
                  "per_variant": [{"variant": _name(f, x["variant_id"]), "slow_iterations": x["slow_iterations"],
                                   "first_ms": x["first_ms"], "steady_ms": x["steady_ms"], "ratio": x["ratio"]} for x in hits]},
        variants=tuple(x["variant_id"] for x in hits), iterations=(h["range"],),
        mitigations=(m_warmup(suggest),),
        nsys_hint=nsys_hint(f, vid, (h["range"],), ("infer", "sync"),
                            compare="later iterations of the same range: look for allocations, module loads or autotuning"),
        chart="latency_trace")


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
    for name in CAP_REASONS:
        hit = (r & np.uint64(REASON_BITS[name])) != 0
        if hit.sum() >= MIN_CAP_SAMPLES and hit.mean() >= CAP_SHARE:
            active[name] = float(hit.mean())
    if not active:
        return None
    mask = np.zeros(r.size, dtype=bool)
    for name in active:
        mask |= (r & np.uint64(REASON_BITS[name])) != 0
    hit_rows = s.filter(pl.Series(mask))
    per = (hit_rows.group_by("variant_id").agg(pl.len().alias("samples"), pl.col("iteration").min().alias("first"),
                                               pl.col("iteration").max().alias("last"))
           .join(s.group_by("variant_id").agg(pl.len().alias("total")), on="variant_id").sort("samples", descending=True))
    critical = any(n in active for n in HW_REASONS + THERMAL_REASONS)
    temp = _f(s["temperature_c"].max()) if "temperature_c" in s.columns else None
    power = _f(hit_rows["power_w"].median()) if "power_w" in hit_rows.columns else None
    gpu = f.manifest.get("gpu") or {}
    limit = next((_f(v) for k, v in gpu.items() if "power" in k.lower() and "limit" in k.lower() and _f(v)), None)
    names = ", ".join(f"{REASON_LABELS[n]} ({_pct(v)} of samples)" for n, v in active.items())
    vid = per["variant_id"][0]
    mitigations = []
    if any(n in active for n in THERMAL_REASONS + ("hw_slowdown",)):
        mitigations.append(m_cooling())
    if any(n in active for n in POWER_REASONS + ("hw_slowdown",)):
        mitigations.append(m_power_limit(None))
    mitigations.append(Mitigation(
        title="Cap the clock below the throttling point for steady latency",
        action="sudo nvidia-smi -lgc <sustainable>,<sustainable>   # e.g. the median SM clock under load; undo: sudo nvidia-smi -rgc",
        expected_effect="a slightly lower but constant clock instead of bursts and throttling, so latency stops drifting",
        cost="needs root; lower peak throughput", measured=False))
    summary = (f"During measured iterations the GPU reported {names}: it was held below its clocks by "
               f"{'hardware or thermal protection' if critical else 'its power limit'}, so latency depends on power "
               f"and temperature rather than the model alone.")
    if temp is not None:
        summary += f" Peak temperature {temp:.0f} °C."
    if power is not None:
        summary += f" Median power while capped {power:.0f} W" + (f" (limit {limit:.0f} W)." if limit else ".")
    return Finding(
        id="power-thermal-cap", severity="critical" if critical else "warning",
        title=("Thermal or hardware slowdown during the benchmark" if critical else "Power cap active during the benchmark"),
        summary=summary,
        evidence={**{f"{k}_share": v for k, v in active.items()}, "max_temperature_c": temp, "median_power_w_capped": power,
                  "power_limit_w": limit,
                  "threshold": f"a cap reason in >= {CAP_SHARE:.0%} (and >= {MIN_CAP_SAMPLES}) of the GPU samples of measured iterations",
                  "per_variant": [{"variant": _name(f, r["variant_id"]), "capped_samples": r["samples"], "samples": r["total"],
                                   "iterations": f"{r['first']}-{r['last']}"} for r in per.iter_rows(named=True)]},
        variants=tuple(int(v) for v in per["variant_id"].to_list()),
        iterations=((int(per["first"][0]), int(per["last"][0])),),
        mitigations=tuple(mitigations),
        nsys_hint=nsys_hint(f, vid, ((int(per["first"][0]), int(per["last"][0])),), ("infer",),
                            compare="the GPU metrics rows (nsys profile --gpu-metrics-devices=all) for clock and power"),
        chart="clock_vs_latency")


# Every finding id (one template each: templates/findings/<id>.html).
FINDING_IDS = (
    "batch-saturated-at-batch-1", "batch-budget", "enqueue-bound", "transfer-bound", "unstable-gpu-time",
    "idle-delay-tiers", "slow-after-gap", "explained-gpu-clock", "explained-host-wakeup", "explained-gpu-idling",
    "warmup-too-short", "power-thermal-cap",
)

RULES: tuple[Callable[[Facts], Finding | None], ...] = (
    rule_batch_saturated, rule_batch_budget, rule_enqueue_bound, rule_transfer_bound, rule_unstable_gpu_time,
    rule_idle_tiers, rule_slow_after_gap, rule_explained_gpu_clock, rule_explained_host_wakeup,
    rule_explained_gpu_idling, rule_warmup_too_short, rule_power_thermal_cap,
)


def run_rules(f: Facts) -> list[Finding]:
    out = []
    for rule in RULES:
        r = rule(f)
        if r is None:
            continue
        out.extend(r if isinstance(r, (list, tuple)) else [r])
    return out
