"""Any model the torch backend runs, as a callable ``nn.Module`` on the CPU (the backend moves it
to the GPU), plus how to call it and how to flatten what it returns. Needs no CUDA, so the whole
conversion is tested on the CPU.

ONNX goes through ``onnx_normalize`` then onnx2torch; torch.export programs, TorchScript and
factories are used as they are. Inputs go positionally in the model's order to ONNX-converted
modules and torch.export programs, and by name to TorchScript and factories (whose inputs are
the ones the user named in --shapes / --inputs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from tracegen.errors import ModelError
from tracegen.models.model import ModelSource
from tracegen.optional import require

_NOT_IMPLEMENTED = re.compile(r"domain='(?P<domain>[^']*)', operation_type='(?P<op>\w+)', version=(?P<v>\d+)")
_registered = False


@dataclass
class TorchModel:
    module: Any  # torch.nn.Module (or a callable GraphModule)
    by_name: bool  # call module(**inputs) instead of module(*inputs)
    info: dict[str, Any] = field(default_factory=dict)
    program: Any = None  # the ExportedProgram a torch.export module came from

    def call(self, names: list[str], tensors: list) -> Any:
        if self.by_name:
            return self.module(**dict(zip(names, tensors)))
        return self.module(*tensors)


def flatten_outputs(out) -> list:
    """Every tensor a model returned (tensor, tuple, list, dict, a HF ModelOutput), in order."""
    torch = require("torch")
    if isinstance(out, torch.Tensor):
        return [out]
    if hasattr(out, "to_tuple"):  # transformers' ModelOutput: its non-None fields in order
        out = out.to_tuple()
    from torch.utils._pytree import tree_leaves

    return [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]


# Ops kept out of the version conversion (onnx_normalize.KEPT_DOMAIN) that tracegen converts:
# Gelu (opset 20, no earlier version) natively; the others with onnx2torch's own converter of an
# earlier version whose semantics they share, when the node uses nothing newer: ConstantOfShape
# (20 only added element types), Pad (18 added the optional ``axes`` input, 19 the "wrap" mode).
def _pad_as_13(node) -> str | None:
    inputs = list(node.input_values)
    if len(inputs) > 3 and inputs[3]:
        return "its axes input (Pad-18)"
    mode = node.attributes.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    return "mode wrap (Pad-19)" if mode == "wrap" else None


_DELEGATED = {"ConstantOfShape": (9, None), "Pad": (13, _pad_as_13)}
KEPT_CONVERTERS = ("Gelu", *_DELEGATED)
# Standard ops at opset <= 17 whose newest version onnx2torch lacks although it only added element
# types (bfloat16 in opset 16): converted as the version before. HF BERT's attention mask uses them.
_TYPE_ONLY = {("GreaterOrEqual", 16): 12, ("LessOrEqual", 16): 12}


def _register_kept_converters() -> None:
    global _registered
    if _registered:
        return
    torch = require("torch")
    from onnx2torch.node_converters.registry import add_converter, get_converter
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    from tracegen.models.onnx_normalize import KEPT_DOMAIN

    @add_converter(operation_type="Gelu", version=1, domain=KEPT_DOMAIN)
    def _gelu(node, graph):  # noqa: ARG001 - onnx2torch's converter signature
        approximate = node.attributes.get("approximate", "none")
        if isinstance(approximate, bytes):
            approximate = approximate.decode()
        return OperationConverterResult(torch_module=torch.nn.GELU(approximate=approximate),
                                        onnx_mapping=onnx_mapping_from_node(node))

    def delegate(op, version, check):
        older = get_converter(op, version)

        def convert(node, graph):
            why = check(node) if check else None
            if why:
                raise NotImplementedError(f"Converter is not implemented (OperationDescription(domain='{KEPT_DOMAIN}', "
                                          f"operation_type='{op}', version=0)) for {why}")
            return older(node, graph)
        add_converter(operation_type=op, version=1, domain=KEPT_DOMAIN)(convert)

    for op, (version, check) in _DELEGATED.items():
        delegate(op, version, check)
    for (op, version), older in _TYPE_ONLY.items():
        add_converter(operation_type=op, version=version)(get_converter(op, older))
    _registered = True


def _unsupported(model: ModelSource, exc: Exception, steps: dict) -> ModelError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    m = _NOT_IMPLEMENTED.search(text)
    if m:
        from tracegen.models.onnx_normalize import KEPT_DOMAIN

        domain = "" if m.group("domain") == KEPT_DOMAIN else m.group("domain")
        opset = steps.get("opset_in") if m.group("domain") == KEPT_DOMAIN else m.group("v")
        what = f"operator {(domain + '.') if domain else ''}{m.group('op')} (opset {opset})"
    else:
        what = f"this graph ({type(exc).__name__}: {text[:200]})"
    return ModelError(f"the torch backend cannot convert {what} of {model.spec} with onnx2torch",
                      "run it with --backend onnxruntime (CPU) or --backend tensorrt, which run every standard ONNX "
                      "operator, or give the PyTorch model itself (a .pt2 program or a factory module:callable)")


def convert_onnx(model: ModelSource) -> TorchModel:
    onnx2torch = require("onnx2torch")
    from tracegen.models.onnx_file import read_proto
    from tracegen.models.onnx_normalize import normalise

    _register_kept_converters()
    steps: dict[str, Any] = {}
    try:
        proto, steps = normalise(model.onnx_bytes if model.onnx_bytes is not None else model.path,
                                 convertible=KEPT_CONVERTERS)
    except Exception as exc:  # noqa: BLE001 - normalising is best effort; onnx2torch tries the original
        steps = {"normalise": f"skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"}
        try:
            proto = read_proto(model)
        except Exception as exc2:  # noqa: BLE001
            raise ModelError(f"cannot read {model.spec} with its weights ({str(exc2).splitlines()[0][:200]})",
                             "keep the .onnx.data file next to the model, as the exporter wrote it") from None
    try:
        module = onnx2torch.convert(proto)
    except Exception as exc:  # noqa: BLE001 - onnx2torch raises plain exceptions per op
        raise _unsupported(model, exc, steps) from None
    return TorchModel(module.eval(), by_name=False, info={"route": "onnx -> normalise -> onnx2torch", **steps})


def torch_model(model: ModelSource) -> TorchModel:
    """The model as a CPU module in eval mode, for any kind the torch backend runs."""
    if model.kind == "onnx":
        return convert_onnx(model)
    if model.kind == "engine":
        raise ModelError(f"{model.spec} is a TensorRT engine; the torch backend runs ONNX and PyTorch models",
                         "use --backend tensorrt, or give the ONNX model")
    module, program = model.handle, None
    if module is None:
        raise ModelError(f"{model.spec} was not loaded", "load it with tracegen.models.source.load_model")
    if model.kind == "torch-export":
        program, module = module, module.module()
    elif hasattr(module, "eval"):
        try:
            module = module.eval()
        except (NotImplementedError, RuntimeError):  # torch.export modules refuse eval()/train()
            pass
    route = {"torch-export": "torch.export program (ExportedProgram.module())", "torchscript": "TorchScript module",
             "torch-factory": "nn.Module from the factory"}[model.kind]
    return TorchModel(module, by_name=model.kind != "torch-export", info={"route": route}, program=program)


def to_device(tm: TorchModel, device: str, half: bool) -> TorchModel:
    """Move the module (parameters and buffers) to ``device``, in fp16 for ``half``. A
    torch.export program is moved with torch's own pass, which also rewrites device arguments
    recorded in the graph."""
    module = tm.module
    if tm.program is not None and device != "cpu":
        from torch.export.passes import move_to_device_pass

        module = move_to_device_pass(tm.program, device).module()
    else:
        module = module.to(device)
    if half:
        module = module.half()
    return TorchModel(module, tm.by_name, tm.info, tm.program)


def make_call(tm: TorchModel, names: list[str], tensors: list) -> Callable[[], list]:
    """A zero-argument forward over fixed input tensors returning the flat output tensors."""
    def forward():
        return flatten_outputs(tm.call(names, tensors))
    return forward
