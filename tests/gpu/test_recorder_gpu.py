"""tracegen.Recorder with a real torch CUDA stream (and a raw stream handle): event times
land in the run and agree with torch's own events around the same work."""

from __future__ import annotations

import polars as pl
import pytest

import tracegen
from tracegen.trace.reader import read_run

pytestmark = pytest.mark.gpu


def _matmuls(torch, stream, a, k=20):
    with torch.cuda.stream(stream):
        for _ in range(k):
            a = a @ a
            a = a / a.norm()
    return a


@pytest.mark.parametrize("kind", ["torch", "raw"])
def test_step_gpu_times_match_torch_events(tmp_path, kind):
    import torch

    stream = torch.cuda.Stream()
    a = torch.randn(1024, 1024, device="cuda")
    handle = stream.cuda_stream if kind == "raw" else stream
    ref = []
    with tracegen.Recorder(out=tmp_path, run_id=kind, flush_every=8) as rec:
        for _ in range(24):
            with rec.iteration():
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                with rec.step("infer", stream=handle):
                    s.record(stream)
                    _matmuls(torch, stream, a)
                    e.record(stream)
                with rec.step("sync"):
                    stream.synchronize()
                ref.append(s.elapsed_time(e) * 1e6)
    run = read_run(tmp_path / kind)
    got = run.steps.filter(pl.col("step") == "infer").sort("iteration")["gpu_ns"].to_list()
    assert None not in got
    for g, r in zip(got, ref):
        assert abs(g - r) <= 0.05 * r + 20_000  # the recorder's events sit just outside torch's
