"""Set-up and tear-down of what a run holds, in one place: the device and backend of each sync
mode, the prepared batch of each variant, and the telemetry samplers. Each is a context manager,
so every exit path (end, Ctrl-C, error) releases in the reverse order of acquisition."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Callable, Iterator

from tracegen.backends.base import Backend, Bindings, Device
from tracegen.backends.registry import make_device
from tracegen.run.plan import RunPlan
from tracegen.telemetry import cpu as cpu_telemetry


@contextmanager
def engine(plan: RunPlan, sync_mode: str) -> Iterator[tuple[Device, Backend]]:
    """The device (created with ``sync_mode``) and the backend's model loaded onto it."""
    config = plan.config
    device = make_device(plan.backend_cls.device_kind, sync_mode=sync_mode, device_index=config.device_index)
    backend = plan.backend_cls(plan.model, precision=config.precision, threads=config.threads)
    backend.expect_batches(sorted({v.batch for v in plan.variants}))
    try:
        device.activate()
        backend.activate(device)
        yield device, backend
    finally:
        try:
            backend.deactivate()
            # Page-locked buffers and events caught in reference cycles (a model's closures,
            # a captured graph) are freed while their context is still current: collected after
            # deactivate, PyCUDA can only warn that it could not clean them up.
            gc.collect()
        finally:
            device.deactivate()


@contextmanager
def prepared(backend: Backend, batch: int, launch: str) -> Iterator[Bindings]:
    """Buffers (and a captured graph) of one batch size, freed before the next is prepared."""
    bindings = backend.prepare(batch, launch)
    try:
        yield bindings
    finally:
        backend.release()


class Telemetry:
    """The CPU sampler, and the GPU one where there is a GPU (optional: a run without NVML still
    runs). ``drain`` hands over what was sampled since the last call."""

    def __init__(self, device: Device, config, warn: Callable[[str], None] = lambda text: None):
        interval = config.telemetry_ms / 1000.0
        self.cpu = cpu_telemetry.CpuSampler(interval)
        self.samplers = [self.cpu]
        self.gpu = False
        if device.kind != "host":
            try:
                from tracegen.telemetry.nvml import GpuSampler

                self.samplers.append(GpuSampler(config.device_index, interval))
                self.gpu = True
            except Exception as exc:  # noqa: BLE001 - telemetry is optional, the run is not
                warn(f"GPU telemetry unavailable ({exc}); recording without it")
        self.interval_ms = config.telemetry_ms

    def manifest(self) -> dict:
        return {"cpu_frequency": self.cpu.exposes_frequency, "gpu": self.gpu, "interval_ms": self.interval_ms}

    def start(self, t0_ns: int) -> None:
        for s in self.samplers:
            s.start(t0_ns)

    def set_variant(self, variant_id: int) -> None:
        for s in self.samplers:
            s.set_variant(variant_id)

    def drain(self) -> list[dict]:
        rows: list[dict] = []
        for s in self.samplers:
            rows.extend(s.drain())
        return rows

    def stop(self) -> list[dict]:
        rows: list[dict] = []
        for s in self.samplers:
            try:
                rows.extend(s.stop())
            finally:
                s.close()
        return rows
