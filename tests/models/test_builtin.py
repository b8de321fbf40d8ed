"""Built-in networks: deterministic bytes, valid ONNX, portable ops, runnable, sane activations, cache."""

from __future__ import annotations

import functools
import hashlib
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tracegen.errors import ModelError
from tracegen.models import builtin
from tracegen.models.builtin import (
    BUILTIN_MODELS,
    GENERATOR_VERSION,
    build_builtin,
    builtin_names,
    builtin_onnx_bytes,
    cache_path,
)
from tracegen.models.flops import count_model

# The ops onnxruntime CPU, onnx2torch and TensorRT all support.
PORTABLE_OPS = {"Conv", "Relu", "Add", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm"}

# Pinned so that a generator change without a GENERATOR_VERSION bump fails here: bump the
# version (it keys the users' caches) and then update this hash.
TINY_SHA256 = "299e490456b4e971169ce0ee0dec5b850934b869af327775ef0d028dfd55a66b"


@functools.cache
def model_bytes(name: str) -> bytes:
    return build_builtin(name).SerializeToString()


def session(name: str, threads: int = 2, extra_outputs: tuple[str, ...] = ()) -> ort.InferenceSession:
    model = onnx.load_from_string(model_bytes(name))
    for out in extra_outputs:
        model.graph.output.append(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def image_batch(name: str, batch: int) -> np.ndarray:
    spec = BUILTIN_MODELS[name]
    # Roughly what ImageNet normalisation gives: zero mean, unit variance.
    return np.random.default_rng(0).standard_normal((batch, 3, spec.height, spec.width)).astype(np.float32)


def test_names_and_specs():
    assert builtin_names() == ["tiny", "small", "large"]
    for name, spec in BUILTIN_MODELS.items():
        assert spec.name == name and spec.description
        assert len(spec.widths) == len(spec.blocks)
    assert (BUILTIN_MODELS["small"].width, BUILTIN_MODELS["small"].height) == (768, 448)
    assert (BUILTIN_MODELS["large"].width, BUILTIN_MODELS["large"].height) == (1024, 576)


@pytest.mark.parametrize("name", builtin_names())
def test_same_bytes_every_time(name):
    assert hashlib.sha256(build_builtin(name).SerializeToString()).digest() == \
        hashlib.sha256(model_bytes(name)).digest()


def test_tiny_bytes_are_pinned():
    assert hashlib.sha256(model_bytes("tiny")).hexdigest() == TINY_SHA256


@pytest.mark.parametrize("name", builtin_names())
def test_valid_portable_onnx_with_dynamic_batch(name):
    model = onnx.load_from_string(model_bytes(name))
    onnx.checker.check_model(model, full_check=True)  # full_check also runs strict shape inference
    assert {op.domain: op.version for op in model.opset_import} == {"": 17}
    assert model.ir_version == 8
    assert (model.producer_name, model.producer_version) == ("tracegen", f"builtin-g{GENERATOR_VERSION}")
    assert {n.op_type for n in model.graph.node} <= PORTABLE_OPS
    assert all(len(n.input) == 3 for n in model.graph.node if n.op_type == "Conv")  # biased convs
    names = [n.name for n in model.graph.node]
    assert len(set(names)) == len(names) and all(names)  # readable, unique layer names for profilers
    stats = count_model(model)
    spec = BUILTIN_MODELS[name]
    assert (stats.input_name, stats.input_shape, stats.input_dtype) == ("input", ("batch", 3, spec.height, spec.width),
                                                                        "float32")
    assert (stats.output_name, stats.output_shape, stats.output_dtype) == ("logits", ("batch", 1000), "float32")
    assert stats.complete  # shape inference reached every node
    assert len(model_bytes(name)) < 100e6


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_runs_at_batch_1_and_2_with_finite_outputs(name):
    sess = session(name)
    for batch in (1, 2):
        (logits,) = sess.run(None, {"input": image_batch(name, batch)})
        assert logits.shape == (batch, 1000) and logits.dtype == np.float32
        assert np.isfinite(logits).all() and logits.std() > 0.1


def test_large_runs_at_batch_1():
    (logits,) = session("large").run(None, {"input": image_batch("large", 1)})
    assert logits.shape == (1, 1000) and np.isfinite(logits).all()


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_activations_stay_in_fp16_range(name):
    # No batch-norm, so this checks the residual scaling keeps every activation modest.
    relus = tuple(n.output[0] for n in build_builtin(name).graph.node if n.op_type == "Relu")
    outputs = session(name, extra_outputs=relus).run(None, {"input": image_batch(name, 1)})
    peak = max(float(np.abs(y).max()) for y in outputs)
    assert np.isfinite(peak) and peak < 1e3


@pytest.mark.parametrize("call", [build_builtin, builtin_onnx_bytes])
def test_unknown_name_lists_the_known_ones(call, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="unknown built-in model 'huge'.*tiny, small, large") as err:
        call("huge")
    assert isinstance(err.value, ModelError)  # the CLI prints it as a one-line error
    assert not any(tmp_path.iterdir())


def test_bytes_are_cached_on_disk_by_name_and_version(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data = builtin_onnx_bytes("tiny")
    assert data == model_bytes("tiny")
    path = cache_path("tiny")
    assert path == tmp_path / "tracegen" / "models" / f"tiny-g{GENERATOR_VERSION}.onnx"
    assert path.read_bytes() == data
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind

    def no_generation(spec):
        raise AssertionError("generated again despite the cache")

    monkeypatch.setattr(builtin, "build_spec", no_generation)
    assert builtin_onnx_bytes("tiny") == data


def test_unwritable_cache_still_gives_the_model(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # the cache's parent is a file: every read and write fails, even as root
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert builtin_onnx_bytes("tiny") == model_bytes("tiny")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(builtin.os, "replace", failing_replace)
    assert builtin_onnx_bytes("tiny") == model_bytes("tiny")
    assert list((tmp_path / "tracegen" / "models").iterdir()) == []
