"""Which steps a full-pipeline iteration has, in which order, for each placement of the work."""

import numpy as np
import pytest

from tracegen.backends.base import Bindings, HostDevice
from tracegen.errors import ConfigError
from tracegen.prepost import pipeline as P


def _bindings(batch=2, gpu=False):
    calls = []
    b = Bindings(batch=batch, host_input=np.zeros((batch, 3, 8, 8), np.float32),
                 host_output=np.random.default_rng(0).normal(size=(batch, 10)).astype(np.float32),
                 copy_in=(lambda: calls.append("copy_in")) if gpu else None,
                 copy_out=(lambda: calls.append("copy_out")) if gpu else None,
                 device_input=1234 if gpu else None, device_output=(lambda: 5678) if gpu else None)
    return b, calls


class _FakeCuda(HostDevice):
    kind = "cuda"

    def __init__(self):
        self.calls = []

    def synchronize(self):
        self.calls.append("sync")


class _FakeOps:
    """Stands in for DevicePrepost (CUDA kernels) to check the wiring on the CPU."""

    def __init__(self, device, frame_shape, in_shape, in_dtype, out_shape, out_dtype, device_input, device_output):
        self.log, self.staged = [], []
        self.staging = np.zeros((in_shape[0], *frame_shape), np.uint8)
        self.upload = lambda: self.log.append("upload")
        self.preprocess = (lambda: self.log.append(("resize", device_input))) if device_input else None
        self.postprocess = (lambda: self.log.append(("topk", device_output()))) if device_output else None
        self.download = lambda: self.log.append("download")
        _FakeOps.last = self

    def stage(self, frames):
        self.staged.append([int(f[0, 0, 0]) for f in frames])

    def close(self):
        self.log.append("closed")


FRAMES = np.stack([np.full((12, 12, 3), i, np.uint8) for i in range(4)])


def _names(pipe):
    return [(s.name, s.on_device) for s in pipe.steps]


def test_host_pipeline_on_the_cpu():
    b, _ = _bindings()
    pipe = P.build_pipeline(device=HostDevice(), bindings=b, enqueue=lambda: None, frames=FRAMES, pre="host", post="host")
    assert _names(pipe) == [("preprocess", False), ("infer", False), ("postprocess", False)]
    for s in pipe.steps:
        s.work()
    assert np.isfinite(b.host_input).all() and (np.ptp(b.host_input, axis=(2, 3)) == 0).all()  # flat frames stay flat
    assert b.host_input[0, 0, 0, 0] != b.host_input[1, 0, 0, 0]  # two different frames


def test_device_pipeline_stages_uploads_and_keeps_the_result_small(monkeypatch):
    import tracegen.prepost.device as D

    monkeypatch.setattr(D, "DevicePrepost", _FakeOps)
    b, calls = _bindings(gpu=True)
    dev = _FakeCuda()
    pipe = P.build_pipeline(device=dev, bindings=b, enqueue=lambda: calls.append("infer"), frames=FRAMES,
                            pre="device", post="device")
    assert _names(pipe) == [("h2d", True), ("preprocess", True), ("infer", True), ("postprocess", True),
                            ("d2h", True), ("sync", False)]
    for _ in range(3):
        for s in pipe.steps:
            s.work()
    ops = _FakeOps.last
    assert ops.staged == [[0, 1], [2, 3], [0, 1]]  # raw frames cycle through the batch
    assert ops.log[:5] == ["upload", ("resize", 1234), ("topk", 5678), "download", "upload"]
    assert calls == ["infer"] * 3  # the full output is never copied back
    pipe.close()
    assert ops.log[-1] == "closed"


def test_mixed_placement_and_user_steps(monkeypatch):
    import tracegen.prepost.device as D

    monkeypatch.setattr(D, "DevicePrepost", _FakeOps)
    b, calls = _bindings(gpu=True)
    seen = []
    pipe = P.build_pipeline(device=_FakeCuda(), bindings=b, enqueue=lambda: None, frames=FRAMES,
                            pre=lambda frames, out: seen.append(len(frames)), post="device")
    assert _names(pipe) == [("preprocess", False), ("h2d", True), ("infer", True), ("postprocess", True),
                            ("d2h", True), ("sync", False)]
    pipe = P.build_pipeline(device=_FakeCuda(), bindings=b, enqueue=lambda: None, frames=FRAMES,
                            pre="device", post=lambda out: seen.append(out.shape))
    assert _names(pipe)[-3:] == [("d2h", True), ("sync", False), ("postprocess", False)]
    for s in pipe.steps:
        s.work()
    assert seen == [(2, 10)] and calls == ["copy_out"]


def test_modes_default_by_device_and_the_cpu_refuses_device_steps():
    assert P.resolve_modes(None, None, gpu=True) == ("device", "device")
    assert P.resolve_modes(None, "host", gpu=False) == ("host", "host")
    with pytest.raises(ConfigError, match="--postprocess device needs a GPU"):
        P.resolve_modes("host", "device", gpu=False)


def test_frame_cycle_gives_each_iteration_new_frames_without_copies():
    cycle = P.FrameCycle(FRAMES, 3)
    firsts = [[int(f[0, 0, 0]) for f in cycle.next()] for _ in range(4)]
    assert firsts == [[0, 1, 2], [3, 0, 1], [2, 3, 0], [1, 2, 3]]
    assert all(np.shares_memory(f, FRAMES) for f in cycle.next())


def test_without_cupy_a_gpu_defaults_to_host_steps_and_refuses_device_ones():
    assert P.resolve_modes(None, None, gpu=True, device_ok=False) == ("host", "host")
    from tracegen.errors import MissingDependency

    with pytest.raises(MissingDependency, match="cupy"):
        P.resolve_modes("device", None, gpu=True, device_ok=False)
