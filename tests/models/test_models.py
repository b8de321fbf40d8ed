import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tracegen.errors import ModelError
from tracegen.models.builtin import BUILTIN_MODELS, build_builtin, builtin_onnx_bytes
from tracegen.models.flops import count_model
from tracegen.models.source import load_model


def test_same_name_same_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a = build_builtin("tiny").SerializeToString()
    b = build_builtin("tiny").SerializeToString()
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
    assert builtin_onnx_bytes("tiny") == a  # generated, then written to the cache
    assert builtin_onnx_bytes("tiny") == a  # read back from the cache
    assert list((tmp_path / "tracegen/models").glob("tiny-*.onnx"))


@pytest.mark.parametrize("name", list(BUILTIN_MODELS))
def test_builtin_models_are_valid_with_dynamic_batch(name):
    model = build_builtin(name)
    onnx.checker.check_model(model)
    spec = BUILTIN_MODELS[name]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [3, spec.height, spec.width]


def test_tiny_runs_in_onnxruntime_at_two_batch_sizes():
    sess = ort.InferenceSession(build_builtin("tiny").SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = np.random.default_rng(0).random((batch, 3, 192, 192), dtype=np.float32)
        (y,) = sess.run(None, {"input": x})
        assert y.shape == (batch, 1000)
        assert np.isfinite(y).all() and y.std() > 0


def _single_node_model(node, inputs, output, inits):
    graph = helper.make_graph([node], "g", inputs, [output], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_conv_flops_formula():
    w = numpy_helper.from_array(np.zeros((64, 3, 7, 7), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[7, 7], strides=[2, 2], pads=[3, 3, 3, 3])
    model = _single_node_model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 224, 224])],
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, None), [w])
    stats = count_model(model)
    assert stats.flops_per_image == 2 * 64 * 3 * 49 * 112 * 112
    assert stats.params == 64 * 3 * 49


def test_grouped_conv_and_gemm_flops():
    w = numpy_helper.from_array(np.zeros((32, 1, 3, 3), np.float32), "w")  # depthwise, 32 groups
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=32)
    model = _single_node_model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 10, 10])],
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, None), [w])
    assert count_model(model).flops_per_image == 2 * 32 * 10 * 10 * 9
    g = numpy_helper.from_array(np.zeros((10, 512), np.float32), "g")
    node = helper.make_node("Gemm", ["x", "g"], ["y"], transB=1)
    model = _single_node_model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 512])],
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, None), [g])
    assert count_model(model).flops_per_image == 2 * 10 * 512


def test_load_model_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown built-in model 'x'.*builtin:tiny"):
        load_model("builtin:x")
    with pytest.raises(ModelError, match="not found"):
        load_model(str(tmp_path / "m.onnx"))
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        load_model(str(tmp_path / "empty.onnx"))
    with pytest.raises(ModelError, match="not a file"):
        load_model(str(tmp_path))


def test_user_onnx_file_is_described(tmp_path):
    path = tmp_path / "tiny.onnx"
    path.write_bytes(build_builtin("tiny").SerializeToString())
    src = load_model(str(path))
    assert src.kind == "onnx" and src.path == str(path)
    assert src.image_shape == (3, 192, 192)
    assert src.flops_per_image == count_model(build_builtin("tiny")).flops_per_image
