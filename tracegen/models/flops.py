"""Parameters and FLOPs per image of any ONNX model, from its graph and inferred shapes.

What is counted (a multiply-add is 2 FLOPs):
- Conv (any groups), ConvInteger, QLinearConv, ConvTranspose, Gemm, MatMul, MatMulInteger and
  QLinearMatMul: 2 x multiply-adds. Bias and Gemm's C term are left out (negligible, and the
  usual convention).
- Pooling: one FLOP per element of each window (global pools: one per input element).
- Elementwise ops, activations, normalisations, Softmax and reductions: one FLOP per output
  element, a cheap estimate.
- Data movement (Reshape, Transpose, Concat, ...) costs nothing.
Any other op (custom ops, RNNs, Einsum, control flow) and any node whose shapes stay unknown
after ONNX shape inference is left out and reported in ``uncounted_nodes`` / ``uncounted_ops``.

Shapes come from ``onnx.shape_inference`` with a symbolic batch dimension set to 1. A model
exported with a fixed batch B > 1 is counted at B and divided by B, so FLOPs are per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import onnx
from onnx import helper

Shape = tuple[int, ...]

# op -> (index of the data input, index of the weight input)
_CONV_OPS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3)}
_MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1)}
_POOL_OPS = {"MaxPool", "AveragePool", "LpPool"}
_GLOBAL_POOL_OPS = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}
_PER_OUTPUT_OPS = {
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "HardSigmoid", "HardSwish", "Mish",
    "Softplus", "Softsign", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Reciprocal", "Neg", "Abs", "Pow", "Clip",
    "Add", "Sub", "Mul", "Div", "Max", "Min", "Mean", "Sum", "Where", "Equal", "Less", "Greater", "Not", "And",
    "Or", "Floor", "Ceil", "Round", "Sign", "Cos", "Sin",
    "BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization", "LRN",
    "Softmax", "LogSoftmax", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ArgMax", "ArgMin",
    "Resize", "Upsample", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
}
_FREE_OPS = {
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice", "Gather",
    "GatherElements", "GatherND", "Expand", "Tile", "Pad", "Identity", "Dropout", "Cast", "CastLike", "Shape",
    "Size", "Constant", "ConstantOfShape", "Range", "DepthToSpace", "SpaceToDepth", "NonZero", "TopK",
}


@dataclass(frozen=True)
class ModelStats:
    params: int  # elements of all initializers
    flops_per_image: int  # of the nodes that could be counted
    input_name: str
    input_shape: tuple  # as declared: ints, a dim_param string, or -1 for an anonymous dim
    input_dtype: str  # numpy name, e.g. "float32"
    output_name: str
    output_shape: tuple
    output_dtype: str
    uncounted_nodes: int = 0
    uncounted_ops: tuple[str, ...] = ()  # op types of the uncounted nodes, sorted

    @property
    def complete(self) -> bool:
        """True when every node's cost is in ``flops_per_image``."""
        return self.uncounted_nodes == 0


def _declared_shape(value_info: onnx.ValueInfoProto) -> tuple | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or -1) for d in t.shape.dim)


def _dtype_name(value_info: onnx.ValueInfoProto) -> str:
    elem = value_info.type.tensor_type.elem_type
    try:
        return helper.tensor_dtype_to_np_dtype(elem).name
    except (KeyError, TypeError, ValueError):  # undefined or with no numpy twin
        return onnx.TensorProto.DataType.Name(elem).lower()


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _graph_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Inputs a caller feeds; before IR 4 initializers were listed among the inputs too."""
    init_names = {i.name for i in graph.initializer}
    return [i for i in graph.input if i.name not in init_names]


def _with_batch_one(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy whose inputs have a symbolic batch dim set to 1, and the fixed batch it kept."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    fixed_batch = 1
    for i, vi in enumerate(_graph_inputs(probe.graph)):
        dims = vi.type.tensor_type.shape.dim
        if not dims:
            continue
        if dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            if i == 0:
                fixed_batch = dims[0].dim_value
        else:
            dims[0].dim_value = 1
    return probe, fixed_batch


def _known_shapes(model: onnx.ModelProto) -> dict[str, Shape]:
    """Fully known shapes of every tensor shape inference reached (and of all initializers)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - a model inference rejects still has declared shapes to use
        inferred = model
    graph = inferred.graph
    shapes: dict[str, Shape] = {i.name: tuple(i.dims) for i in graph.initializer}
    for vi in [*graph.value_info, *graph.input, *graph.output]:
        dims = _declared_shape(vi)
        if dims is not None and all(isinstance(d, int) and d >= 0 for d in dims):
            shapes[vi.name] = dims
    return shapes


def _node_flops(node: onnx.NodeProto, shapes: dict[str, Shape]) -> int | None:
    """FLOPs of one node at batch 1, or None when its op or shapes cannot be counted."""
    def shape(index: int) -> Shape | None:
        # Optional inputs may be missing or named "" (left out).
        return shapes.get(node.input[index]) if index < len(node.input) and node.input[index] else None

    op = node.op_type
    out = shapes.get(node.output[0]) if node.output else None
    if op in _FREE_OPS:
        return 0
    if op in _CONV_OPS:
        w = shape(_CONV_OPS[op][1])
        # Each output element sums over (Cin / groups) x kernel = prod(w[1:]) products.
        return None if out is None or w is None else 2 * prod(out) * prod(w[1:])
    if op == "ConvTranspose":
        x, w = shape(0), shape(1)
        # Each input element is scattered to (Cout / groups) x kernel = prod(w[1:]) outputs.
        return None if x is None or w is None else 2 * prod(x) * prod(w[1:])
    if op in _MATMUL_OPS:
        a = shape(_MATMUL_OPS[op][0])
        if out is None or a is None or not a:
            return None
        k = a[-2] if (op == "Gemm" and _attr(node, "transA", 0)) else a[-1]
        return 2 * prod(out) * k
    if op in _POOL_OPS:
        kernel = _attr(node, "kernel_shape")
        return None if out is None or not kernel else prod(out) * prod(kernel)
    if op in _GLOBAL_POOL_OPS:
        x = shape(0)
        return None if x is None else prod(x)
    if op in _PER_OUTPUT_OPS:
        return None if out is None else prod(out)
    return None


def count_model(model: onnx.ModelProto) -> ModelStats:
    """Parameters, FLOPs per image and the first input and output of ``model``."""
    graph = model.graph
    inputs = _graph_inputs(graph)
    if not inputs or not graph.output:
        raise ValueError("the ONNX graph has no input to feed or no output")
    probe, fixed_batch = _with_batch_one(model)
    shapes = _known_shapes(probe)
    flops, uncounted = 0, []
    for node in probe.graph.node:
        n = _node_flops(node, shapes)
        if n is None:
            uncounted.append(node.op_type)
        else:
            flops += n
    first_in, first_out = inputs[0], graph.output[0]
    return ModelStats(
        params=sum(prod(i.dims) for i in graph.initializer),
        flops_per_image=flops // fixed_batch,
        input_name=first_in.name, input_shape=_declared_shape(first_in) or (), input_dtype=_dtype_name(first_in),
        output_name=first_out.name, output_shape=_declared_shape(first_out) or (),
        output_dtype=_dtype_name(first_out),
        uncounted_nodes=len(uncounted), uncounted_ops=tuple(sorted(set(uncounted))),
    )
