"""What the CUDA device layer does on a real GPU: host sync modes, keep-alive, NVML sample cost.

    python benchmarks/bench_gpu_device.py [--json out.json]

1. Sync modes: for each mode, in ONE process that keeps PyTorch loaded (as the runner does
   across its sync-mode groups), ~60 ms of matrix products are enqueued on the device's stream
   through torch.cuda.ExternalStream, then the host's wall and CPU time inside
   ``CudaDevice.synchronize()`` are measured. Spin burns the core for the whole wait, blocking
   sync sleeps in the driver; a CPU/wall ratio that follows the mode shows the flag took effect.
2. Keep-alive: NVML GPU utilisation, SM clock and power while the host sleeps vs while
   ``CudaDevice.keepalive`` runs, for a few memset sizes, with the memset's own GPU time and the
   number issued per second (the duty cycle).
3. NVML: what one ``GpuSampler.sample()`` costs on the host.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracegen.backends import cuda as cuda_layer  # noqa: E402
from tracegen.backends.cuda import CudaDevice  # noqa: E402


def sync_modes(modes: list[str]) -> list[dict]:
    import torch

    rows = []
    a = b = None
    for mode in modes:
        dev = CudaDevice(sync_mode=mode)
        dev.activate()
        try:
            stream = torch.cuda.ExternalStream(dev.stream_handle)
            with torch.cuda.stream(stream):
                if a is None:
                    a = torch.randn(4096, 4096, device="cuda")
                    b = torch.randn(4096, 4096, device="cuda")
                for _ in range(3):  # warm
                    a @ b
                dev.synchronize()
                walls, cpus = [], []
                for _ in range(5):
                    for _ in range(20):
                        a @ b
                    w0, c0 = time.perf_counter(), time.thread_time()
                    dev.synchronize()
                    walls.append(time.perf_counter() - w0)
                    cpus.append(time.thread_time() - c0)
            rows.append({"mode": mode, "flags_read_back": cuda_layer.decode_sync_flags(dev.applied_flags),
                         "method": dev.flag_method, "sync_wall_ms": round(statistics.median(walls) * 1e3, 2),
                         "sync_cpu_ms": round(statistics.median(cpus) * 1e3, 2),
                         "cpu_over_wall": round(statistics.median(c / w for c, w in zip(cpus, walls)), 3)})
        finally:
            dev.deactivate()
    return rows


def primary_flags_while_active() -> dict:
    """Does cuDevicePrimaryCtxSetFlags_v2 work while the primary context is active?"""
    dev = CudaDevice(sync_mode="spin")
    dev.activate()
    try:
        lib = cuda_layer._libcuda()
        handle = ctypes.c_int(0)
        lib.cuDeviceGet(ctypes.byref(handle), 0)
        rc = lib.cuDevicePrimaryCtxSetFlags_v2(handle, ctypes.c_uint(cuda_layer.SYNC_FLAGS["blocking"]))
        after = cuda_layer.decode_sync_flags(CudaDevice._current_flags(lib))
        return {"rc": rc, "current_context_after": after}
    finally:
        dev.deactivate()


class _Nvml(threading.Thread):
    def __init__(self, interval: float = 0.02):
        super().__init__(daemon=True)
        from tracegen.telemetry.nvml import GpuSampler

        self.sampler = GpuSampler(0, interval)
        self.rows: list[dict] = []
        self.phase = None
        self.stop_flag = threading.Event()
        self.interval = interval

    def run(self):
        while not self.stop_flag.is_set():
            row = self.sampler.sample()
            row["phase"] = self.phase
            self.rows.append(row)
            time.sleep(self.interval)


def keepalive_effect(seconds: float = 1.5) -> list[dict]:
    dev = CudaDevice(sync_mode="blocking")
    dev.activate()
    mon = _Nvml()
    mon.start()
    out = []
    try:
        phases = [("sleep", None), ("keepalive 1 MiB", 1 << 20), ("keepalive 8 MiB", 8 << 20),
                  ("keepalive 64 MiB", 64 << 20), ("keepalive 256 MiB", 256 << 20), ("sleep again", None)]
        for name, nbytes in phases:
            memset_us = None
            if nbytes is not None:
                cuda_layer.KEEPALIVE_BYTES = nbytes
                if dev._keepalive_buf is not None:
                    dev._keepalive_buf.free()
                    dev._keepalive_buf = None
                buf = dev.alloc(nbytes)
                t = dev.timer()
                times = []
                for _ in range(20):
                    t.start()
                    dev.cuda.memset_d8_async(int(buf), 0, nbytes, dev.stream)
                    t.stop()
                    dev.synchronize()
                    times.append(t.elapsed_ns())
                buf.free()
                memset_us = statistics.median(times) / 1e3
            time.sleep(0.3)  # let the previous phase's counters settle
            mon.phase = name
            ops0 = dev.keepalive_ops
            w0, c0 = time.perf_counter(), time.thread_time()
            if nbytes is None:
                time.sleep(seconds)
            else:
                dev.keepalive(seconds)
            wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
            mon.phase = None
            rows = [r for r in mon.rows if r["phase"] == name][2:]  # skip the first samples of the phase
            med = lambda k: statistics.median([r[k] for r in rows if r.get(k) is not None]) if rows else None  # noqa: E731
            ops = dev.keepalive_ops - ops0
            out.append({"phase": name, "memset_gpu_us": None if memset_us is None else round(memset_us, 1),
                        "ops_per_s": round(ops / wall), "gpu_busy_pct": None if memset_us is None else round(ops / wall * memset_us / 1e4, 1),
                        "host_cpu_pct": round(cpu / wall * 100, 1), "wall_s": round(wall, 4),
                        "nvml_gpu_util_pct": med("gpu_util_pct"), "nvml_mem_util_pct": med("mem_util_pct"),
                        "sm_clock_mhz": med("sm_clock_mhz"), "power_w": med("power_w"), "pstate": med("pstate"),
                        "reasons": sorted({r["clock_event_reasons"] for r in rows if r.get("clock_event_reasons") is not None}),
                        "samples": len(rows)})
    finally:
        mon.stop_flag.set()
        mon.join()
        dev.deactivate()
    return out


def nvml_cost(n: int = 500) -> dict:
    from tracegen.telemetry.nvml import GpuSampler, gpu_static_info

    s = GpuSampler(0)
    costs = {}
    for name, fn in (("pydll", s.sample), ("pynvml", s.sample_pynvml)):
        times = []
        for _ in range(n):
            t = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - t)
        times.sort()
        costs[name] = (round(times[n // 2] / 1e3, 1), round(times[int(n * 0.9)] / 1e3, 1))
    reader = s.reader
    s.close()
    t = time.perf_counter_ns()
    info = gpu_static_info(0)
    static_ms = (time.perf_counter_ns() - t) / 1e6
    return {"reader": reader, "sample_median_us": costs["pydll"][0], "sample_p90_us": costs["pydll"][1],
            "pynvml_sample_median_us": costs["pynvml"][0], "pynvml_sample_p90_us": costs["pynvml"][1],
            "static_info_ms": round(static_ms, 2), "static_info": info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--skip", default="", help="comma list of: sync,keepalive,nvml")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    result: dict = {}
    if "nvml" not in skip:
        result["nvml"] = nvml_cost()
        print("NVML:", json.dumps({k: v for k, v in result["nvml"].items() if k != "static_info"}))
        print("static:", json.dumps(result["nvml"]["static_info"]))
    if "sync" not in skip:
        result["sync_modes"] = sync_modes(["spin", "blocking", "yield", "auto", "spin", "blocking"])
        print(f"{'mode':<10}{'read back':<11}{'sync wall ms':>13}{'sync CPU ms':>13}{'CPU/wall':>10}")
        for r in result["sync_modes"]:
            print(f"{r['mode']:<10}{r['flags_read_back']:<11}{r['sync_wall_ms']:>13}{r['sync_cpu_ms']:>13}{r['cpu_over_wall']:>10}")
        result["primary_flags_while_active"] = primary_flags_while_active()
        print("cuDevicePrimaryCtxSetFlags_v2 while active:", result["primary_flags_while_active"])
    if "keepalive" not in skip:
        result["keepalive"] = ka = keepalive_effect()
        print(f"{'phase':<19}{'memset us':>10}{'ops/s':>8}{'GPU busy %':>11}{'host CPU %':>11}"
              f"{'NVML util %':>12}{'SM MHz':>8}{'power W':>9}{'pstate':>7}  reasons")
        for r in ka:
            print(f"{r['phase']:<19}{str(r['memset_gpu_us']):>10}{r['ops_per_s']:>8}{str(r['gpu_busy_pct']):>11}"
                  f"{r['host_cpu_pct']:>11}{str(r['nvml_gpu_util_pct']):>12}{str(r['sm_clock_mhz']):>8}"
                  f"{str(r['power_w']):>9}{str(r['pstate']):>7}  {r['reasons']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
