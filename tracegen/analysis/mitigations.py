"""Mitigations as data: what to do about a finding, with the exact command or code, its
expected effect and its cost. ``advise(key, on=facts, ...)`` turns an entry into a
``Mitigation`` for one finding, filling the ``{placeholders}`` of its action and saying what
this run measured.

Advice fits the run: an entry ``key@backend`` (``torch``, ``tensorrt``, ``onnxruntime``) or
``key@cpu`` / ``key@gpu`` replaces ``key`` for runs of that backend or device (``advise`` picks
the most specific one). The plain entries are written for TensorRT on a GPU, the DESIGN's
first backend.
"""

from __future__ import annotations

from typing import Any

from tracegen.analysis.model import Mitigation
from tracegen.units import ms_text, pct_text

# key -> (title, action, expected effect, cost); actions may hold {placeholders} for ``advise``.
ADVICE: dict[str, tuple[str, str, str, str]] = {
    "lock_clocks": (
        "Lock the GPU clocks",
        "sudo nvidia-smi -lgc {clk},{clk}   {note}\n"
        "# undo: sudo nvidia-smi -rgc\n"
        "# supported clocks: nvidia-smi -q -d SUPPORTED_CLOCKS   (Jetson: sudo jetson_clocks)",
        "the clock governor can no longer lower the SM clock at low duty cycle, so latency stays at the continuous "
        "level between frames",
        "needs root and persists until -rgc or reboot; the GPU draws more power and runs warmer while idle; applies "
        "to every process on the GPU; not supported on every board"),
    "busy_wait": (
        "Busy-wait instead of sleeping between frames",
        "import time\n"
        "def wait_until(deadline_ns, spin_ns=2_000_000):\n"
        "    # sleep most of the gap, spin the last 2 ms so the core is awake and at frequency\n"
        "    remaining = deadline_ns - time.perf_counter_ns()\n"
        "    if remaining > spin_ns:\n"
        "        time.sleep((remaining - spin_ns) / 1e9)\n"
        "    while time.perf_counter_ns() < deadline_ns:\n"
        "        pass\n"
        "# measure it: tracegen run --scenario idle --pacing sleep,spin",
        "the host thread does not pay the CPU wake-up (C-state exit, frequency ramp, scheduler latency) before the "
        "next inference",
        "one CPU core busy for the spun part of every gap (power, heat, less CPU for other threads)"),
    "keepalive": (
        "Keep the GPU busy during the gap",
        "tracegen run --scenario idle --pacing keepalive   # measures it\n"
        "# in the application (PyTorch): cheap work on a side stream until the next frame\n"
        "import torch, time\n"
        "side = torch.cuda.Stream()\n"
        "buf = torch.zeros(1 << 16, device='cuda')\n"
        "def keep_busy_until(deadline_s):\n"
        "    with torch.cuda.stream(side):\n"
        "        while time.perf_counter() < deadline_s - 0.001:\n"
        "            buf.add_(1.0)        # a tiny kernel on the side stream\n"
        "            side.synchronize()   # one at a time, so the next frame never queues behind many\n",
        "the GPU never sees an idle period, so it does not drop into a low-power state or lower its clocks between "
        "frames",
        "the GPU draws power during the gap; a CPU thread drives the side stream; the side-stream work can delay "
        "the real inference by up to one tiny kernel"),
    "cuda_graph": (
        "Launch the network as a CUDA graph",
        "tracegen run --launch eager,graph   # measures it\n"
        "# TensorRT (cuda-python): capture execute_async_v3 once, replay it per frame\n"
        "from cuda.bindings import runtime as cudart   # older cuda-python: from cuda import cudart\n"
        "context.execute_async_v3(stream.handle)        # one normal launch first (shapes, allocations)\n"
        "stream.synchronize()\n"
        "cudart.cudaStreamBeginCapture(stream.handle, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal)\n"
        "context.execute_async_v3(stream.handle)\n"
        "_, graph = cudart.cudaStreamEndCapture(stream.handle)\n"
        "_, graph_exec = cudart.cudaGraphInstantiate(graph, 0)\n"
        "cudart.cudaGraphLaunch(graph_exec, stream.handle)   # per frame, instead of execute_async_v3\n"
        "# PyTorch: g = torch.cuda.CUDAGraph(); with torch.cuda.graph(g): out = model(static_in); then g.replay()",
        "one launch per inference instead of one per kernel: the host enqueue shrinks to tens of microseconds and "
        "the GPU no longer waits for Python",
        "fixed input shapes and buffer addresses (re-capture on change); capture code to maintain"),
    "cuda_graph@torch": (
        "Launch the network as a CUDA graph",
        "tracegen run --launch eager,graph   # measures it\n"
        "# PyTorch: capture once on static tensors, replay per frame\n"
        "static_in = torch.empty_like(example_input)\n"
        "g = torch.cuda.CUDAGraph()\n"
        "with torch.cuda.graph(g):\n"
        "    static_out = model(static_in)\n"
        "static_in.copy_(frame); g.replay()        # per frame; read static_out afterwards\n"
        "# or let the compiler capture it: model = torch.compile(model, mode=\"reduce-overhead\")",
        "one launch per inference instead of one per kernel: the host enqueue shrinks to tens of microseconds and "
        "the GPU no longer waits for Python",
        "fixed input shapes and tensor addresses (re-capture on change); torch.compile adds a compile step at start-up"),
    "batching": (
        "Batch frames (or streams) into one inference",
        "tracegen run --scenario batch --batch-sizes 1,2,4,8,16,32   # measures it\n"
        "# application: collect frames from N cameras (or N consecutive frames) and run them as one batch",
        "launch and wake-up costs are paid once per batch instead of once per frame",
        "adds up to one frame interval of queueing latency per extra frame waited for"),
    "pipelining": (
        "Pipeline frames so the GPU never idles",
        "# double-buffer: while frame N runs on the GPU, prepare and upload frame N+1 on a second stream\n"
        "import pycuda.driver as cuda\n"
        "streams = [cuda.Stream(), cuda.Stream()]\n"
        "for n, frame in enumerate(frames):\n"
        "    s = streams[n % 2]\n"
        "    cuda.memcpy_htod_async(d_in[n % 2], frame, s)\n"
        "    contexts[n % 2].execute_async_v3(s.handle)   # one execution context per buffer\n"
        "    cuda.memcpy_dtoh_async(h_out[n % 2], d_out[n % 2], s)\n"
        "    streams[(n + 1) % 2].synchronize()             # collect the previous frame",
        "copies, host work and compute overlap; the GPU sees back-to-back work instead of gaps",
        "one frame of extra latency; two sets of buffers and execution contexts"),
    "pipelining@torch": (
        "Pipeline frames so the GPU never idles",
        "# double-buffer: upload frame N+1 on a side stream while frame N runs\n"
        "copy = torch.cuda.Stream()\n"
        "with torch.cuda.stream(copy):\n"
        "    next_in = next_frame.pin_memory().to('cuda', non_blocking=True)\n"
        "torch.cuda.current_stream().wait_stream(copy)   # before the model reads next_in\n"
        "out = model(next_in)",
        "copies, host work and compute overlap; the GPU sees back-to-back work instead of gaps",
        "one frame of extra latency; two sets of input buffers"),
    "warmup": (
        "Warm up longer before measuring or serving",
        "tracegen run --warmup {n}\n"
        "# application: run {n} inferences on a representative input before taking traffic\n"
        "for _ in range({n}):\n"
        "    infer(dummy_input)",
        "the slow first iterations (lazy allocation, autotuning, caches, clocks ramping) stay out of the "
        "statistics and away from the first real requests",
        "{n} extra inferences at start-up"),
    "sync_mode": (
        "Choose how the host waits for the GPU (spin vs blocking sync)",
        "import pycuda.driver as cuda\n"
        "cuda.init()\n"
        "ctx = cuda.Device(0).make_context(flags=cuda.ctx_flags.SCHED_SPIN)   # lowest wake-up latency\n"
        "# ctx_flags.SCHED_BLOCKING_SYNC frees the core but wakes up later (an interrupt)\n"
        "# measure both: tracegen run --sync-mode spin,yield,blocking",
        "SCHED_SPIN returns from the sync as soon as the GPU finishes; blocking sync adds the thread's wake-up time "
        "to every inference",
        "SCHED_SPIN keeps one CPU core at 100 % while the GPU works"),
    "cpu_power": (
        "Keep the CPU out of deep sleep states",
        "sudo cpupower frequency-set -g performance   # frequency governor\n"
        "sudo cpupower idle-set -D 10                 # disable C-states with > 10 us exit latency\n"
        "taskset -c 2 python app.py                   # pin the inference thread to one core",
        "the core wakes up fast and at full frequency after a sleep",
        "needs root; higher idle power for the whole machine"),
    "power_limit": (
        "Check and, if allowed, raise the power limit",
        "nvidia-smi -q -d POWER            # current, default and max power limit\n"
        "sudo nvidia-smi -pl <watts>       # up to 'Max Power Limit'",
        "the board can hold its clocks under sustained load instead of capping power",
        "needs root; more heat and power draw; not possible beyond the board's max limit"),
    "cooling": (
        "Check cooling and thermal headroom",
        "nvidia-smi -q -d TEMPERATURE,PERFORMANCE   # slowdown temperatures and active reasons\n"
        "nvidia-smi dmon -s pucv                   # power, temperature, clocks, violations while it runs",
        "with enough airflow the GPU stays below its slowdown temperature and keeps its clocks",
        "fans, chassis airflow or a lower ambient temperature; for sealed edge devices, a lower clock cap "
        "(nvidia-smi -lgc) that the cooling can sustain"),
    "steady_clock_cap": (
        "Cap the clock below the throttling point for steady latency",
        "sudo nvidia-smi -lgc <sustainable>,<sustainable>   # e.g. the median SM clock under load; undo: sudo nvidia-smi -rgc",
        "a slightly lower but constant clock instead of bursts and throttling, so latency stops drifting",
        "needs root; lower peak throughput"),
    "transfers": (
        "Move fewer bytes, and overlap the copies with compute",
        "# upload uint8 frames (4x fewer bytes than float32) and normalise on the GPU\n"
        "import torch\n"
        "x = frame_u8_pinned.to('cuda', non_blocking=True)          # pinned host memory\n"
        "x = (x.permute(2, 0, 1).float() / 255 - mean) / std       # on the GPU\n"
        "# keep outputs on the GPU (top-k there) and copy back only what you need\n"
        "# overlap: double-buffer inputs on a second stream (see 'Pipeline frames')",
        "copy time shrinks with the bytes moved, and overlapped copies leave the critical path",
        "preprocessing code moves to the GPU; pinned buffers"),
    "reduce_work": (
        "Reduce the work per image instead of batching",
        "trtexec --onnx=model.onnx --fp16 --saveEngine=model_fp16.engine   # or --int8 with calibration\n"
        "# builder API: config.set_flag(trt.BuilderFlag.FP16)\n"
        "# serve at batch {knee}: larger batches only add latency on this device",
        "lower precision or a smaller input/model shortens every inference; batching beyond the knee adds latency "
        "for little throughput",
        "accuracy must be re-validated at lower precision or resolution"),
    "reduce_work@torch": (
        "Reduce the work per image instead of batching",
        "model = model.half().to(memory_format=torch.channels_last)   # fp16 weights, NHWC layout\n"
        "model = torch.compile(model, mode=\"max-autotune\")            # fused kernels\n"
        "# serve at batch {knee}: larger batches only add latency on this device",
        "lower precision and fused kernels shorten every inference; batching beyond the knee adds latency for "
        "little throughput",
        "accuracy must be re-validated at lower precision; compilation takes minutes at start-up"),
    "reduce_work@cpu": (
        "Reduce the work per image instead of batching",
        "from onnxruntime.quantization import QuantType, quantize_dynamic\n"
        "quantize_dynamic(\"model.onnx\", \"model_int8.onnx\", weight_type=QuantType.QInt8)   # int8 weights\n"
        "import onnxruntime as ort\n"
        "so = ort.SessionOptions()\n"
        "so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL\n"
        "so.intra_op_num_threads = 4   # the physical cores; measure: tracegen run --threads 4\n"
        "sess = ort.InferenceSession(\"model_int8.onnx\", so, providers=[\"CPUExecutionProvider\"])\n"
        "# serve at batch {knee}: larger batches only add latency on this machine\n"
        "# and keep the cores at full frequency: sudo cpupower frequency-set -g performance",
        "int8 weights and a fully optimised graph shorten every inference; as many threads as physical cores "
        "avoid oversubscription; batching beyond the knee adds latency for little throughput",
        "accuracy must be re-validated after quantisation; the performance governor raises idle power"),
    "isolate_gpu": (
        "Make sure nothing else shares the GPU",
        "nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv\n"
        "sudo nvidia-smi -c EXCLUSIVE_PROCESS   # one process per GPU (undo: -c DEFAULT)",
        "no other work interleaves with the inference kernels",
        "needs root; other users lose the GPU"),
    "measure@cpu": (
        "Isolate the mechanism with the variants this run lacks",
        "tracegen run --scenario idle {flags}",
        "the busy-wait variant shows whether the gap's cost is the CPU waking up",
        "a few more minutes of benchmarking"),
    "measure": (
        "Isolate the mechanism with the variants this run lacks",
        "tracegen run --scenario idle {flags}",
        "the busy-wait, keep-alive and CUDA-graph variants show which mechanism the gap triggers",
        "a few more minutes of benchmarking"),
}

