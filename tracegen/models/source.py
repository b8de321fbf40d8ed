"""Resolve ``--model`` (built-in name, ONNX file or serialized TensorRT engine) to a ModelSource."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tracegen.backends.base import ModelSource
from tracegen.errors import ModelError

BUILTIN_PREFIX = "builtin:"
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def _from_onnx_bytes(spec: str, data: bytes, path: str | None) -> ModelSource:
    import onnx

    from tracegen.models.flops import count_model

    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise ModelError(
            f"{spec} is not an ONNX model ({type(exc).__name__})",
            "pass an .onnx file, a TensorRT engine (.engine/.plan) with --backend tensorrt, or builtin:tiny",
        ) from None
    if not proto.graph.input or not proto.graph.output:
        raise ModelError(f"{spec} is not an ONNX model with inputs and outputs", "export the model again, or use builtin:tiny")
    try:
        stats = count_model(proto)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot read the graph of {spec}: {str(exc).splitlines()[0]}", "check it with `python -m onnx.checker`") from None
    if len(stats.input_shape) != 4:
        raise ModelError(
            f"{spec} takes input {stats.input_name} of shape {list(stats.input_shape)}; tracegen feeds images [N, C, H, W]",
            "export the model with one NCHW image input",
        )
    return ModelSource(
        spec=spec,
        kind="onnx",
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        input_name=stats.input_name,
        input_shape=tuple(stats.input_shape),
        input_dtype=stats.input_dtype,
        output_name=stats.output_name,
        output_shape=tuple(stats.output_shape),
        output_dtype=stats.output_dtype,
        params=stats.params,
        flops_per_image=stats.flops_per_image,
        onnx_bytes=data,
    )


def load_model(spec: str) -> ModelSource:
    if spec.startswith(BUILTIN_PREFIX):
        from tracegen.models.builtin import builtin_names, builtin_onnx_bytes

        name = spec[len(BUILTIN_PREFIX):]
        if name not in builtin_names():
            raise ModelError(f"unknown built-in model {name!r}", f"choose one of: {', '.join('builtin:' + n for n in builtin_names())}")
        return _from_onnx_bytes(spec, builtin_onnx_bytes(name), None)
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelError(f"model file {spec} not found", "check the path, or use a built-in model such as builtin:tiny")
    if not path.is_file():
        raise ModelError(f"model path {spec} is not a file", "pass an .onnx file or a serialized TensorRT engine")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {spec} ({exc.strerror})", "check its permissions") from None
    if not data:
        raise ModelError(f"model file {spec} is empty", "export the model again")
    if path.suffix.lower() in ENGINE_SUFFIXES:
        return ModelSource(
            spec=spec, kind="engine", path=str(path.resolve()), sha256=hashlib.sha256(data).hexdigest(),
            input_name="", input_shape=(), input_dtype="", output_name="", output_shape=(), output_dtype="",
            params=None, flops_per_image=None, onnx_bytes=None,
        )
    return _from_onnx_bytes(spec, data, str(path.resolve()))
