"""Resolve ``--model`` to a ModelSource: a built-in network, an ONNX file (with its external data),
a serialized TensorRT engine, a torch.export program, TorchScript, or a Python factory."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tracegen.errors import ModelError
from tracegen.models.model import KINDS, ModelSource
from tracegen.models.signature import Signature

BUILTIN_PREFIX = "builtin:"
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
FORMATS_HINT = ("give an .onnx file, a TensorRT engine (.engine/.plan), a torch.export program (.pt2), TorchScript "
                "(.ts/.pt), a factory such as torchvision.models:resnet50, or builtin:tiny")


def model_kind(spec: str | None) -> str:
    """The kind a spec will load as, from its name alone (no file is read)."""
    from tracegen.models.torch_native import EXPORT_SUFFIXES, TORCHSCRIPT_SUFFIXES, is_factory_spec

    if not spec or spec.startswith(BUILTIN_PREFIX):
        return "onnx"
    suffix = Path(spec).suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    if suffix in EXPORT_SUFFIXES:
        return "torch-export"
    if suffix in TORCHSCRIPT_SUFFIXES:
        return "torchscript"
    if is_factory_spec(spec):
        return "torch-factory"
    return "onnx"


def load_model(spec: str) -> ModelSource:
    from tracegen.models.onnx_file import load_onnx

    if spec.startswith(BUILTIN_PREFIX):
        from tracegen.models.builtin import builtin_names, builtin_onnx_bytes

        name = spec[len(BUILTIN_PREFIX):]
        if name not in builtin_names():
            raise ModelError(f"unknown built-in model {name!r}", f"choose one of: {', '.join('builtin:' + n for n in builtin_names())}")
        source = load_onnx(spec, builtin_onnx_bytes(name), None)
        return _with(source, {"format": "onnx", "builtin": name, "generated": "in code, fixed seed"})
    kind = model_kind(spec)
    if kind == "torch-factory":
        from tracegen.models.torch_native import load_factory

        return load_factory(spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelError(f"model file {spec} not found", f"check the path; {FORMATS_HINT}")
    if not path.is_file():
        raise ModelError(f"model path {spec} is not a file", FORMATS_HINT)
    if kind in ("torch-export", "torchscript"):
        from tracegen.models.torch_native import load_export, load_torchscript

        return (load_export if kind == "torch-export" else load_torchscript)(spec, path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {spec} ({exc.strerror})", "check its permissions") from None
    if not data:
        raise ModelError(f"model file {spec} is empty", "export the model again")
    if kind == "engine":
        return ModelSource(spec=spec, kind="engine", path=str(path.resolve()), sha256=hashlib.sha256(data).hexdigest(),
                           signature=Signature((), (), declared=False),
                           loaded={"format": "serialized TensorRT engine", "bytes": len(data)})
    return load_onnx(spec, data, path)


def _with(source: ModelSource, loaded: dict) -> ModelSource:
    from dataclasses import replace

    return replace(source, loaded={**source.loaded, **loaded})


def backends_for(kind: str) -> tuple[str, ...]:
    return KINDS.get(kind, ())
