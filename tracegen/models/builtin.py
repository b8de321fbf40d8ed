"""Built-in ResNet-like CNNs generated as ONNX in code with fixed seeds (no download).

The same name always gives the same bytes (fixed seeds, fixed producer fields, no timestamps),
so the sha256 in a manifest identifies the network. Only ops that onnxruntime, onnx2torch and
TensorRT all support are used: Conv (batch-norm folded into its bias), Relu, Add, MaxPool,
GlobalAveragePool, Flatten, Gemm, at opset 17. The input ``input`` is float32 [batch, 3, H, W]
with a dynamic batch dimension named "batch"; the output ``logits`` is [batch, 1000].

The weights are random, so the outputs mean nothing; what matters for benchmarking is that the
shapes and arithmetic match a real ResNet and that activations stay in a range that FP16 holds.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tracegen.errors import ModelError

# Bump whenever the generator emits different bytes for a name: it keys the on-disk cache.
GENERATOR_VERSION = 2
OPSET = 17
IR_VERSION = 8  # the lowest IR that opset 17 allows, so older onnxruntime and TensorRT parsers read it
NUM_CLASSES = 1000
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"


@dataclass(frozen=True)
class BuiltinSpec:
    """Shape of one built-in network: a 7x7 stem, then stages of basic residual blocks."""

    name: str
    description: str
    height: int
    width: int
    widths: tuple[int, ...]  # output channels per stage
    blocks: tuple[int, ...]  # basic blocks per stage
    seed: int
    stem: int = 64  # channels of the stem convolution

    @property
    def input_shape(self) -> tuple:
        return (BATCH_DIM, 3, self.height, self.width)


BUILTIN_MODELS: dict[str, BuiltinSpec] = {
    spec.name: spec
    for spec in (
        # Measured about 2.7 ms per image at batch 1 on one CPU core with onnxruntime.
        BuiltinSpec("tiny", "CPU default: narrow 4-stage ResNet at 192x192, a few ms per image on one core",
                    192, 192, (24, 48, 96, 192), (1, 1, 1, 1), seed=1, stem=24),
        BuiltinSpec("small", "ResNet-18-like at 768x448 (the seed reports' video resolution)",
                    448, 768, (64, 128, 256, 512), (2, 2, 2, 2), seed=2),
        BuiltinSpec("large", "ResNet-34-like at 1024x576",
                    576, 1024, (64, 128, 256, 512), (3, 4, 6, 3), seed=3),
    )
}


class UnknownBuiltinModel(ModelError, ValueError):
    """A built-in name that does not exist; the message lists the known ones."""


def builtin_names() -> list[str]:
    return list(BUILTIN_MODELS)


def get_spec(name: str) -> BuiltinSpec:
    try:
        return BUILTIN_MODELS[name]
    except KeyError:
        raise UnknownBuiltinModel(f"unknown built-in model {name!r}",
                                  f"choose one of: {', '.join(builtin_names())}") from None


class _GraphBuilder:
    """Collects the nodes and weights of one network; names follow the layer's place in it."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def _uniform(self, shape: tuple[int, ...], bound: float) -> np.ndarray:
        # Uniform rather than normal: Generator.uniform maps raw PCG64 doubles linearly, so the
        # bytes do not depend on which sampling algorithm a numpy release uses for normals.
        return self.rng.uniform(-bound, bound, size=shape).astype(np.float32)

    def _weight(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv(self, x: str, name: str, cin: int, cout: int, k: int, stride: int, gain: float = 1.0) -> str:
        """Conv with bias, as left by folding a batch-norm into it; He-uniform weights."""
        fan_in = cin * k * k
        w = self._uniform((cout, cin, k, k), gain * np.sqrt(6.0 / fan_in))
        b = self._uniform((cout,), 0.01)
        inputs = [x, self._weight(f"{name}.weight", w), self._weight(f"{name}.bias", b)]
        return self.node("Conv", inputs, name, kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)

    def relu(self, x: str) -> str:
        return self.node("Relu", [x], f"{x}.relu")

    def basic_block(self, x: str, name: str, cin: int, cout: int, stride: int, branch_gain: float) -> str:
        """Two 3x3 convs plus a shortcut (a strided 1x1 projection where the shape changes)."""
        y = self.relu(self.conv(x, f"{name}.conv1", cin, cout, 3, stride))
        y = self.conv(y, f"{name}.conv2", cout, cout, 3, 1, gain=branch_gain)
        if cin != cout or stride != 1:
            x = self.conv(x, f"{name}.downsample", cin, cout, 1, stride)
        return self.relu(self.node("Add", [y, x], f"{name}.add"))

    def head(self, x: str, channels: int) -> str:
        """Global average pool, flatten, fully connected to the class logits."""
        x = self.node("GlobalAveragePool", [x], "head.pool")
        x = self.node("Flatten", [x], "head.flatten", axis=1)
        w = self._uniform((NUM_CLASSES, channels), np.sqrt(3.0 / channels))  # unit gain: no ReLU follows
        b = np.zeros(NUM_CLASSES, np.float32)
        inputs = [x, self._weight("head.fc.weight", w), self._weight("head.fc.bias", b)]
        return self.node("Gemm", inputs, OUTPUT_NAME, transB=1)


def _body(g: _GraphBuilder, spec: BuiltinSpec) -> str:
    """Stem (7x7/2 conv, 3x3/2 max-pool) and the residual stages; returns the last tensor name."""
    x = g.relu(g.conv(INPUT_NAME, "stem.conv", 3, spec.stem, 7, 2))
    x = g.node("MaxPool", [x], "stem.pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    # Without batch-norm every residual add grows the activations' variance; scaling each
    # branch's last conv by 1/sqrt(blocks) (as Fixup does) keeps the growth bounded, so the deep
    # networks stay far from FP16's range limit when TensorRT runs them in half precision.
    branch_gain = 1.0 / np.sqrt(sum(spec.blocks))
    cin = spec.stem
    for s, (width, blocks) in enumerate(zip(spec.widths, spec.blocks), start=1):
        for b in range(blocks):
            stride = 2 if (b == 0 and s > 1) else 1
            x = g.basic_block(x, f"stage{s}.block{b}", cin, width, stride, branch_gain)
            cin = width
    return x


def build_spec(spec: BuiltinSpec) -> onnx.ModelProto:
    """The ONNX model of ``spec``; the same spec always serialises to the same bytes."""
    g = _GraphBuilder(spec.seed)
    logits = g.head(_body(g, spec), spec.widths[-1])
    graph = helper.make_graph(
        g.nodes, f"tracegen_{spec.name}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, list(spec.input_shape))],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, [BATCH_DIM, NUM_CLASSES])],
        g.initializers,
    )
    # Fixed producer fields and no timestamps, so the bytes depend only on the spec.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tracegen", producer_version=f"builtin-g{GENERATOR_VERSION}",
                              doc_string=spec.description)
    model.ir_version = IR_VERSION
    return model


def build_builtin(name: str) -> onnx.ModelProto:
    """The ONNX model of built-in network ``name`` (raises UnknownBuiltinModel, a ValueError)."""
    return build_spec(get_spec(name))


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tracegen" / "models"


def cache_path(name: str) -> Path:
    return cache_dir() / f"{name}-g{GENERATOR_VERSION}.onnx"


def _write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary file and os.replace, so readers never see a partial model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def builtin_onnx_bytes(name: str) -> bytes:
    """Serialized built-in model, from the on-disk cache when there, else generated and cached.

    A cache that cannot be written (read-only home, full disk) is not an error: the model is
    generated in memory each time instead, which costs up to a few seconds for ``large``.
    """
    get_spec(name)  # unknown names fail before touching the disk
    path = cache_path(name)
    try:
        return path.read_bytes()
    except OSError:
        pass
    data = build_builtin(name).SerializeToString()
    try:
        _write_atomically(path, data)
    except OSError:
        pass
    return data


def builtin_sha256(name: str) -> str:
    return hashlib.sha256(builtin_onnx_bytes(name)).hexdigest()