# TensorRT runs get the TensorRT capture alone (the plain entry also shows the PyTorch way).
_t, _a, _e, _c = ADVICE["cuda_graph"]
ADVICE["cuda_graph@tensorrt"] = (_t, _a.rsplit("\n# PyTorch:", 1)[0], _e, _c)


def run_kind(facts: Any) -> tuple[str | None, bool]:
    """(backend name, whether the run used a GPU) of a ``Facts``, from its manifest and steps."""
    from tracegen.analysis.attribution import has_gpu_times

    manifest = getattr(facts, "manifest", None) or {}
    backend = (manifest.get("backend") or {}).get("name")
    gpu = has_gpu_times(facts.iters) if getattr(facts, "iters", None) is not None else bool(manifest.get("gpu"))
    return backend, gpu


def entry(key: str, on: Any = None) -> tuple[str, str, str, str]:
    """The most specific entry of ``key`` for the run ``on`` (a ``Facts``; None: the plain one)."""
    if on is not None:
        backend, gpu = run_kind(on)
        for k in (f"{key}@{backend}", f"{key}@{'gpu' if gpu else 'cpu'}"):
            if k in ADVICE:
                return ADVICE[k]
    return ADVICE[key]


def advise(key: str, *, on: Any = None, measured: bool = False, evidence: str | None = None,
           **values: Any) -> Mitigation:
    """The mitigation ``key`` of ``ADVICE`` for the run ``on``, placeholders filled from ``values``."""
    title, action, effect, cost = entry(key, on)
    return Mitigation(title=title, action=action.format(**values) if values else action, expected_effect=effect,
                      cost=cost.format(**values) if values else cost, measured=measured, evidence=evidence)


