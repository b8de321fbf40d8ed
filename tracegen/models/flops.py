"""Parameters and FLOPs per image of an ONNX model, from its graph and inferred shapes.

Counts multiply-adds as 2 FLOPs in Conv (any groups), ConvTranspose, Gemm and MatMul, which
carry nearly all the arithmetic of vision networks; elementwise ops, pooling and normalisation
add one FLOP per output element. Shapes come from ONNX shape inference with the batch dimension
set to 1; a node whose shapes stay unknown is skipped and counted in ``uncounted_nodes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

_ELEMENTWISE = {"Relu", "Add", "Sub", "Mul", "Div", "Sigmoid", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid",
                "Tanh", "Erf", "Gelu", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization",
                "Softmax", "LayerNormalization", "InstanceNormalization"}


@dataclass(frozen=True)
class ModelStats:
    params: int
    flops_per_image: int
    input_name: str
    input_shape: tuple
    input_dtype: str
    output_name: str
    output_shape: tuple
    output_dtype: str
    uncounted_nodes: int = 0


def _dims(value_info) -> tuple | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)


def _dtype(value_info) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type).name


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            import onnx

            return onnx.helper.get_attribute_value(a)
    return default


def _node_flops(node, shapes: dict[str, tuple], inits: dict[str, tuple]) -> int | None:
    def shape(name):
        s = shapes.get(name) or inits.get(name)
        return s if s and all(isinstance(d, int) and d > 0 for d in s) else None

    out = shape(node.output[0]) if node.output else None
    op = node.op_type
    if op in ("Conv", "ConvTranspose"):
        w = shape(node.input[1])
        if out is None or w is None:
            return None
        # Each output element of Conv needs (Cin/groups * kH * kW) MACs = prod(w[1:]).
        per_out = prod(w[1:]) if op == "Conv" else prod(w[2:]) * w[0] // (_attr(node, "group", 1) or 1) // max(out[1], 1)
        return 2 * prod(out) * per_out
    if op in ("Gemm", "MatMul"):
        a, b = shape(node.input[0]), shape(node.input[1])
        if out is None or a is None:
            return None
        k = a[-1] if not (op == "Gemm" and _attr(node, "transA", 0)) else a[-2]
        return 2 * prod(out) * k
    if op in _ELEMENTWISE:
        return prod(out) if out else None
    return 0


def count_model(model) -> ModelStats:
    import onnx

    graph = model.graph
    init_names = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names]
    params = sum(prod(i.dims) for i in graph.initializer)
    # Shape inference with batch 1 so per-image FLOPs come out as plain numbers.
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for vi in list(probe.graph.input) + list(probe.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    inferred = onnx.shape_inference.infer_shapes(probe)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        d = _dims(vi)
        if d is not None:
            shapes[vi.name] = d
    inits = {i.name: tuple(i.dims) for i in graph.initializer}
    flops, uncounted = 0, 0
    for node in inferred.graph.node:
        n = _node_flops(node, shapes, inits)
        if n is None:
            uncounted += 1
        else:
            flops += n
    first_in, first_out = inputs[0], graph.output[0]
    return ModelStats(
        params=int(params), flops_per_image=int(flops),
        input_name=first_in.name, input_shape=_dims(first_in) or (), input_dtype=_dtype(first_in),
        output_name=first_out.name, output_shape=_dims(first_out) or (), output_dtype=_dtype(first_out),
        uncounted_nodes=uncounted,
    )
