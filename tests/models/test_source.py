from tracegen.errors import ModelError
from tracegen.models.builtin import build_builtin
from tracegen.models.flops import count_model
from tracegen.models.source import load_model
import pytest


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
