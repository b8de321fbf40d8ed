"""The user's own pre/postprocessing, run inside the timed steps (``--preprocess module:function``).

Contract (host side, so any library works):

- ``preprocess(frames, out)``: ``frames`` is a list of the iteration's raw camera frames (uint8,
  H x W x 3, 1.5x the model's resolution); write the model's input into ``out``, a
  (batch, C, H, W) array of the model's dtype (page-locked on a GPU, so the copy that follows
  is asynchronous). Its time is the ``preprocess`` step.
- ``postprocess(output)``: ``output`` is the model's output for the batch, in host memory after
  the device-to-host copy and the sync. Its time is the ``postprocess`` step; the return value
  is ignored.

Specs are ``package.module:function`` (importable from ``sys.path``) or ``path/to/file.py:function``.
From Python, pass the function itself (``RunConfig(preprocess=my_fn)``). Do one-off set-up at
import time or in a closure, not in the function: every call is timed.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Callable

from tracegen.errors import ConfigError

BUILTIN = ("host", "device")
ARITY = {"preprocess": 2, "postprocess": 1}
SIGNATURE = {"preprocess": "preprocess(frames, out)", "postprocess": "postprocess(output)"}


def is_user_step(value) -> bool:
    return callable(value) or (isinstance(value, str) and value not in BUILTIN)


def check_spec(option: str, value):
    """Config-time check of the option's form (the import happens when the run is prepared)."""
    if callable(value) or value is None:
        return value
    text = str(value).strip()
    if text in BUILTIN:
        return text
    module, sep, func = text.rpartition(":")
    if not sep or not module or not func.isidentifier():
        raise ConfigError(f"--{option} {text!r} is neither host, device nor MODULE:FUNCTION",
                          f"e.g. --{option} device, or --{option} mypipeline:{option}")
    return text


def spec_of(value) -> str:
    """How the manifest names a step: the spec, or ``module:qualname`` of a function."""
    if callable(value):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"
    return str(value)


def load_step(option: str, value) -> Callable:
    """The user's function for ``option`` (preprocess|postprocess), imported and checked."""
    fn = value if callable(value) else _import(option, str(value).strip())
    if not callable(fn):
        raise ConfigError(f"--{option} {spec_of(value)} is not a function", f"point it at {SIGNATURE[option]}")
    try:
        inspect.signature(fn).bind(*([None] * ARITY[option]))
    except TypeError:
        raise ConfigError(f"--{option} {spec_of(value)} cannot be called as {SIGNATURE[option]}",
                          f"give it the signature {SIGNATURE[option]}") from None
    except ValueError:  # builtins without a signature: trust them
        pass
    return fn


def _import(option: str, text: str):
    module_name, _, func = text.rpartition(":")
    try:
        if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
            module = _import_file(option, Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except ConfigError:
        raise
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--{option} {text}: cannot import {module_name} ({exc})",
                          "put its folder on PYTHONPATH, or give path/to/file.py:function") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise ConfigError(f"--{option} {text}: importing {module_name} failed ({type(exc).__name__}: {exc})",
                          "fix the module; it must import without errors") from None
    try:
        return getattr(module, func)
    except AttributeError:
        raise ConfigError(f"--{option} {text}: {module_name} has no {func}", f"define {SIGNATURE[option]} there") from None


def _import_file(option: str, path: Path):
    if not path.is_file():
        raise ConfigError(f"--{option}: {path} is not a file", "check the path before the ':'")
    name = f"tracegen_user_{option}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
