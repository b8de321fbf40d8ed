"""The TensorRT backend's logic against a stand-in tensorrt module (TensorRT cannot run here)."""

import sys

import pytest

from tests.backends.fake_tensorrt import HostCudaDevice, make_fake_trt
from tracegen.backends.tensorrt import TensorRTBackend
from tracegen.backends.tensorrt_loader import engine_cache_key, profile_for
from tracegen.errors import BackendError, MissingDependency, ModelError
from tracegen.models.source import load_model


@pytest.fixture
def tiny():
    return load_model("builtin:tiny")


@pytest.fixture
def fake_trt(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    trt = make_fake_trt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return trt


def _backend(model, batches, precision="fp16"):
    b = TensorRTBackend(model, precision=precision)
    b.expect_batches(batches)
    return b


def test_profile_covers_every_requested_batch():
    assert profile_for([1, 2, 4, 64]) == (1, 1, 64)
    assert profile_for([8, 16]) == (8, 8, 16)


def test_cache_key_changes_with_everything_that_makes_engines_differ():
    base = ("abc", "10.1", "H100", "9.0", "fp16", (1, 1, 64))
    keys = {engine_cache_key(*base)}
    for i, other in enumerate(["abd", "10.2", "L4", "8.9", "fp32", (1, 1, 32)]):
        changed = list(base)
        changed[i] = other
        keys.add(engine_cache_key(*changed))
    assert len(keys) == 7


def test_builds_once_then_uses_the_cache(fake_trt, tiny, tmp_path):
    b = _backend(tiny, [1, 4, 16])
    b.activate(HostCudaDevice())
    assert fake_trt.calls["builds"] == 1
    assert fake_trt.calls["profiles"] == [("input", (1, 3, 192, 192), (1, 3, 192, 192), (16, 3, 192, 192))]
    assert fake_trt.calls["flags"] == ["fp16"]
    assert b.info()["build"]["source"] == "built from ONNX"
    b.deactivate()
    again = _backend(tiny, [1, 4, 16])
    again.activate(HostCudaDevice())
    assert fake_trt.calls["builds"] == 1
    assert again.info()["build"]["source"] == "engine cache"
    assert list((tmp_path / "tracegen/engines").glob("*.engine"))


def test_binds_tensors_by_name_and_enqueues_on_the_stream(fake_trt, tiny):
    dev = HostCudaDevice()
    b = _backend(tiny, [1, 8])
    b.activate(dev)
    bindings = b.prepare(8)
    assert bindings.host_input.shape == (8, 3, 192, 192)
    assert bindings.host_output.shape == (8, 1000)
    assert set(fake_trt.calls["addresses"]) == {"input", "logits"}
    assert fake_trt.calls["shapes"]["input"] == (8, 3, 192, 192)
    b.enqueue()
    assert fake_trt.calls["executes"] == 1
    b.release()
    assert all(buf.freed for buf, _ in dev.allocs)


def test_graph_launch_captures_one_execute(fake_trt, tiny):
    dev = HostCudaDevice()
    b = _backend(tiny, [1])
    b.activate(dev)
    b.prepare(1, launch="graph")
    assert dev.captured == 1
    b.enqueue()
    assert fake_trt.calls["executes"] == 2  # one warm launch before capture, one replay (fake)


def test_batch_outside_profile(fake_trt, tiny):
    b = _backend(tiny, [1, 4])
    b.activate(HostCudaDevice())
    with pytest.raises(BackendError, match="batch 8 is outside the engine's optimization profile \\(1..4\\)"):
        b.prepare(8)


def test_engine_for_another_gpu_or_version(monkeypatch, tmp_path, tiny):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt(refuse_engine=True))
    with pytest.raises(BackendError, match="cannot run here.*another GPU"):
        _backend(tiny, [1]).activate(HostCudaDevice())


def test_serialized_engine_file_is_loaded(fake_trt, tmp_path):
    path = tmp_path / "model.engine"
    path.write_bytes(b"ENGINE 1 1 2 3/64/64")
    b = _backend(load_model(str(path)), [2])
    b.activate(HostCudaDevice())
    assert fake_trt.calls["builds"] == 0
    assert b.prepare(2).host_input.shape == (2, 3, 64, 64)
    garbage = tmp_path / "garbage.plan"
    garbage.write_bytes(b"\x00garbage")
    with pytest.raises(BackendError, match="cannot run here"):
        _backend(load_model(str(garbage)), [1]).activate(HostCudaDevice())


def test_unparseable_onnx(monkeypatch, tmp_path, tiny):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt(parse_ok=False))
    with pytest.raises(ModelError, match="cannot parse.*FancyOp"):
        _backend(tiny, [1]).activate(HostCudaDevice())


def test_missing_tensorrt_has_an_install_hint(monkeypatch, tiny):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(MissingDependency, match="pip install 'tracegen\\[tensorrt\\]'"):
        _backend(tiny, [1]).activate(HostCudaDevice())


def test_tensorrt_11_has_no_fp16_flag_so_an_fp32_model_cannot_build_fp16(monkeypatch, tmp_path, tiny):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    trt = make_fake_trt(fp16_flag=False, version="11.4.0-fake")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(BackendError, match="strongly typed networks only.*--precision fp32"):
        _backend(tiny, [1], precision="fp16").activate(HostCudaDevice())
    b = _backend(tiny, [1], precision="fp32")
    b.activate(HostCudaDevice())
    assert trt.calls["flags"] == [] and trt.calls["builds"] == 1


def test_build_settings_and_time_are_recorded(fake_trt, tiny):
    b = _backend(tiny, [2, 4])
    b.activate(HostCudaDevice())
    build = b.info()["build"]
    assert build["profile_batch"] == [2, 2, 4] and build["precision"] == "fp16"
    assert build["typing"] == "weak (BuilderFlag.FP16)" and build["build_seconds"] >= 0
    assert build["tensorrt"] == "10.99.0-fake" and build["cache_key"] in build["cache_path"]
