"""ONNX models from a file or from memory: external data files, the signature, facts for the
manifest (opset, producer, exporter), and token-id ranges read off the embedding tables."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tracegen.errors import ModelError
from tracegen.models.model import ModelSource
from tracegen.models.signature import Signature, TensorSpec

_HASH_CHUNK = 1 << 22


def _dims(vi) -> tuple | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or -1) for d in t.shape.dim)


def _dtype(vi) -> str | None:
    from onnx import helper

    elem = vi.type.tensor_type.elem_type
    try:
        return helper.tensor_dtype_to_np_dtype(elem).name
    except (KeyError, TypeError, ValueError):
        return None


def onnx_signature(proto) -> Signature:
    graph = proto.graph
    inits = {i.name for i in graph.initializer}
    inputs = tuple(TensorSpec(vi.name, _dtype(vi), _dims(vi)) for vi in graph.input if vi.name not in inits)
    outputs = tuple(TensorSpec(vi.name, _dtype(vi), _dims(vi)) for vi in graph.output)
    return Signature(inputs, outputs, declared=True)


def token_ranges(proto, sig: Signature) -> dict[str, int]:
    """Integer input -> the smallest first dimension of an embedding table it indexes (a Gather
    of an initializer by the input, directly or through a Cast): ids below it are valid."""
    graph = proto.graph
    init_rows = {i.name: i.dims[0] for i in graph.initializer if len(i.dims) == 2}
    int_inputs = {t.name for t in sig.inputs if t.dtype in ("int32", "int64")}
    alias = {name: name for name in int_inputs}
    for node in graph.node:  # follow Cast / Identity one step
        if node.op_type in ("Cast", "Identity") and node.input and node.input[0] in alias:
            alias[node.output[0]] = alias[node.input[0]]
    out: dict[str, int] = {}
    for node in graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] in alias and node.input[0] in init_rows:
            name = alias[node.input[1]]
            rows = int(init_rows[node.input[0]])
            out[name] = min(out.get(name, rows), rows)
    return out


def external_files(proto, base: Path | None) -> list[Path]:
    """The external-data files the model's tensors point to (each once, in order)."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    files: list[Path] = []
    for tensor in _get_all_tensors(proto):
        if uses_external_data(tensor):
            location = next((e.value for e in tensor.external_data if e.key == "location"), None)
            if location is None:
                continue
            path = (base or Path(".")) / location
            if path not in files:
                files.append(path)
    return files


def _sha256(paths: list[Path], first: bytes | None = None) -> str:
    h = hashlib.sha256()
    if first is not None:
        h.update(first)
    for p in paths:
        with open(p, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _exporter(proto) -> str | None:
    """Which PyTorch exporter wrote the model, as far as the file tells."""
    if proto.producer_name != "pytorch":
        return None
    # The dynamo exporter (torch.export + onnxscript) names values after the FX graph and
    # records the onnxscript/pkg.torch metadata; the TorchScript-based one does neither.
    keys = {p.key for p in proto.metadata_props}
    if any(k.startswith("pkg.") for k in keys) or any(o.domain.startswith("pkg.") for o in proto.opset_import):
        return "dynamo"
    return "dynamo" if any(n.name.startswith("node_") for n in proto.graph.node[:50]) else "torchscript (legacy)"


def load_onnx(spec: str, data: bytes, path: Path | None) -> ModelSource:
    import onnx

    from tracegen.models.flops import count_model

    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise ModelError(
            f"{spec} is not an ONNX model ({type(exc).__name__})",
            "pass an .onnx file, a TensorRT engine (.engine/.plan) with --backend tensorrt, a torch.export .pt2, "
            "TorchScript, or a factory module:callable",
        ) from None
    sig = onnx_signature(proto)
    if not sig.inputs or not sig.outputs:
        raise ModelError(f"{spec} is not an ONNX model with inputs and outputs", "export the model again, or use builtin:tiny")
    files = external_files(proto, path.parent if path else None)
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise ModelError(f"the external-data file {missing[0].name} of {spec} is missing (looked in {missing[0].parent})",
                         f"copy {missing[0].name} next to {path.name if path else 'the model'}, as the exporter wrote it, "
                         "or re-export with the weights inside (external_data=False)")
    try:
        stats = count_model(proto)
        params, flops = stats.params, stats.flops_per_image
    except Exception:  # noqa: BLE001 - a graph FLOPs cannot be counted on still runs
        params, flops = None, None
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    loaded: dict[str, Any] = {
        "format": "onnx", "opset": opset, "ir_version": proto.ir_version,
        "producer": f"{proto.producer_name} {proto.producer_version}".strip() or None,
        "exporter": _exporter(proto),
        "external_data": [f.name for f in files],
        "bytes": len(data) + sum(f.stat().st_size for f in files),
    }
    return ModelSource(
        spec=spec, kind="onnx", path=str(path.resolve()) if path else None,
        sha256=_sha256(files, data), signature=sig, params=params, flops_per_image=flops,
        # Backends load a model with external data from its path (the bytes alone lack weights).
        onnx_bytes=None if files else data, loaded=loaded, token_high=token_ranges(proto, sig),
    )


def read_proto(model: ModelSource):
    """The full ModelProto with external data loaded (for converters that need the weights)."""
    import onnx

    if model.onnx_bytes is not None:
        return onnx.load_from_string(model.onnx_bytes)
    return onnx.load(model.path, load_external_data=True)
