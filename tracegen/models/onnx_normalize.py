"""Normalise an ONNX graph before onnx2torch converts it, so real exports convert.

What real exports need (measured on eight torchvision classifiers from both PyTorch exporters,
benchmarks/models_matrix.py):
- The legacy exporter shares deduplicated weights through ``Identity`` nodes, so a Conv's bias
  is no initializer and onnx2torch fails (``KeyError: 'onnx::Conv_501'``). onnxruntime's
  offline optimisation at its basic level (constant folding, redundant-node elimination; only
  standard ONNX ops) turns them back into initializers. onnxscript's optimizer does the same
  but took 129 s on swin_t where onnxruntime takes 3 s (2-core CPU).
- The dynamo exporter writes opset 18+ (ReduceMean-18, Reshape-19, Pad-19, AveragePool-19), for
  which onnx2torch has no converters. ONNX's version converter rewrites the graph at opset 17.
- Ops that did not exist at opset 17 (Gelu-20), and ops the version converter has no adapter
  for (ConstantOfShape 20 -> 19, which only added types), are moved to a private domain before
  the conversion and converted by tracegen's own onnx2torch converters
  (``torch_convert.KEPT_CONVERTERS``); any other such op is named in the error.
- ``Reshape(allowzero=1)`` (dynamo) is not implemented in onnx2torch; with a constant target
  shape without zeros it means the same as ``allowzero=0``.
- onnx2torch's Flatten fails when ``axis`` is 0 or the input's rank (HF BERT's attention mask,
  legacy exporter): those become the Reshape to ``[1, -1]`` / ``[-1, 1]`` they are.
"""

from __future__ import annotations

from typing import Any

TARGET_OPSET = 17  # onnx2torch's converters cover opset 17 (and older) best
KEPT_DOMAIN = "tracegen_kept"  # ops with no opset-17 version, converted by tracegen itself


def _opset(proto) -> int | None:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _exists_at(op: str, version: int) -> bool:
    from onnx import defs

    try:
        defs.get_schema(op, max_inclusive_version=version, domain="")
    except Exception:  # noqa: BLE001 - SchemaError: no version at or below
        return False
    return True


def _keep_new_ops(proto, target: int) -> list[str]:
    """Move ops that have no version <= target into KEPT_DOMAIN (the version converter cannot
    adapt them and would fail); returns their op types."""
    from onnx import helper

    kept = set()
    for node in proto.graph.node:
        if node.domain in ("", "ai.onnx") and not _exists_at(node.op_type, target):
            node.domain = KEPT_DOMAIN
            kept.add(node.op_type)
    if kept:
        proto.opset_import.append(helper.make_opsetid(KEPT_DOMAIN, 1))
    return sorted(kept)


def _fix_reshape_allowzero(proto) -> int:
    from onnx import numpy_helper

    consts = {i.name: i for i in proto.graph.initializer}
    fixed = 0
    for node in proto.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in consts:
            continue
        for attr in node.attribute:
            if attr.name == "allowzero" and attr.i == 1 and 0 not in numpy_helper.to_array(consts[node.input[1]]).tolist():
                attr.i = 0
                fixed += 1
    return fixed


def ort_basic_optimise(source: bytes | str):
    """onnxruntime's offline optimisation at the basic level, written to a temporary directory
    (weights as external data, so no 2 GB protobuf limit) and loaded back with its weights."""
    import os
    import tempfile

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="tracegen-ort-") as tmp:
        out = os.path.join(tmp, "model.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = out
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "weights.bin")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        proto = onnx.load(out, load_external_data=True)
    # onnxruntime lists every domain it knows; keep only those the graph uses.
    used = {n.domain for n in proto.graph.node} | {"", "ai.onnx"}
    keep = [o for o in proto.opset_import if o.domain in used]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    return proto


def _version_convert(proto, target: int, steps: dict[str, Any], convertible: tuple[str, ...]):
    """ONNX's version converter; an op it has no adapter for is kept (moved to KEPT_DOMAIN) and
    the conversion retried, as long as a kept-op converter exists for it (``convertible``)."""
    import re

    import onnx
    from onnx import helper

    kept = steps.setdefault("kept_ops", [])
    for _ in range(8):
        try:
            converted = onnx.version_converter.convert_version(proto, target)
            steps["version_conversion"] = f"onnx.version_converter {_opset(proto)} -> {target}"
            return converted
        except Exception as exc:  # noqa: BLE001 - RuntimeError / ConvertError with the adapter's name
            text = str(exc).splitlines()[0]
            m = re.search(r"for (\w+)\s*$", text) or re.search(r"Version of (\w+) exists", text)
            op = m.group(1) if m else None
            if op is None or op in kept or op not in convertible:
                steps["version_conversion"] = f"failed ({text[:160]}); kept opset {_opset(proto)}"
                return proto
            for node in proto.graph.node:
                if node.domain in ("", "ai.onnx") and node.op_type == op:
                    node.domain = KEPT_DOMAIN
            if not any(o.domain == KEPT_DOMAIN for o in proto.opset_import):
                proto.opset_import.append(helper.make_opsetid(KEPT_DOMAIN, 1))
            kept.append(op)
    return proto


