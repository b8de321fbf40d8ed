"""The torch backend: input checks everywhere; numerics, streams and graphs on a real GPU
(marked gpu; they also need torch with CUDA and onnx2torch)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tracegen.backends.torch import TorchBackend
from tracegen.errors import MissingDependency, ModelError
from tracegen.models.source import load_model


@pytest.fixture(scope="module")
def tiny():
    return load_model("builtin:tiny")


def test_engine_files_are_refused_with_a_hint(tmp_path):
    path = tmp_path / "model.engine"
    path.write_bytes(b"not for torch")
    with pytest.raises(ModelError, match="is a TensorRT engine.*--backend tensorrt"):
        TorchBackend(load_model(str(path))).activate(None)


def test_missing_torch_has_an_install_hint(monkeypatch, tiny):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependency, match="tracegen\\[torch\\]"):
        TorchBackend(tiny).activate(None)


def test_declares_what_it_needs():
    assert TorchBackend.device_kind == "cuda"
    assert TorchBackend.launches == ("eager", "graph")
    assert TorchBackend.precisions == ("fp32", "fp16")
    assert set(TorchBackend.requires) == {"torch", "pycuda.driver"}  # onnx2torch: checked for ONNX models


# -- on a real GPU -----------------------------------------------------------------------------------
def _reference(model, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.onnx_bytes, providers=["CPUExecutionProvider"])
    return sess.run(None, {model.input_name: x.astype(np.float32)})[0]


def _infer(backend, device, bindings, x: np.ndarray) -> np.ndarray:
    bindings.host_input[...] = x
    bindings.copy_in()
    backend.enqueue()
    bindings.copy_out()
    device.synchronize()
    return np.array(bindings.host_output, dtype=np.float32)


@pytest.fixture
def gpu_backend(torch_gpu, tiny):
    from tracegen.backends.cuda import CudaDevice

    made = []

    def make(precision="fp32", sync_mode="spin"):
        dev = CudaDevice(sync_mode=sync_mode)
        dev.activate()
        backend = TorchBackend(tiny, precision=precision)
        made.append((dev, backend))
        backend.activate(dev)
        return dev, backend

    yield make
    for dev, backend in reversed(made):
        try:
            backend.deactivate()
        finally:
            dev.deactivate()


def _close(a, b, tol):
    scale = max(float(np.abs(b).max()), 1e-6)
    return float(np.abs(a - b).max()) / scale < tol


@pytest.mark.gpu
def test_torch_runs_on_the_devices_stream(gpu_backend, torch_gpu):
    dev, backend = gpu_backend()
    assert torch_gpu.cuda.current_stream().cuda_stream == dev.stream_handle
    info = backend.info()
    assert {"torch", "cuda", "cudnn", "onnx2torch"} <= set(info["versions"])


@pytest.mark.gpu
@pytest.mark.parametrize("launch", ["eager", "graph"])
def test_fp32_matches_onnxruntime(gpu_backend, tiny, launch):
    dev, backend = gpu_backend("fp32")
    rng = np.random.default_rng(0)
    bindings = backend.prepare(2, launch)
    assert bindings.host_input.shape == (2, *tiny.image_shape)
    for _ in range(2):  # a second input must give a new output (graph replay reads the buffer)
        x = rng.standard_normal((2, *tiny.image_shape)).astype(np.float32)
        out = _infer(backend, dev, bindings, x)
        assert _close(out, _reference(tiny, x), 2e-2)  # TF32 convolutions allowed
    backend.release()


@pytest.mark.gpu
@pytest.mark.parametrize("launch", ["eager", "graph"])
def test_fp16_is_close_to_fp32(gpu_backend, tiny, launch):
    dev, backend = gpu_backend("fp16")
    bindings = backend.prepare(4, launch)
    assert bindings.host_input.dtype == np.float16 and bindings.host_output.dtype == np.float16
    x = np.random.default_rng(1).standard_normal((4, *tiny.image_shape)).astype(np.float32)
    out = _infer(backend, dev, bindings, x)
    assert _close(out, _reference(tiny, x), 5e-2)


@pytest.mark.gpu
def test_prepare_release_prepare_other_batches(gpu_backend, tiny):
    dev, backend = gpu_backend("fp16", sync_mode="blocking")
    for batch, launch in ((1, "graph"), (8, "eager"), (8, "graph"), (1, "eager")):
        bindings = backend.prepare(batch, launch)
        x = np.ones((batch, *tiny.image_shape), np.float32)
        out = _infer(backend, dev, bindings, x)
        assert out.shape[0] == batch and np.isfinite(out).all()
        backend.release()


@pytest.mark.gpu
def test_events_bracket_the_inference(gpu_backend):
    dev, backend = gpu_backend("fp16")
    backend.prepare(1, "graph")
    timer = dev.timer()
    times = []
    for _ in range(20):
        timer.start()
        backend.enqueue()
        timer.stop()
        dev.synchronize()
        times.append(timer.elapsed_ns())
    # The work lands between the events: a few microseconds at least, not ~0 (wrong stream).
    assert np.median(times) > 5_000, times
    backend.release()


@pytest.mark.gpu
def test_exit_with_torch_and_a_graph_still_active_does_not_abort(torch_gpu):
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = (
        "from tracegen.backends.cuda import CudaDevice\n"
        "from tracegen.backends.torch import TorchBackend\n"
        "from tracegen.models.source import load_model\n"
        "dev = CudaDevice(sync_mode='blocking'); dev.activate()\n"
        "b = TorchBackend(load_model('builtin:tiny'), precision='fp16'); b.activate(dev)\n"
        "bind = b.prepare(2, 'graph'); b.enqueue(); dev.synchronize(); t = dev.timer()\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
    assert "context stack was not empty" not in proc.stderr and "PyCUDA WARNING" not in proc.stderr
