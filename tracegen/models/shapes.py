"""``--shapes`` (trtexec's syntax) and ``--inputs data.npz``: the concrete input plan of a run.

``--shapes images:1x3x224x224`` or ``--shapes input_ids:1x128,attention_mask:1x128`` gives each
input's full shape, batch included, as trtexec does. A model that does not declare dtypes
(TorchScript, a Python factory) takes an optional third field: ``input_ids:1x128:int64``.
Names that contain ``:`` or ``,`` can be quoted: ``'onnx::input':1x3x8x8``.

Every problem is a ConfigError naming the input and the fix (the CLI prints one line, exit 2).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from tracegen.errors import ConfigError
from tracegen.models.signature import INPUT_DTYPES, InputPlan, Signature, TensorSpec, is_dynamic

_DIMS = re.compile(r"^\d+(x\d+)*$")


def parse_shapes(text: str | None) -> dict[str, tuple[tuple[int, ...], str | None]]:
    """``name:AxBxC[:dtype],...`` -> {name: (shape, dtype or None)}."""
    if not text:
        return {}
    out: dict[str, tuple[tuple[int, ...], str | None]] = {}
    for item in _split_items(text):
        name, rest = _split_name(item)
        parts = rest.split(":")
        dims, dtype = parts[0], (parts[1] if len(parts) > 1 else None)
        if not name or len(parts) > 2 or not _DIMS.match(dims):
            raise ConfigError(f"--shapes item {item!r} is not name:shape",
                              "write it as trtexec does, e.g. --shapes images:1x3x224x224 or input_ids:1x128,attention_mask:1x128")
        if dtype is not None and dtype not in INPUT_DTYPES:
            raise ConfigError(f"--shapes item {item!r} has unknown dtype {dtype!r}", f"choose from: {', '.join(INPUT_DTYPES)}")
        shape = tuple(int(d) for d in dims.split("x"))
        if 0 in shape:
            raise ConfigError(f"--shapes item {item!r} has a zero dimension", "give every dimension as 1 or more")
        if name in out:
            raise ConfigError(f"--shapes names input {name!r} twice", "give each input once")
        out[name] = (shape, dtype)
    return out


def _split_items(text: str) -> list[str]:
    items, buf, quote = [], "", None
    for ch in text:
        if quote:
            buf += ch
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
            buf += ch
        elif ch == ",":
            items.append(buf.strip())
            buf = ""
        else:
            buf += ch
    items.append(buf.strip())
    return [i for i in items if i]


def _split_name(item: str) -> tuple[str, str]:
    if item[:1] in "'\"":
        end = item.find(item[0], 1)
        if end > 0 and item[end + 1:end + 2] == ":":
            return item[1:end], item[end + 2:]
        raise ConfigError(f"--shapes item {item!r} has an unterminated quote", "write 'name':1x3x224x224")
    # The shape is what follows the last ':' that starts a dims field (names may contain ':').
    m = re.match(r"^(.*?):(\d+(?:x\d+)*(?::\w+)?)$", item)
    if not m:
        return "", item
    return m.group(1), m.group(2)


def load_npz(path: str) -> dict[str, np.ndarray]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"--inputs file {path} not found", "give an .npz written by numpy.savez with one array per model input")
    try:
        with np.load(p, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"--inputs file {path} is not a numpy .npz archive of arrays ({type(exc).__name__})",
                          "write it with numpy.savez('data.npz', input_name=array, ...)") from None


def _fill_for(t: TensorSpec, shape: tuple[int, ...]) -> str:
    name = t.name.lower()
    if t.dtype == "bool" or "mask" in name:
        return "ones"
    if t.dtype in ("int32", "int64"):
        if "type" in name or "segment" in name:
            return "zeros"
        if "position" in name:
            return "positions"
        return "tokens"
    if t.dtype in ("float32", "float16") and TensorSpec(t.name, t.dtype, shape).is_image:
        return "frames"
    return "random"


def plan_inputs(sig: Signature, *, shapes: str | None = None, inputs_file: str | None = None,
                token_high: dict[str, int] | None = None, model_name: str = "the model") -> InputPlan:
    """Resolve every input to a concrete shape and dtype, from the model, --shapes or --inputs."""
    if shapes and inputs_file:
        raise ConfigError("--shapes and --inputs both give input shapes", "use one of them (the arrays carry their shapes)")
    given = parse_shapes(shapes)
    arrays = load_npz(inputs_file) if inputs_file else {}
    names = sig.names
    source = given or arrays
    flag = "--shapes" if given else "--inputs"
    if not sig.declared:
        # Only argument names (or nothing) are known: the inputs are those the user names, passed
        # by name, with the user's shapes.
        if not source:
            example = f"{names[0]}:1x3x224x224" if names else "x:1x3x224x224"
            raise ConfigError(f"{model_name} does not declare its input shapes",
                              f"give them with --shapes {example}[:dtype] or --inputs data.npz")
        unknown = [n for n in source if names and n not in names]
        if unknown:
            raise ConfigError(f"{flag} names {', '.join(map(repr, unknown))}, which {model_name} does not take",
                              f"its forward() arguments are: {', '.join(names)}")
        sig = Signature(tuple(TensorSpec(n, None, None) for n in source), sig.outputs, declared=False)
        names = sig.names
    unknown = [n for n in source if n not in names]
    if unknown:
        raise ConfigError(f"{flag} names {', '.join(map(repr, unknown))}, which {model_name} does not take",
                          f"its inputs are: {', '.join(names)}")
    if arrays:
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ConfigError(f"--inputs file {inputs_file} has no array for input(s) {', '.join(missing)}",
                              f"save one array per input: {', '.join(names)}")
    specs, batched, fills, highs = [], [], [], []
    for t in sig.inputs:
        shape, dtype = _resolve_one(t, given.get(t.name), arrays.get(t.name), flag, model_name, inputs_file)
        resolved = TensorSpec(t.name, dtype, shape)
        specs.append(resolved)
        # Inputs whose axis 0 the model leaves dynamic follow the batch; so do all inputs of a
        # model that declares nothing (the user's shapes give batch 1 on axis 0, trtexec-style).
        batched.append(bool(shape) and (t.shape is None or is_dynamic(t.shape[0])))
        fill = "user" if arrays else _fill_for(resolved, shape)
        fills.append(fill)
        high = (token_high or {}).get(t.name, (token_high or {}).get("*"))
        highs.append(high if fill == "tokens" else None)
    fixed = None
    if not any(batched) and specs and specs[0].shape:
        fixed = specs[0].shape[0]
    return InputPlan(specs=tuple(specs), batched=tuple(batched), fill=tuple(fills), token_high=tuple(highs),
                     user_arrays=arrays, fixed_batch=fixed,
                     origin="--inputs" if arrays else ("--shapes" if given else "model"))


def _resolve_one(t: TensorSpec, given, array, flag, model_name, inputs_file) -> tuple[tuple[int, ...], str]:
    if array is not None:
        shape, dtype = tuple(array.shape), array.dtype.name
        if dtype not in INPUT_DTYPES:
            raise ConfigError(f"--inputs array {t.name!r} has dtype {dtype}, which tracegen does not feed",
                              f"save it as one of: {', '.join(INPUT_DTYPES)}")
        if t.dtype is not None and dtype != t.dtype:
            raise ConfigError(f"--inputs array {t.name!r} is {dtype} but {model_name} takes {t.dtype}",
                              f"save it with .astype('{t.dtype}')")
    elif given is not None:
        shape, dtype = given
        if dtype is not None and t.dtype is not None and dtype != t.dtype:
            raise ConfigError(f"--shapes gives {t.name!r} as {dtype} but {model_name} takes {t.dtype}",
                              f"leave the dtype out or write {t.name}:{'x'.join(map(str, shape))}:{t.dtype}")
        dtype = dtype or t.dtype or "float32"
    else:
        if t.shape is None:
            raise ConfigError(f"{model_name} does not declare the shape of input {t.name!r}",
                              f"give it with --shapes {t.name}:1x3x224x224[:dtype] or --inputs data.npz")
        rest = [(i, d) for i, d in enumerate(t.shape) if i > 0 and is_dynamic(d)]
        if rest:
            dims = ", ".join(f"axis {i} ({d if isinstance(d, str) else '?'})" for i, d in rest)
            example = "x".join("1" if i == 0 else ("128" if is_dynamic(d) else str(d)) for i, d in enumerate(t.shape))
            raise ConfigError(f"input {t.name!r} of {model_name} has dynamic {dims} that --shapes does not cover",
                              f"give its shape, e.g. --shapes {t.name}:{example}")
        shape = tuple(1 if i == 0 and is_dynamic(d) else int(d) for i, d in enumerate(t.shape))
        return shape, t.dtype or "float32"
    _check_against_model(t, shape, "--inputs array" if array is not None else "--shapes", model_name)
    return shape, dtype


def _check_against_model(t: TensorSpec, shape: tuple[int, ...], what: str, model_name: str) -> None:
    if t.shape is None:
        return
    want = "x".join(str(d) if not is_dynamic(d) else "?" for d in t.shape)
    if len(shape) != len(t.shape):
        raise ConfigError(f"{what} gives {t.name!r} {len(shape)} dimensions but {model_name} takes {len(t.shape)} ({want})",
                          f"give {t.name} a shape like {want.replace('?', '1')}")
    for axis, (got, dim) in enumerate(zip(shape, t.shape)):
        if not is_dynamic(dim) and got != dim:
            raise ConfigError(f"{what} gives {t.name!r} shape {'x'.join(map(str, shape))} but {model_name} fixes axis "
                              f"{axis} at {dim} ({want})", f"use {want.replace('?', '1')} or re-export the model with "
                              "that dimension dynamic")


def plan_for(model, *, shapes: str | None = None, inputs_file: str | None = None) -> InputPlan:
    """The model's input plan: the one already resolved, else one from its own signature."""
    if model.plan is not None and shapes is None and inputs_file is None:
        return model.plan
    return plan_inputs(model.signature, shapes=shapes, inputs_file=inputs_file, token_high=model.token_high,
                       model_name=_short(model.spec))


def _short(spec: str) -> str:
    return Path(spec).name if ("/" in spec or "\\" in spec) else spec