def normalise(source: bytes | str, target: int = TARGET_OPSET,
              convertible: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """A graph onnx2torch converts (from the model's bytes or path), and what was done to it.
    ``convertible``: ops the caller converts itself when the version converter cannot adapt them."""
    steps: dict[str, Any] = {}
    proto = ort_basic_optimise(source)
    steps["opset_in"] = _opset(proto)
    steps["constant_folding"] = f"onnxruntime basic optimisation: {len(proto.graph.node)} nodes"
    opset = _opset(proto)
    if opset is not None and opset > target:
        steps["kept_ops"] = _keep_new_ops(proto, target)
        proto = _version_convert(proto, target, steps, convertible)
    proto = _infer_shapes(proto, steps)
    flat = _fix_flatten_edges(proto)
    if flat:
        steps["flatten_edges"] = f"{flat} Flatten nodes with axis 0 or axis = rank written as Reshape"
    fixed = _fix_reshape_allowzero(proto)
    if fixed:
        steps["reshape_allowzero"] = f"{fixed} Reshape nodes with constant shapes set to allowzero=0"
    steps["opset_out"] = _opset(proto)
    return proto, steps



def _infer_shapes(proto, steps: dict[str, Any]):
    """ONNX shape inference (onnx2torch reads some ops' static shapes, e.g. LayerNormalization's
    normalised axes, from value_info); then LayerNormalization inputs whose trailing axes stay
    unknown get them from the scale tensor, whose shape they equal by the operator's definition."""
    import onnx
    from onnx import helper

    try:
        proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
        steps["shape_inference"] = "onnx.shape_inference"
    except Exception as exc:  # noqa: BLE001 - converters that need no shapes still work
        steps["shape_inference"] = f"failed ({str(exc).splitlines()[0][:120]})"
    graph = proto.graph
    inits = {i.name: tuple(i.dims) for i in graph.initializer}
    infos = {v.name: v for v in [*graph.value_info, *graph.input]}
    patched = 0
    for node in graph.node:
        if node.op_type != "LayerNormalization" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        scale = inits[node.input[1]]
        info = infos.get(node.input[0])
        dims = None if info is None else info.type.tensor_type.shape.dim
        if dims is not None and len(dims) >= len(scale) and all(d.HasField("dim_value") for d in dims[len(dims) - len(scale):]):
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        rank = len(dims) if dims else (len(scale) - axis if axis < 0 else None)
        if rank is None:
            continue
        shape = [None] * (rank - len(scale)) + list(scale)
        if info is None:
            info = helper.make_tensor_value_info(node.input[0], onnx.TensorProto.FLOAT, shape)
            graph.value_info.append(info)
            infos[node.input[0]] = info
        else:
            info.type.tensor_type.ClearField("shape")
            info.type.tensor_type.CopyFrom(helper.make_tensor_type_proto(info.type.tensor_type.elem_type, shape))
        patched += 1
    if patched:
        steps["layernorm_shapes"] = f"{patched} LayerNormalization inputs given their normalised axes from the scale"
    return proto


def _fix_flatten_edges(proto) -> int:
    from onnx import helper, numpy_helper
    import numpy as np

    graph = proto.graph
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in [*graph.value_info, *graph.input]
             if v.type.tensor_type.HasField("shape")}
    ranks.update({i.name: len(i.dims) for i in graph.initializer})
    fixed = 0
    for node in graph.node:
        if node.op_type != "Flatten" or node.domain not in ("", "ai.onnx") or node.input[0] not in ranks:
            continue
        rank = ranks[node.input[0]]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        axis = axis + rank if axis < 0 else axis
        if axis not in (0, rank):
            continue
        shape_name = f"{node.output[0]}__tracegen_shape"
        graph.initializer.append(numpy_helper.from_array(np.array([1, -1] if axis == 0 else [-1, 1], np.int64), shape_name))
        new = helper.make_node("Reshape", [node.input[0], shape_name], list(node.output), name=node.name)
        node.CopyFrom(new)
        fixed += 1
    return fixed
