"""Real exports of real architectures (tests/fixtures/models, made by tests/fixtures/make_models.py)
on the CPU backend: the legacy and the dynamo exporter (external data), a BERT with integer inputs
and two outputs; and the one-line errors a user meets with them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tracegen.backends.base import HostDevice
from tracegen.backends.onnxruntime import OnnxRuntimeBackend
from tracegen.errors import ModelError
from tracegen.models.shapes import plan_for
from tracegen.models.source import load_model
from tests.test_cli import assert_one_line_error, tracegen

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
LEGACY = MODELS / "mobilenet_v3_small_w025-legacy.onnx"
DYNAMO = MODELS / "mobilenet_v3_small_w025-dynamo.onnx"
BERT = MODELS / "bert_tiny-legacy.onnx"
BERT_SHAPES = "input_ids:1x16,attention_mask:1x16"
QUICK = ["--backend", "onnxruntime", "--threads", "1", "--batch-sizes", "1,2", "--idle-ms", "0,2", "--pacing", "spin",
         "--iterations", "4", "--batch-iterations", "3", "--warmup", "1", "-q"]


def test_what_was_loaded_and_how():
    legacy, dynamo = load_model(str(LEGACY)), load_model(str(DYNAMO))
    assert legacy.loaded["exporter"] == "torchscript (legacy)" and legacy.loaded["opset"] == 17
    assert legacy.loaded["external_data"] == [] and legacy.onnx_bytes is not None
    assert dynamo.loaded["exporter"] == "dynamo" and dynamo.loaded["opset"] >= 18
    assert dynamo.loaded["external_data"] == [DYNAMO.name + ".data"] and dynamo.onnx_bytes is None
    assert legacy.signature.inputs[0].shape == ("batch", 3, 96, 96) and dynamo.signature.fixed_batch == 1
    # Same network (BN folded into Conv by one exporter, not the other), weights counted beside the graph too.
    assert dynamo.params > 100_000 and abs(legacy.params - dynamo.params) < 0.01 * dynamo.params
    bert = load_model(str(BERT))
    assert bert.signature.names == ["input_ids", "attention_mask"] and len(bert.signature.outputs) == 2
    assert bert.token_high == {"input_ids": 1000}  # rows of the word-embedding table


def test_missing_external_data_is_named(tmp_path):
    shutil.copy(DYNAMO, tmp_path / DYNAMO.name)
    with pytest.raises(ModelError, match=f"external-data file {DYNAMO.name}.data .* is missing.*copy"):
        load_model(str(tmp_path / DYNAMO.name))


def _run_once(model, batch):
    backend = OnnxRuntimeBackend(model, threads=1)
    backend.activate(HostDevice())
    try:
        b = backend.prepare(batch)
        from tracegen.models.feed import feeder_for

        feeder_for(model.plan, b, batch).fill()
        backend.enqueue()
        return {k: np.array(v) for k, v in b.inputs.items()}, {k: np.array(v) for k, v in b.outputs.items()}
    finally:
        backend.deactivate()


@pytest.mark.parametrize("path", [LEGACY, DYNAMO])
def test_both_exports_give_the_same_logits(path):
    import onnxruntime as ort

    model = load_model(str(path))
    model = model.with_plan(plan_for(model))
    inputs, outputs = _run_once(model, 1)
    (x,), (y,) = inputs.values(), outputs.values()
    assert x.shape == (1, 3, 96, 96) and x.std() > 0.1  # a real preprocessed frame
    ref = ort.InferenceSession(str(LEGACY), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    assert y.shape == (1, 100) and np.allclose(y, ref, atol=1e-4)


def test_bert_with_integer_inputs_and_two_outputs():
    model = load_model(str(BERT))
    model = model.with_plan(plan_for(model, shapes=BERT_SHAPES))
    inputs, outputs = _run_once(model, 3)
    assert inputs["input_ids"].dtype == np.int64 and inputs["input_ids"].max() < 1000
    assert (inputs["attention_mask"] == 1).all()
    assert outputs["last_hidden_state"].shape == (3, 16, 32) and outputs["pooler_output"].shape == (3, 32)
    assert np.isfinite(outputs["last_hidden_state"]).all()


def test_cli_runs_bert_and_records_its_inputs(tmp_path):
    proc = tracegen("run", "--model", BERT, "--shapes", BERT_SHAPES, *QUICK, "-o", tmp_path, "--run-id", "bert",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "bert" / "manifest.json").read_text())
    plan = manifest["model"]["inputs"]
    assert plan["origin"] == "--shapes"
    assert [(i["name"], i["dtype"], i["shape"], i["fill"]) for i in plan["inputs"]] == [
        ("input_ids", "int64", [1, 16], "tokens"), ("attention_mask", "int64", [1, 16], "ones")]
    assert [o["name"] for o in manifest["model"]["signature"]["outputs"]] == ["last_hidden_state", "pooler_output"]
    assert manifest["model"]["loaded"]["exporter"] == "torchscript (legacy)"


def test_cli_fixed_batch_dynamo_export_runs_its_batch_only(tmp_path):
    proc = tracegen("run", "--model", DYNAMO, *QUICK, "-o", tmp_path, "--run-id", "dyn", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "fixed batch of 1" in " ".join(proc.stdout.split())  # the console wraps long lines
    manifest = json.loads((tmp_path / "dyn" / "manifest.json").read_text())
    assert manifest["config"]["batch_sizes"] == [1] and manifest["model"]["loaded"]["external_data"]


@pytest.mark.parametrize("extra, words", [
    ([], ["'input_ids'", "dynamic axis 1 (sequence)", "--shapes input_ids:1x128"]),
    (["--shapes", "input_ids:1x16"], ["'attention_mask'", "does not cover"]),
    (["--shapes", "input_ids:1x16x2,attention_mask:1x16"], ["3 dimensions", "takes 2"]),
    (["--shapes", "ids:1x16"], ["'ids'", "its inputs are: input_ids, attention_mask"]),
])
def test_cli_bad_shapes_are_one_line(tmp_path, extra, words):
    assert_one_line_error(tracegen("run", "--model", BERT, *QUICK, *extra, cwd=tmp_path), *words)
    assert not (tmp_path / "runs").exists()


def test_cli_bad_inputs_file_and_missing_external_data(tmp_path):
    np.savez(tmp_path / "data.npz", input_ids=np.zeros((1, 16), np.int32), attention_mask=np.ones((1, 16), np.int64))
    assert_one_line_error(tracegen("run", "--model", BERT, *QUICK, "--inputs", "data.npz", cwd=tmp_path),
                          "'input_ids' is int32", "astype('int64')")
    shutil.copy(DYNAMO, tmp_path / DYNAMO.name)
    assert_one_line_error(tracegen("run", "--model", DYNAMO.name, *QUICK, cwd=tmp_path), "external-data file",
                          "is missing")
    assert_one_line_error(tracegen("run", "--model", LEGACY, *QUICK, "--shapes", "images:1x3x64x64", cwd=tmp_path),
                          "fixes axis 2 at 96")
