"""--shapes (trtexec syntax), --inputs .npz and the input plan: every bad input is one ConfigError
naming the input and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from tracegen.errors import ConfigError
from tracegen.models.feed import DEFAULT_TOKEN_HIGH, InputFeeder, generate
from tracegen.models.shapes import parse_shapes, plan_inputs
from tracegen.models.signature import Signature, TensorSpec

IMAGE = Signature((TensorSpec("images", "float32", ("batch", 3, 224, 224)),), (TensorSpec("logits", "float32", ("batch", 1000)),))
TEXT = Signature((TensorSpec("input_ids", "int64", ("batch", "sequence")),
                  TensorSpec("attention_mask", "int64", ("batch", "sequence")),
                  TensorSpec("token_type_ids", "int64", ("batch", "sequence"))))


def test_trtexec_syntax():
    assert parse_shapes("images:1x3x224x224") == {"images": ((1, 3, 224, 224), None)}
    assert parse_shapes("input_ids:1x128,attention_mask:1x128") == {
        "input_ids": ((1, 128), None), "attention_mask": ((1, 128), None)}
    assert parse_shapes("x:2x8:int64") == {"x": ((2, 8), "int64")}
    assert parse_shapes("onnx::input_0:1x3") == {"onnx::input_0": ((1, 3), None)}
    assert parse_shapes("'a,b':4") == {"a,b": ((4,), None)}


@pytest.mark.parametrize("text, message", [
    ("images", "not name:shape"), ("images:1x3x", "not name:shape"), ("images:1x0x3", "zero dimension"),
    ("x:1x2:complex64", "unknown dtype"), ("x:1,x:2", "twice"),
])
def test_bad_shapes_syntax(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_shapes(text)


def test_image_model_needs_no_shapes_and_batches_on_axis_0():
    plan = plan_inputs(IMAGE)
    assert plan.fill == ("frames",) and plan.batched == (True,) and plan.fixed_batch is None
    assert plan.shapes(8) == {"images": (8, 3, 224, 224)}


def test_text_model_dims_come_from_shapes():
    plan = plan_inputs(TEXT, shapes="input_ids:1x128,attention_mask:1x128,token_type_ids:1x128",
                       token_high={"input_ids": 30522})
    assert plan.shapes(4) == {"input_ids": (4, 128), "attention_mask": (4, 128), "token_type_ids": (4, 128)}
    assert plan.fill == ("tokens", "ones", "zeros")
    ids = generate(plan, 0, 4)
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 30522 and len(np.unique(ids)) > 1
    assert (generate(plan, 1, 4) == 1).all() and (generate(plan, 2, 4) == 0).all()


def test_inputs_not_covered_by_shapes_name_the_dimension():
    with pytest.raises(ConfigError, match=r"'attention_mask'.*dynamic axis 1 \(sequence\).*--shapes attention_mask:1x128"):
        plan_inputs(TEXT, shapes="input_ids:1x128,token_type_ids:1x128")


def test_shape_that_does_not_match_the_model():
    with pytest.raises(ConfigError, match="fixes axis 2 at 224"):
        plan_inputs(IMAGE, shapes="images:1x3x256x256")
    with pytest.raises(ConfigError, match="2 dimensions but .* takes 4"):
        plan_inputs(IMAGE, shapes="images:1x3")
    with pytest.raises(ConfigError, match="'pixels'.*its inputs are: images"):
        plan_inputs(IMAGE, shapes="pixels:1x3x224x224")
    with pytest.raises(ConfigError, match="takes float32"):
        plan_inputs(IMAGE, shapes="images:1x3x224x224:int64")


def test_fixed_batch_model():
    fixed = Signature((TensorSpec("x", "float32", (1, 3, 64, 64)),))
    plan = plan_inputs(fixed)
    assert plan.fixed_batch == 1 and plan.batched == (False,) and plan.shapes(8) == {"x": (1, 3, 64, 64)}


def test_npz_inputs(tmp_path):
    path = tmp_path / "data.npz"
    ids = np.arange(2 * 16, dtype=np.int64).reshape(2, 16)
    np.savez(path, input_ids=ids, attention_mask=np.ones((2, 16), np.int64), token_type_ids=np.zeros((2, 16), np.int64))
    plan = plan_inputs(TEXT, inputs_file=str(path))
    assert plan.origin == "--inputs" and plan.fill == ("user",) * 3
    assert (generate(plan, 0, 2) == ids).all()
    # Other batch sizes repeat the rows.
    assert (generate(plan, 0, 3) == ids[[0, 1, 0]]).all()


@pytest.mark.parametrize("arrays, message", [
    (dict(input_ids=np.zeros((1, 4), np.int64)), "no array for input.*attention_mask"),
    (dict(input_ids=np.zeros((1, 4), np.int64), attention_mask=np.zeros((1, 4), np.int64),
          token_type_ids=np.zeros((1, 4), np.int64), extra=np.zeros(1)), "'extra'.*does not take"),
    (dict(input_ids=np.zeros((1, 4), np.int32), attention_mask=np.zeros((1, 4), np.int64),
          token_type_ids=np.zeros((1, 4), np.int64)), "is int32 but .* takes int64.*astype"),
    (dict(input_ids=np.zeros((4,), np.int64), attention_mask=np.zeros((1, 4), np.int64),
          token_type_ids=np.zeros((1, 4), np.int64)), "1 dimensions but"),
])
def test_bad_npz(tmp_path, arrays, message):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    with pytest.raises(ConfigError, match=message):
        plan_inputs(TEXT, inputs_file=str(path))


def test_npz_that_is_not_one(tmp_path):
    (tmp_path / "bad.npz").write_text("nope")
    with pytest.raises(ConfigError, match="not a numpy .npz"):
        plan_inputs(TEXT, inputs_file=str(tmp_path / "bad.npz"))
    with pytest.raises(ConfigError, match="not found"):
        plan_inputs(TEXT, inputs_file=str(tmp_path / "missing.npz"))
    with pytest.raises(ConfigError, match="both"):
        plan_inputs(TEXT, shapes="input_ids:1x4", inputs_file=str(tmp_path / "bad.npz"))


def test_undeclared_model_takes_the_users_names_and_dtypes():
    sig = Signature((TensorSpec("input_ids", None, None), TensorSpec("attention_mask", None, None)), declared=False)
    with pytest.raises(ConfigError, match="does not declare its input shapes.*--shapes input_ids:1x3x224x224"):
        plan_inputs(sig)
    plan = plan_inputs(sig, shapes="input_ids:1x8:int64", token_high={"*": 50})
    assert [t.name for t in plan.specs] == ["input_ids"] and plan.specs[0].dtype == "int64"
    assert plan.batched == (True,) and generate(plan, 0, 2).max() < 50
    with pytest.raises(ConfigError, match="forward\\(\\) arguments are: input_ids, attention_mask"):
        plan_inputs(sig, shapes="pixels:1x3")


def test_feeder_fills_images_each_iteration_and_the_rest_once():
    sig = Signature((TensorSpec("images", "float16", ("batch", 3, 32, 32)), TensorSpec("ids", "int32", ("batch", 8)),
                     TensorSpec("flags", "bool", ("batch", 8)), TensorSpec("scale", "float32", ("batch", 2))))
    plan = plan_inputs(sig)
    assert plan.fill == ("frames", "tokens", "ones", "random")
    bufs = {t.name: np.zeros(plan.shape(i, 2), t.dtype) for i, t in enumerate(plan.specs)}
    feeder = InputFeeder(plan, bufs, 2)
    assert bufs["flags"].all() and bufs["ids"].max() < DEFAULT_TOKEN_HIGH and bufs["scale"].std() > 0
    assert feeder.image == "images" and bufs["images"].std() > 0.1  # a real frame from the start
    first = bufs["images"].copy()
    feeder.fill()
    assert not np.array_equal(first, bufs["images"])  # the next frames
