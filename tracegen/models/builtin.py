"""Built-in ResNet-like CNNs generated as ONNX in code with fixed seeds (no download).

The same name always gives the same bytes (fixed seeds, fixed producer fields, no timestamps),
so the sha256 in a manifest identifies the network. Only ops that onnxruntime, onnx2torch and
TensorRT all support are used: Conv (batch-norm folded into its bias), Relu, Add, MaxPool,
GlobalAveragePool, Flatten, Gemm. The batch dimension is dynamic ("batch").
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Bump when the generator changes what it emits: it keys the on-disk cache.
GENERATOR_VERSION = 1
OPSET = 17
IR_VERSION = 8  # readable by every onnxruntime and TensorRT 10 parser in use
CLASSES = 1000


@dataclass(frozen=True)
class BuiltinSpec:
    name: str
    description: str
    height: int
    width: int
    widths: tuple[int, ...]  # channels per stage
    blocks: tuple[int, ...]  # residual blocks per stage
    stem: int  # channels of the stem convolution
    seed: int


BUILTIN_MODELS: dict[str, BuiltinSpec] = {
    spec.name: spec
    for spec in (
        BuiltinSpec("tiny", "CPU default: narrow 4-stage ResNet at 192x192, a few ms per image on one core",
                    192, 192, (24, 48, 96, 192), (1, 1, 1, 1), 24, 1),
        BuiltinSpec("small", "ResNet-18-like at 768x448 (the seed's video resolution)",
                    448, 768, (64, 128, 256, 512), (2, 2, 2, 2), 64, 2),
        BuiltinSpec("large", "ResNet-34-like at 1024x576",
                    576, 1024, (64, 128, 256, 512), (3, 4, 6, 3), 64, 3),
    )
}


def builtin_names() -> list[str]:
    return list(BUILTIN_MODELS)


class _Graph:
    """Accumulates nodes and He-initialised weights of one network."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.weights: list = []
        self._n = 0

    def _name(self, kind: str) -> str:
        self._n += 1
        return f"{kind}_{self._n}"

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int, relu: bool) -> str:
        from onnx import helper, numpy_helper

        name = self._name("conv")
        fan_in = cin * k * k
        w = (self.rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (self.rng.standard_normal(cout) * 0.01).astype(np.float32)
        self.weights += [numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")]
        pad = k // 2
        self.nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [name], kernel_shape=[k, k],
                                           strides=[stride, stride], pads=[pad] * 4))
        return self.relu(name) if relu else name

    def relu(self, x: str) -> str:
        from onnx import helper

        name = self._name("relu")
        self.nodes.append(helper.make_node("Relu", [x], [name]))
        return name

    def block(self, x: str, cin: int, cout: int, stride: int) -> str:
        """Basic residual block; a 1x1 projection when the shape changes."""
        from onnx import helper

        y = self.conv(x, cin, cout, 3, stride, relu=True)
        y = self.conv(y, cout, cout, 3, 1, relu=False)
        skip = x if (cin == cout and stride == 1) else self.conv(x, cin, cout, 1, stride, relu=False)
        name = self._name("add")
        self.nodes.append(helper.make_node("Add", [y, skip], [name]))
        return self.relu(name)


def build_builtin(name: str):
    """The ONNX ModelProto of built-in network ``name``."""
    from onnx import TensorProto, helper, numpy_helper

    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown built-in model {name!r}; known: {', '.join(builtin_names())}")
    spec = BUILTIN_MODELS[name]
    g = _Graph(spec.seed)
    x = g.conv("input", 3, spec.stem, 7, 2, relu=True)
    pooled = g._name("maxpool")
    g.nodes.append(helper.make_node("MaxPool", [x], [pooled], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, cin = pooled, spec.stem
    for stage, (width, blocks) in enumerate(zip(spec.widths, spec.blocks)):
        for i in range(blocks):
            x = g.block(x, cin, width, 2 if (i == 0 and stage > 0) else 1)
            cin = width
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    g.nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    fc = (g.rng.standard_normal((CLASSES, cin)) * np.sqrt(1.0 / cin)).astype(np.float32)
    g.weights += [numpy_helper.from_array(fc, "fc.w"), numpy_helper.from_array(np.zeros(CLASSES, np.float32), "fc.b")]
    g.nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1))
    graph = helper.make_graph(
        g.nodes, f"tracegen_{name}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, spec.height, spec.width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
        g.weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tracegen",
                              producer_version=str(GENERATOR_VERSION), doc_string=spec.description)
    model.ir_version = IR_VERSION
    return model


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tracegen" / "models"


def builtin_onnx_bytes(name: str) -> bytes:
    """Serialized built-in model, cached on disk (written atomically) when the cache is writable."""
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown built-in model {name!r}; known: {', '.join(builtin_names())}")
    path = _cache_dir() / f"{name}-g{GENERATOR_VERSION}.onnx"
    try:
        return path.read_bytes()
    except OSError:
        pass
    data = build_builtin(name).SerializeToString()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        pass  # read-only home: generating again next time costs a second or two
    return data


def builtin_sha256(name: str) -> str:
    return hashlib.sha256(builtin_onnx_bytes(name)).hexdigest()
