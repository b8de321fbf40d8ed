"""The options of ``tracegen run``, defined once.

Each field of ``RunConfig`` is one option: its default, its click type (choices, ranges, comma
lists), its help text and, where it depends on the device, its CPU and GPU defaults. The CLI
builds its flags from these fields (``tracegen.cli.run``), the TOML config file is fed through
the same click types (as click's ``default_map``), and the README's option table is generated
from them (``python -m tracegen.cli.readme``; a test keeps it in step).

Adding an option is one field here (``option(...)``), plus its use in the runner.
Values left as ``None`` are filled by ``resolve`` once the backend (CPU or GPU) is known.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tracegen.backends.registry import BACKEND_CHOICES
from tracegen.errors import ConfigError
from tracegen.params import CommaList, Count, Number, OneOf, OutputDir, PlainName
from tracegen.run.options import OptionSpec, device_defaults, option
from tracegen.telemetry.nsys_capture import Globs, IterationRanges
from tracegen.run.pipeline_options import ArrivalPattern, ScheduleSpec, StepPlace
from tracegen.trace import schema as S

PRECISIONS = ("auto", "fp32", "fp16")
PACING_CHOICES = tuple(p for p in S.PACINGS if p != "none")  # "none" is the 0 ms baseline's own
MS_MAX = 3_600_000.0  # an hour


class ModelSpec(OneOf):
    """Any string: a file path or builtin:NAME, checked when the model is loaded."""

    name = "model"

    def __init__(self):
        super().__init__(())

    def get_metavar(self, param, ctx=None) -> str:
        return "MODEL"

    def parse(self, value, param=None, ctx=None) -> str:
        if not isinstance(value, str):
            self.fail_with(f"takes a model (builtin:NAME or a file), got {value!r}", param, ctx,
                           fix="e.g. --model builtin:tiny")
        return value


@dataclass(frozen=True)
class RunConfig:
    model: str | None = option(
        None, ModelSpec(), "`builtin:NAME` (tiny, small, large: generated with fixed seeds, no download), an ONNX "
        "file (either PyTorch exporter, external `.onnx.data` beside it), a serialized TensorRT engine "
        "(.engine/.plan), or for the torch backend a `torch.export` program (.pt2), TorchScript (.ts/.pt) or a "
        "Python factory `module:callable` / `file.py:callable` (e.g. `torchvision.models:resnet50`)",
        cpu="builtin:tiny", gpu="builtin:small", short="-m")
    shapes: str | None = option(
        None, None, "input shapes, trtexec-style: `images:1x3x224x224` or `input_ids:1x128,attention_mask:1x128`; "
        "needed for dynamic dimensions other than the batch and for models that declare no shapes (TorchScript, "
        "factories: `name:1x128:int64` adds the dtype). Axis 0 of inputs with a dynamic batch follows the batch size",
        default_text="the model's own")
    inputs: str | None = option(
        None, None, "an `.npz` with one array per model input (names, dtypes and shapes as the model takes them), "
        "fed instead of generated inputs; other batch sizes repeat its rows", default_text="generated: frames for "
        "image inputs, token ids below the vocabulary, masks of ones")
    backend: str = option(
        "auto", OneOf(BACKEND_CHOICES), "`auto` picks tensorrt when TensorRT imports and a CUDA GPU is present, else "
        "torch on a CUDA GPU, else onnxruntime on the CPU", short="-b")
    precision: str = option("auto", OneOf(PRECISIONS), "`fp32` or `fp16` (GPU backends)", cpu="fp32", gpu="fp16")
    scenarios: tuple[str, ...] = option(
        ("batch", "idle"), CommaList(OneOf(S.SCENARIOS)),
        "`batch` (every batch size back to back) and/or `idle` (gaps between inferences)", flag="--scenario")
    batch_sizes: tuple[int, ...] | None = option(
        None, CommaList(Count(1, example="1,2,4,8")), "batch sizes of the batch scenario",
        cpu=(1, 2, 4, 8, 16), gpu=(1, 2, 4, 8, 16, 32, 64))
    idle_batch: int = option(1, Count(1, example="1"), "batch size of the idle-delay variants")
    idle_ms: tuple[float, ...] | None = option(
        None, CommaList(Number(0, MS_MAX, unit="ms", example="0,20,100")),
        "gaps between inferences in ms; `0` is the continuous baseline", cpu=(0.0, 20.0, 100.0), gpu=(0.0, 20.0, 50.0))
    pacing: tuple[str, ...] | None = option(
        None, CommaList(OneOf(PACING_CHOICES)), "how the host spends a gap: `sleep`, `spin` (busy-wait), `keepalive` "
        "(GPU kept busy with cheap work on a side stream; GPU only)", cpu=("sleep", "spin"),
        gpu=("sleep", "spin", "keepalive"))
    launch: tuple[str, ...] | None = option(
        None, CommaList(OneOf(S.LAUNCHES)), "`eager`, or `graph` (CUDA graph replay; GPU only)", cpu=("eager",),
        gpu=("eager", "graph"))
    sync_mode: tuple[str, ...] = option(
        ("auto",), CommaList(OneOf(S.SYNC_MODES)), "how the host waits for the GPU: CUDA context flag spin / yield / "
        "blocking sync")
    pipeline: tuple[str, ...] = option(
        ("full",), CommaList(OneOf(S.PIPELINES)), "`full` (pre, copies, infer, sync, post) or `infer` (the engine "
        "alone, like trtexec without transfers)")
    # -- the pipeline around the model and the arrivals (tracegen.prepost, tracegen.run.arrivals) --
    preprocess: Any = option(
        None, StepPlace("preprocess"), "where resize + normalise run: `host` (OpenCV into the input buffer), `device` "
        "(the raw uint8 frame is uploaded, a CUDA kernel on tracegen's stream writes the model's input), or your own "
        "`MODULE:FUNCTION` (or `file.py:FUNCTION`) called as `fn(frames, out)` inside the timed step",
        default_text="`host` / `device`")
    postprocess: Any = option(
        None, StepPlace("postprocess"), "where softmax + top-5 run: `host`, `device` (a CUDA kernel; only the result is "
        "copied back), or your own `MODULE:FUNCTION` called as `fn(output)` with the host output",
        default_text="`host` / `device`")
    arrival: str = option(
        "fixed", ArrivalPattern(), "arrival pattern of the paced idle variants: `fixed` gaps of `--idle-ms`, "
        "`poisson` (exponential gaps with mean `--idle-ms`), `burst:N` (N iterations back to back, then the gap)")
    fps: tuple[float, ...] | None = option(
        None, CommaList(Number(0.001, 100_000, example="30")), "frame-rate pacing: each frame is due every 1000/FPS ms "
        "and the gap is what remains of the interval after the work (one variant per rate and pacing, beside the "
        "no-gap baseline)", default_text="off")
    schedule: str | None = option(
        None, ScheduleSpec(), "gaps that change at given iterations, `GAP_MS:N,...` (`0:200,20:200,0:200`: 200 back to "
        "back, 200 after 20 ms gaps, 200 back to back; a segment may name its pacing, `20:200:spin`): one variant per "
        "pacing, its true change points recorded in the manifest", default_text="off")
    iterations: int | None = option(None, Count(1), "measured iterations per idle-delay variant", cpu=300, gpu=300,
                                    short="-n")
    batch_iterations: int | None = option(None, Count(1), "measured iterations per batch variant", cpu=30, gpu=60)
    warmup: int | None = option(None, Count(0, example="10"), "warm-up iterations per variant (recorded and flagged, "
                                "not dropped)", cpu=10, gpu=20)
    threads: int | None = option(None, Count(1, 4096, example="2"), "CPU backend threads",
                                 default_text="onnxruntime's default")
    out: str = option("runs", OutputDir(as_text=True), "the run lands in `OUT/RUN_ID`; an existing run directory is "
                      "never reused", short="-o")
    run_id: str | None = option(None, PlainName(), "name of the run directory",
                                default_text="`<UTC time>-<model>-<backend>-<random>`")
    nsys: bool = option(False, None, "also record the run under `nsys profile -t cuda,nvtx,osrt "
                        "--cuda-graph-trace=node` and keep the `.nsys-rep` in the run (`tracegen nsys-import RUN_DIR` "
                        "reads it)", is_flag=True)
    nsys_variants: tuple[str, ...] | None = option(
        None, Globs(), "focused `--nsys` capture: record only the variants whose name matches one of these shell "
        "patterns (implies `--nsys`)", default_text="every variant")
    nsys_iterations: tuple[tuple[int, int], ...] | None = option(
        None, IterationRanges(), "focused `--nsys` capture: record only these iterations of each recorded variant, "
        "numbered as in steps.parquet (warm-up first; implies `--nsys`)", default_text="every iteration")
    telemetry_ms: float = option(50.0, Number(1, MS_MAX, unit="ms", example="50"), "telemetry sampling interval in ms")
    flush_every: int = option(500, Count(1, example="500"), "write the recorded steps to disk every N iterations "
                              "(or every `--flush-seconds`, whichever comes first)")
    flush_seconds: float = option(2.0, Number(0.05, MS_MAX / 1000, example="2"), "write the recorded steps to disk "
                                  "at least every this many seconds: a killed process loses at most this much")
    seed: int = option(0, Count(0, example="0"), "seed of the synthetic input frames")
    device_index: int = option(0, Count(0, 1024, example="0"), "CUDA device index", flag="--device")

    def to_dict(self) -> dict[str, Any]:
        from tracegen.prepost.user import spec_of

        def plain(v: Any) -> Any:  # JSON: tuples as lists, a user's step function by its name
            return list(v) if isinstance(v, tuple) else spec_of(v) if callable(v) else v
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}


def specs() -> list[OptionSpec]:
    """The option of every field, in order."""
    return [f.metadata["option"].bind(f.name, f.default) for f in fields(RunConfig)]


# Device-dependent defaults: the CPU ones finish in about two minutes on 2 cores; the GPU ones
# reproduce the seed's experiment (300 iterations after 20 ms and 50 ms gaps, every pacing and
# launch mode) and finish in about three minutes on an H200 (examples/pipeline/ has the timing):
# the 100 ms gaps of the CPU default would add 1.6 minutes of sleeping alone.
CPU_DEFAULTS = device_defaults(specs(), "cpu")
GPU_DEFAULTS = device_defaults(specs(), "gpu")


def resolve(config: RunConfig, device_kind: str) -> RunConfig:
    defaults = CPU_DEFAULTS if device_kind == "host" else GPU_DEFAULTS
    filled = {k: v for k, v in defaults.items() if getattr(config, k) in (None, "auto")}
    return dataclasses.replace(config, **filled)


# -- sources: config file and Python flags, through the same click types ---------------------------
def option_keys() -> dict[str, str]:
    """Every accepted spelling of an option in a file or a ``flags`` dict -> the field name."""
    keys: dict[str, str] = {}
    for spec in specs():
        flag = spec.flag.lstrip("-")
        for key in {spec.name, flag, flag.replace("-", "_"), spec.name.replace("_", "-")}:
            keys[key] = spec.name
    return keys


def normalise_keys(values: dict[str, Any], where: str = "option") -> dict[str, Any]:
    keys = option_keys()
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in keys:
            known = ", ".join(sorted({s.flag.lstrip("-") for s in specs()}))
            raise ConfigError(f"unknown {where} {key!r}", f"known options: {known}")
        out[keys[key]] = value
    return out


def load_toml(path: Path) -> dict[str, Any]:
    """The options of a TOML file (top-level keys, or a ``[run]`` table), keyed by field name.
    Keys beside a ``[run]`` table and unknown keys are refused, never silently ignored."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found", "check the path given to --config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path} ({exc})", "check the path given to --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc})", "fix the file") from None
    if "run" in data:
        if not isinstance(data["run"], dict):
            raise ConfigError(f"config file {path}: `run` must be a table ([run])", "write the options under [run]")
        others = [k for k in data if k != "run"]
        if others:
            raise ConfigError(f"config file {path} has keys outside its [run] table: {', '.join(others)}",
                              "move them under [run], or drop the [run] header")
        data = data["run"]
    return normalise_keys(data, f"option in config file {path}:")


def build_config(file_values: dict[str, Any] | None = None, flags: dict[str, Any] | None = None) -> RunConfig:
    """Merge config-file values and flags (flags win; ``None`` flags are ignored), each checked
    by its option's click type: the Python API of what ``tracegen run`` does with its options."""
    import click

    from tracegen.run.options import click_params

    raw = {**normalise_keys(file_values or {}, "option"),
           **normalise_keys({k: v for k, v in (flags or {}).items() if v is not None})}
    params = {p.name: p for p in click_params(specs())}
    ctx = click.Context(click.Command("run", params=list(params.values())))
    values = {}
    for name, value in raw.items():
        try:
            values[name] = params[name].type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise ConfigError(exc.format_message()) from None
    return RunConfig(**values)
