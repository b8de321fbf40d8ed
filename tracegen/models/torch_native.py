"""PyTorch models without ONNX, for the torch backend: a ``torch.export`` program (``.pt2``),
TorchScript (``torch.jit.save``), or a Python factory (``module:callable``, ``file.py:callable``)
that returns an ``nn.Module``, e.g. ``torchvision.models:resnet50`` (random weights).

A ``.pt2`` declares names, dtypes and shapes (dynamic dims as symbols). TorchScript and factories
declare only their argument names: ``--shapes`` or ``--inputs`` give the rest, and the inputs
are passed by name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from tracegen.errors import ModelError
from tracegen.models.model import ModelSource
from tracegen.models.signature import Signature, TensorSpec
from tracegen.optional import require

EXPORT_SUFFIXES = (".pt2",)
TORCHSCRIPT_SUFFIXES = (".ts", ".torchscript", ".pt", ".pth", ".jit")
_FACTORY = re.compile(r"^(?P<target>[\w.]+|.+\.py):(?P<attr>[A-Za-z_][\w.]*)$")


def is_factory_spec(spec: str) -> bool:
    return bool(_FACTORY.match(spec)) and not Path(spec).exists()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _torch_dtype(dtype) -> str | None:
    name = str(dtype).replace("torch.", "")
    return {"float": "float32", "half": "float16", "long": "int64", "int": "int32"}.get(name, name)


def _fake_dims(val) -> tuple:
    """Static dims as ints, dynamic ones (SymInts: int() would return their example value) as
    their symbol's name."""
    torch = require("torch")
    return tuple(str(d) if isinstance(d, torch.SymInt) else int(d) for d in val.shape)


def _token_high(module) -> dict[str, int]:
    """The smallest embedding table of the module bounds every generated token id."""
    torch = require("torch")
    sizes = [m.num_embeddings for m in module.modules() if isinstance(m, torch.nn.Embedding)]
    return {"*": min(sizes)} if sizes else {}


def _params(module) -> int | None:
    try:
        return int(sum(p.numel() for p in module.parameters()))
    except Exception:  # noqa: BLE001
        return None


def load_export(spec: str, path: Path) -> ModelSource:
    torch = require("torch")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on a bad archive
        raise ModelError(f"{spec} is not a torch.export program ({str(exc).splitlines()[0][:160]})",
                         "save it with torch.export.save(torch.export.export(model, args), 'model.pt2')") from None
    from torch.export.graph_signature import InputKind

    user = [s.arg.name for s in program.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    inputs = []
    for name in user:
        val = nodes[name].meta.get("val")
        inputs.append(TensorSpec(name, _torch_dtype(val.dtype), _fake_dims(val)) if hasattr(val, "shape")
                      else TensorSpec(name, None, None))
    out_node = next(n for n in program.graph.nodes if n.op == "output")
    out_vals = out_node.args[0] if isinstance(out_node.args[0], (list, tuple)) else [out_node.args[0]]
    n_user_out = len(program.graph_signature.user_outputs)
    outputs = []
    for i, node in enumerate(out_vals[-n_user_out:] if n_user_out else out_vals):
        val = getattr(node, "meta", {}).get("val")
        outputs.append(TensorSpec(f"output{i}", _torch_dtype(val.dtype), _fake_dims(val)) if hasattr(val, "shape")
                       else TensorSpec(f"output{i}", None, None))
    return ModelSource(
        spec=spec, kind="torch-export", path=str(path.resolve()), sha256=_sha256(path),
        signature=Signature(tuple(inputs), tuple(outputs), declared=all(t.shape is not None for t in inputs)),
        params=int(sum(v.numel() for v in program.state_dict.values())),
        loaded={"format": "torch.export program (.pt2)", "loader": "torch.export.load", "torch": torch.__version__},
        token_high=_export_token_high(program, user), handle=program,
    )


def _export_token_high(program, user: list[str]) -> dict[str, int]:
    """Input -> rows of the smallest embedding table it indexes (aten.embedding in the graph)."""
    torch = require("torch")
    out: dict[str, int] = {}
    for node in program.graph.nodes:
        if node.op == "call_function" and node.target == torch.ops.aten.embedding.default and len(node.args) >= 2:
            weight, index = node.args[0], node.args[1]
            val = getattr(weight, "meta", {}).get("val")
            name = getattr(index, "name", None)
            if name in user and val is not None and len(val.shape) == 2:
                out[name] = min(out.get(name, int(val.shape[0])), int(val.shape[0]))
    return out


def load_torchscript(spec: str, path: Path) -> ModelSource:
    torch = require("torch")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        hint = ("a .pt/.pth file saved with torch.save is a pickle, not a model tracegen can load: save it with "
                "torch.jit.save(torch.jit.script(model)), torch.export.save, or give a factory module:callable")
        raise ModelError(f"{spec} is not TorchScript ({str(exc).splitlines()[0][:120]})", hint) from None
    try:
        names = [a.name for a in module.forward.schema.arguments[1:]]
    except Exception:  # noqa: BLE001
        names = []
    return ModelSource(
        spec=spec, kind="torchscript", path=str(path.resolve()), sha256=_sha256(path),
        signature=Signature(tuple(TensorSpec(n, None, None) for n in names), (), declared=False),
        params=_params(module), loaded={"format": "TorchScript", "loader": "torch.jit.load", "torch": torch.__version__},
        token_high=_token_high(module), handle=module,
    )


def _import_target(target: str, spec: str):
    if target.endswith(".py"):
        file = Path(target).expanduser()
        if not file.is_file():
            raise ModelError(f"factory file {target} not found", "give file.py:callable with an existing file")
        name = f"tracegen_user_{file.stem}"
        mod_spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - the user's code
            raise ModelError(f"importing {target} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}",
                             "fix the file, or run it with python to see the traceback") from None
        return module, str(file.resolve())
    try:
        module = importlib.import_module(target)
    except ImportError as exc:
        raise ModelError(f"cannot import module {target!r} of factory {spec} ({exc})",
                         "install it, or give the file instead: path/to/file.py:callable") from None
    return module, getattr(module, "__file__", None)


def load_factory(spec: str) -> ModelSource:
    torch = require("torch")
    m = _FACTORY.match(spec)
    module, file = _import_target(m.group("target"), spec)
    obj: Any = module
    for part in m.group("attr").split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ModelError(f"{m.group('target')} has no attribute {m.group('attr')!r}",
                             "give module:callable with a callable that returns an nn.Module")
    try:
        made = obj() if callable(obj) and not isinstance(obj, torch.nn.Module) else obj
    except Exception as exc:  # noqa: BLE001 - the user's code
        raise ModelError(f"calling {spec}() failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}",
                         "the factory must build the model without arguments") from None
    if not isinstance(made, torch.nn.Module):
        raise ModelError(f"{spec}() returned {type(made).__name__}, not a torch.nn.Module",
                         "return the model (an nn.Module) from the factory")
    try:
        params = inspect.signature(made.forward).parameters.values()
        names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)]
    except (TypeError, ValueError):
        names = []
    return ModelSource(
        spec=spec, kind="torch-factory", path=file, sha256=None,
        signature=Signature(tuple(TensorSpec(n, None, None) for n in names), (), declared=False),
        params=_params(made),
        loaded={"format": "Python factory", "callable": spec, "class": f"{type(made).__module__}.{type(made).__qualname__}",
                "torch": torch.__version__},
        token_high=_token_high(made), handle=made,
    )
