"""What the torch backend runs, on the CPU: ONNX exports through the normaliser and onnx2torch
(checked against onnxruntime), torch.export programs, TorchScript and Python factories. Skipped
where torch or onnx2torch are not installed (CI installs neither; the GPU image has both)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx2torch")

from tracegen.errors import ModelError  # noqa: E402
from tracegen.models.feed import generate  # noqa: E402
from tracegen.models.shapes import plan_for  # noqa: E402
from tracegen.models.source import load_model  # noqa: E402
from tracegen.models.torch_convert import make_call, torch_model  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def _inputs(plan, batch):
    rng = np.random.default_rng(0)
    xs = [generate(plan, i, batch) for i in range(len(plan.specs))]
    return [rng.standard_normal(x.shape).astype(x.dtype) if x.dtype.kind == "f" else x for x in xs]


def _torch_outputs(model, plan, xs):
    tm = torch_model(model)
    with torch.inference_mode():
        return tm, [y.numpy() for y in make_call(tm, [t.name for t in plan.specs], [torch.from_numpy(x) for x in xs])()]


@pytest.mark.parametrize("name, shapes, batch", [
    ("mobilenet_v3_small_w025-legacy.onnx", None, 3),
    ("mobilenet_v3_small_w025-dynamo.onnx", None, 1),
    ("bert_tiny-legacy.onnx", "input_ids:1x16,attention_mask:1x16", 2),
])
def test_real_exports_convert_and_match_onnxruntime(name, shapes, batch):
    import onnxruntime as ort

    model = load_model(str(MODELS / name))
    plan = plan_for(model, shapes=shapes)
    xs = _inputs(plan, batch)
    tm, ys = _torch_outputs(model, plan, xs)
    refs = ort.InferenceSession(model.path, providers=["CPUExecutionProvider"]).run(
        None, {t.name: x for t, x in zip(plan.specs, xs)})
    assert len(ys) == len(refs)
    for y, r in zip(ys, refs):
        assert y.shape == r.shape and np.allclose(y, r, atol=1e-4, rtol=1e-3)
    assert tm.info["route"].startswith("onnx -> normalise")
    if "dynamo" in name:  # opset 20 written down to 17 for onnx2torch
        assert tm.info["opset_out"] == 17 and "version_conversion" in tm.info


def _one_op_model(tmp_path, op, opset, **attrs):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], **attrs)], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / f"{op}.onnx"
    onnx.save(model, path)
    return load_model(str(path))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_20_has_no_opset_17_version_and_is_kept(tmp_path, approximate):
    model = _one_op_model(tmp_path, "Gelu", 20, approximate=approximate)
    plan = plan_for(model)
    xs = _inputs(plan, 2)
    tm, (y,) = _torch_outputs(model, plan, xs)
    assert tm.info["kept_ops"] == ["Gelu"]
    ref = torch.nn.functional.gelu(torch.from_numpy(xs[0]), approximate=approximate).numpy()
    assert np.allclose(y, ref, atol=1e-6)


def test_an_operator_onnx2torch_lacks_is_named_with_the_backends_that_run_it(tmp_path):
    model = _one_op_model(tmp_path, "Hardmax", 13)
    with pytest.raises(ModelError, match=r"cannot convert operator Hardmax \(opset 13\).*--backend onnxruntime.*tensorrt"):
        torch_model(model)


def _mobilenet():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_models", MODELS.parent / "make_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pytest.importorskip("torchvision")
    return mod.mobilenet()


def test_torch_export_program_declares_its_signature(tmp_path):
    net = _mobilenet()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(net, (torch.randn(2, 3, 64, 64),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "m.pt2")
    model = load_model(str(tmp_path / "m.pt2"))
    assert model.kind == "torch-export" and model.signature.declared
    (x,) = model.signature.inputs
    assert x.dtype == "float32" and x.shape[1:] == (3, 64, 64) and x.batched
    plan = plan_for(model)
    assert plan.fill == ("frames",)
    xs = _inputs(plan, 3)
    _, (y,) = _torch_outputs(model, plan, xs)
    with torch.inference_mode():
        assert np.allclose(y, net(torch.from_numpy(xs[0])).numpy(), atol=1e-5)


def test_torchscript_takes_names_from_its_schema_and_shapes_from_the_user(tmp_path):
    net = _mobilenet()
    torch.jit.save(torch.jit.trace(net, torch.randn(1, 3, 64, 64)), tmp_path / "m.ts")
    model = load_model(str(tmp_path / "m.ts"))
    assert model.kind == "torchscript" and not model.signature.declared
    from tracegen.errors import ConfigError

    with pytest.raises(ConfigError, match="does not declare its input shapes"):
        plan_for(model)
    name = model.signature.names[0]
    plan = plan_for(model, shapes=f"{name}:1x3x64x64")
    _, (y,) = _torch_outputs(model, plan, _inputs(plan, 2))
    assert y.shape == (2, 100)


def test_factory_from_a_file_with_integer_and_float_inputs(tmp_path):
    (tmp_path / "zoo.py").write_text(textwrap.dedent("""
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = torch.nn.Embedding(50, 4)
                self.lin = torch.nn.Linear(4, 3)

            def forward(self, ids, scale):
                h = self.emb(ids).mean(1) * scale
                return {"logits": self.lin(h), "hidden": h}

        def build():
            torch.manual_seed(0)
            return Net()
    """))
    model = load_model(f"{tmp_path / 'zoo.py'}:build")
    assert model.kind == "torch-factory" and model.signature.names == ["ids", "scale"]
    assert model.loaded["class"].endswith("Net") and model.token_high == {"*": 50}
    plan = plan_for(model, shapes="ids:1x7:int64,scale:1x1")
    assert plan.fill == ("tokens", "random") and plan.token_high[0] == 50
    tm, ys = _torch_outputs(model, plan, _inputs(plan, 5))
    assert tm.by_name and [y.shape for y in ys] == [(5, 3), (5, 4)]  # dict outputs flattened in order


def test_factory_errors(tmp_path):
    with pytest.raises(ModelError, match="cannot import module 'no_such_pkg.models'"):
        load_model("no_such_pkg.models:net")
    (tmp_path / "bad.py").write_text("def build():\n    return 3\n")
    with pytest.raises(ModelError, match="returned int, not a torch.nn.Module"):
        load_model(f"{tmp_path / 'bad.py'}:build")
    with pytest.raises(ModelError, match="has no attribute 'nope'"):
        load_model(f"{tmp_path / 'bad.py'}:nope")


def test_torchvision_factory():
    pytest.importorskip("torchvision")
    model = load_model("torchvision.models:mobilenet_v3_small")
    assert model.kind == "torch-factory" and model.signature.names == ["x"]
    plan = plan_for(model, shapes="x:1x3x96x96")
    _, (y,) = _torch_outputs(model, plan, _inputs(plan, 2))
    assert y.shape == (2, 1000)
