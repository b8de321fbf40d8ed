"""The user's own models through the torch backend on a GPU (marked gpu: skipped without one):
a dynamo export with external data (fixed batch), a BERT with integer inputs and two outputs, a
torch.export program and a factory."""

import json
from pathlib import Path

import pytest

from tracegen.run import build_config, run_benchmark

pytestmark = pytest.mark.gpu
MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
SHORT = dict(backend="torch", batch_sizes="1,4", batch_iterations=10, warmup=3, idle_ms="0,5", pacing="sleep",
             iterations=10, launch="eager")


@pytest.fixture(autouse=True)
def _needs_torch_cuda():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx2torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA GPU")


def _run(tmp_path, run_id, **flags):
    result = run_benchmark(build_config(flags={**SHORT, "out": str(tmp_path), "run_id": run_id, **flags}),
                           progress=False)
    assert result.status == "complete"
    return json.loads((result.run_dir / "manifest.json").read_text())


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_bert_with_integer_inputs_and_two_outputs(tmp_path, precision):
    m = _run(tmp_path, f"bert-{precision}", model=str(MODELS / "bert_tiny-legacy.onnx"), precision=precision,
             shapes="input_ids:1x16,attention_mask:1x16")
    assert [i["dtype"] for i in m["model"]["inputs"]["inputs"]] == ["int64", "int64"]
    assert m["backend"]["conversion"]["route"].startswith("onnx -> normalise")


def test_dynamo_export_with_external_data_runs_its_fixed_batch(tmp_path):
    m = _run(tmp_path, "dyn", model=str(MODELS / "mobilenet_v3_small_w025-dynamo.onnx"))
    assert m["config"]["batch_sizes"] == [1] and m["model"]["loaded"]["external_data"]
    assert m["backend"]["conversion"]["opset_out"] == 17


def test_graph_launch_of_a_legacy_export(tmp_path):
    _run(tmp_path, "graph", model=str(MODELS / "mobilenet_v3_small_w025-legacy.onnx"), launch="eager,graph")


def test_torch_export_program_and_factory(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from torchvision.models import mobilenet_v3_small

    net = mobilenet_v3_small(weights=None).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(net, (torch.randn(2, 3, 96, 96),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "m.pt2")
    m = _run(tmp_path, "pt2", model=str(tmp_path / "m.pt2"))
    assert m["model"]["kind"] == "torch-export" and m["config"]["batch_sizes"] == [1, 4]
    m = _run(tmp_path, "factory", model="torchvision.models:mobilenet_v3_small", shapes="x:1x3x96x96")
    assert m["model"]["loaded"]["class"].endswith("MobileNetV3")
