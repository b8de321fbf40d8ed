"""The real networks of the model matrix (benchmarks/models_matrix.py), exported as users do.

Eight torchvision classifiers, a BERT built from a transformers config (integer inputs, two
outputs) and an SSDlite detector (its head's two outputs: box regression and class logits; NMS
belongs to postprocessing), all with random weights (seed 0, nothing downloaded). Each is
exported with PyTorch's legacy exporter (``dynamo=False``, opset 17, dynamic batch; BERT also a
dynamic sequence) and with the default dynamo exporter (fixed shapes, weights in a
``.onnx.data`` file beside the model). ResNet-50 also comes as a torch.export program (.pt2,
dynamic batch) and as the factory ``torchvision.models:resnet50``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

CLASSIFIERS = ("resnet50", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "vit_b_16", "regnet_y_800mf",
               "densenet121", "swin_t")
EXPORTERS = ("legacy", "dynamo")
BERT_SEQ = 128


@dataclass
class Export:
    model: str
    exporter: str  # legacy | dynamo | torch.export | factory
    spec: str = ""  # what --model gets
    shapes: str | None = None  # what --shapes gets
    seconds: float = 0.0
    error: str | None = None
    files: list[str] = field(default_factory=list)


def jobs(models: list[str] | None = None) -> list[tuple[str, str]]:
    """(model, exporter) pairs, largest exports first so the pool finishes evenly."""
    names = list(models or [*CLASSIFIERS, "bert_base", "ssdlite320"])
    out = [(m, e) for m in names for e in EXPORTERS]
    if "resnet50" in names:
        out += [("resnet50", "torch.export"), ("resnet50", "factory")]
    slow = {"swin_t": 0, "vit_b_16": 1, "bert_base": 2, "densenet121": 3, "convnext_tiny": 4}
    return sorted(out, key=lambda j: (slow.get(j[0], 9), j[1] != "dynamo"))


class _SSDHead:
    """SSDlite320 backbone + head: the raw (bbox_regression, cls_logits) a deployment exports."""

    @staticmethod
    def build():
        import torch
        from torchvision.models.detection import ssdlite320_mobilenet_v3_large

        det = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()

        class Head(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone, self.head = det.backbone, det.head

            def forward(self, images):
                features = list(self.backbone(images).values())
                out = self.head(features)
                return out["bbox_regression"], out["cls_logits"]

        return Head().eval()


class _Bert:
    @staticmethod
    def build():
        import torch
        from transformers import BertConfig, BertModel

        bert = BertModel(BertConfig()).eval()  # bert-base-uncased's architecture, random weights

        class Encoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask):
                out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
                return out.last_hidden_state, out.pooler_output

        return Encoder().eval()


def build(model: str):
    """The network and example inputs at batch 1."""
    import torch

    torch.manual_seed(0)
    if model == "bert_base":
        ids = torch.randint(0, 30522, (1, BERT_SEQ))
        return _Bert.build(), (ids, torch.ones(1, BERT_SEQ, dtype=torch.int64)), ["input_ids", "attention_mask"], \
            ["last_hidden_state", "pooler_output"]
    if model == "ssdlite320":
        return _SSDHead.build(), (torch.randn(1, 3, 320, 320),), ["images"], ["bbox_regression", "cls_logits"]
    import torchvision

    net = getattr(torchvision.models, model)(weights=None).eval()
    return net, (torch.randn(1, 3, 224, 224),), ["images"], ["logits"]


def export(model: str, exporter: str, out_dir: str, threads: int = 2) -> Export:
    """Export one network (in a worker process); errors are returned, not raised."""
    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = Export(model, exporter)
    start = time.perf_counter()
    try:
        if exporter == "factory":
            result.spec, result.shapes = f"torchvision.models:{model}", "x:1x3x224x224"
            return result
        net, args, in_names, out_names = build(model)
        if exporter == "legacy":
            path = out / f"{model}-legacy.onnx"
            dynamic = {n: {0: "batch", 1: "sequence"} if model == "bert_base" else {0: "batch"} for n in in_names}
            dynamic.update({n: {0: "batch"} for n in out_names})
            torch.onnx.export(net, args, path, dynamo=False, opset_version=17, input_names=in_names,
                              output_names=out_names, dynamic_axes=dynamic)
            if model == "bert_base":
                result.shapes = f"input_ids:1x{BERT_SEQ},attention_mask:1x{BERT_SEQ}"
        elif exporter == "dynamo":
            path = out / f"{model}-dynamo.onnx"
            torch.onnx.export(net, args, path, external_data=True)  # the default exporter and its defaults
        else:  # torch.export program with a dynamic batch
            path = out / f"{model}.pt2"
            batch = torch.export.Dim("batch", min=1, max=256)
            torch.export.save(torch.export.export(net, args, dynamic_shapes=({0: batch},)), path)
        result.spec = str(path)
        result.files = sorted(str(p) for p in out.glob(path.name + "*"))
    except Exception as exc:  # noqa: BLE001 - an exporter failure is a row of the table
        result.error = f"export failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
    finally:
        result.seconds = round(time.perf_counter() - start, 1)
    return result
