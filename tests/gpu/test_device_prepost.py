"""Device pre/postprocessing on a real GPU: the CUDA kernels agree with the host code, and a
full-pipeline run uploads the raw frame and copies back only the top-k. Marked gpu."""

import numpy as np
import polars as pl
import pytest

from tracegen.prepost.host import HostPreprocess, softmax_top_k

pytestmark = pytest.mark.gpu


@pytest.fixture
def device():
    pytest.importorskip("cupy")
    from tracegen.backends.cuda import CudaDevice

    dev = CudaDevice()
    dev.activate()
    yield dev
    dev.deactivate()


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("src, dst", [((672, 1152), (448, 768)), ((37, 91), (100, 60))])
def test_resize_kernel_matches_the_host(device, dtype, src, dst):
    from tracegen.prepost.device import DevicePrepost

    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, size=(3, *src, 3), dtype=np.uint8)
    shape = (3, 3, *dst)
    d_in = device.alloc(int(np.prod(shape)) * np.dtype(dtype).itemsize)
    ops = DevicePrepost(device, (*src, 3), shape, dtype, (3, 10), np.float32, device_input=int(d_in),
                        device_output=None)
    ops.stage(list(frames))
    ops.upload()
    ops.preprocess()
    got = device.host_buffer(shape, dtype)
    device.copy_to_host(got, lambda: int(d_in))()
    device.synchronize()
    want = np.empty(shape, np.float32)
    HostPreprocess(3, *dst, library="opencv")(list(frames), want)
    assert np.abs(got.astype(np.float32) - want).max() < 0.03  # one uint8 step is 0.017
    ops.close()


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_softmax_top_k_kernel_matches_numpy(device, dtype):
    from tracegen.prepost.device import DevicePrepost

    rng = np.random.default_rng(5)
    # distinct in fp16 too: steps of 1/512 in [-1, 1), where fp16 resolves 1/1024
    logits = (np.stack([rng.permutation(1000) for _ in range(4)]) / 512.0 - 1.0).astype(dtype)
    host = device.host_buffer(logits.shape, dtype)
    host[...] = logits
    d_out = device.alloc(host.nbytes)
    device.copy_to_device(int(d_out), host)()
    ops = DevicePrepost(device, (8, 8, 3), (4, 3, 4, 4), np.float32, logits.shape, dtype, device_input=None,
                        device_output=lambda: int(d_out))
    ops.postprocess()
    ops.download()
    device.synchronize()
    idx, prob = softmax_top_k(logits)
    assert ops.indices.tolist() == idx.tolist()
    assert np.allclose(ops.probs, prob, rtol=2e-3)
    ops.close()


@pytest.fixture(scope="module")
def device_run(tmp_path_factory):
    from tracegen.run.config import build_config
    from tracegen.run.runner import run_benchmark
    from tracegen.trace.reader import read_run

    pytest.importorskip("cupy")
    out = tmp_path_factory.mktemp("prepost")
    flags = dict(model="builtin:tiny", backend="torch", precision="fp16", scenarios="idle", idle_ms="0,5",
                 pacing="sleep", launch="eager,graph", iterations=30, warmup=3, out=str(out))
    device = read_run(run_benchmark(build_config(flags={**flags, "run_id": "device"}), progress=False).run_dir)
    host = read_run(run_benchmark(build_config(flags={**flags, "run_id": "host", "preprocess": "host",
                                                      "postprocess": "host"}), progress=False).run_dir)
    return device, host


def test_device_pipeline_order_and_gpu_times(device_run):
    run, _ = device_run
    assert run.manifest["pipeline"]["steps"] == ["idle", "h2d", "preprocess", "infer", "postprocess", "d2h", "sync"]
    s = run.steps.sort("variant_id", "iteration", "host_start_ns")
    order = s.filter((pl.col("variant_id") == 0) & (pl.col("iteration") == 5))["step"].cast(pl.String).to_list()
    assert order == run.manifest["pipeline"]["steps"]
    on_gpu = s.filter(pl.col("step").cast(pl.String).is_in(["h2d", "preprocess", "infer", "postprocess", "d2h"]))
    assert on_gpu["gpu_ns"].null_count() == 0 and (on_gpu["gpu_ns"] > 0).all()


def test_only_the_raw_frame_goes_up_and_only_the_top_k_comes_back(device_run):
    device, host = device_run

    assert device.manifest["pipeline"]["preprocess"].startswith("device")
    assert device.manifest["pipeline"]["postprocess"].startswith("device")
    assert host.manifest["pipeline"]["host_library"] == "opencv"
    assert host.steps.filter(pl.col("step") == "preprocess")["gpu_ns"].null_count() == \
        host.steps.filter(pl.col("step") == "preprocess").height
    # host work of the device pipeline: the copy into page-locked memory and launches only
    dev_pre = device.steps.filter(pl.col("step") == "preprocess")["host_ns"].median()
    host_pre = host.steps.filter(pl.col("step") == "preprocess")["host_ns"].median()
    assert dev_pre < host_pre