def lock_clocks(max_clock: tuple[float | None, str] | None) -> Mitigation:
    """Lock the clocks at the GPU's max SM clock (``facts.max_sm_clock``) when known."""
    mhz, source = max_clock or (None, "unknown")
    note = {"manifest": "# the GPU's max SM clock",
            "observed": "# the highest SM clock seen in this run; check the board's max below"}.get(source, "# use the max below")
    return advise("lock_clocks", clk=f"{mhz:.0f}" if mhz else "<max>", note=note)


def from_contrast(key: str, label: str, c: dict | None, on: Any = None) -> Mitigation:
    """``key`` with what a contrast of this run measured (``attribution`` contrast dict of the
    variant paced ``label`` against the sleep variant), or untested when ``c`` is None."""
    if c is None:
        return advise(key, on=on)
    ev = (f"{label} {ms_text(c['alt_p50_ms'])} vs sleep {ms_text(c['ref_p50_ms'])} p50; removes "
          f"{pct_text(c['removed_fraction'])} of the gap's extra time")
    return advise(key, on=on, measured=True, evidence=ev)


def busy_wait(c: dict | None = None, on: Any = None) -> Mitigation:
    return from_contrast("busy_wait", "spin", c, on)


def keepalive(c: dict | None = None, on: Any = None) -> Mitigation:
    return from_contrast("keepalive", "keepalive", c, on)
