"""The options of ``tracegen run``: parsing, validation, defaults that depend on the device.

Every option can come from a TOML file (``--config run.toml``, keys as the option names with
dashes or underscores) or the command line; the command line wins. Values left as ``None`` are
filled by ``resolve`` once the backend (CPU or GPU) is known.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tracegen.errors import ConfigError
from tracegen.trace import schema as S

PRECISIONS = ("auto", "fp32", "fp16")


@dataclass(frozen=True)
class RunConfig:
    model: str | None = None  # None: builtin:tiny on the CPU, builtin:small on a GPU
    backend: str = "auto"
    precision: str = "auto"  # auto: fp32 on the CPU, fp16 on a GPU
    scenarios: tuple[str, ...] = ("batch", "idle")
    batch_sizes: tuple[int, ...] | None = None
    idle_batch: int = 1  # batch size of the idle-delay variants
    idle_ms: tuple[float, ...] | None = None
    pacing: tuple[str, ...] | None = None
    launch: tuple[str, ...] | None = None
    sync_mode: tuple[str, ...] = ("auto",)
    pipeline: tuple[str, ...] = ("full",)
    iterations: int | None = None  # measured iterations per idle-delay variant
    batch_iterations: int | None = None  # measured iterations per batch variant
    warmup: int | None = None
    threads: int | None = None  # CPU backend threads (None: library default)
    out: str = "runs"
    run_id: str | None = None
    nsys: bool = False
    telemetry_ms: float = 50.0
    flush_every: int = 500  # iterations between incremental writes
    seed: int = 0
    device_index: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


# Device-dependent defaults: the CPU ones finish in about two minutes on 2 cores; the GPU ones
# reproduce the seed's experiment (hundreds of iterations after 20 ms and longer gaps).
CPU_DEFAULTS = dict(
    model="builtin:tiny", precision="fp32", batch_sizes=(1, 2, 4, 8, 16), idle_ms=(0.0, 20.0, 100.0),
    pacing=("sleep", "spin"), launch=("eager",), iterations=300, batch_iterations=30, warmup=10,
)
GPU_DEFAULTS = dict(
    model="builtin:small", precision="fp16", batch_sizes=(1, 2, 4, 8, 16, 32, 64), idle_ms=(0.0, 20.0, 100.0),
    pacing=("sleep", "spin", "keepalive"), launch=("eager", "graph"), iterations=400, batch_iterations=100, warmup=20,
)


def resolve(config: RunConfig, device_kind: str) -> RunConfig:
    defaults = CPU_DEFAULTS if device_kind == "host" else GPU_DEFAULTS
    filled = {k: v for k, v in defaults.items() if getattr(config, k) in (None, "auto")}
    return dataclasses.replace(config, **filled)


# -- parsing ------------------------------------------------------------------------------------
def _split(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = str(value).split(",")
    return [i.strip() for i in items if i.strip()]


def _ints(name: str, value: Any, minimum: int) -> tuple[int, ...]:
    out = []
    for item in _split(value):
        try:
            n = int(item)
        except ValueError:
            raise ConfigError(f"--{name} takes whole numbers, got {item!r}", f"e.g. --{name} 1,2,4,8") from None
        if n < minimum:
            raise ConfigError(f"--{name} must be at least {minimum}, got {n}", f"e.g. --{name} 1,2,4,8")
        out.append(n)
    if not out:
        raise ConfigError(f"--{name} is empty", f"e.g. --{name} 1,2,4,8")
    return tuple(dict.fromkeys(out))


def _floats(name: str, value: Any) -> tuple[float, ...]:
    out = []
    for item in _split(value):
        try:
            x = float(item)
        except ValueError:
            raise ConfigError(f"--{name} takes milliseconds, got {item!r}", f"e.g. --{name} 0,20,100") from None
        if not (x >= 0 and x < 3_600_000):
            raise ConfigError(f"--{name} must be between 0 and 3600000 ms, got {item}", f"e.g. --{name} 0,20,100")
        out.append(x)
    if not out:
        raise ConfigError(f"--{name} is empty", f"e.g. --{name} 0,20,100")
    return tuple(dict.fromkeys(out))


def _choices(name: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for item in _split(value):
        if item not in allowed:
            raise ConfigError(f"unknown --{name} {item!r}", f"choose from: {', '.join(allowed)}")
        out.append(item)
    if not out:
        raise ConfigError(f"--{name} is empty", f"choose from: {', '.join(allowed)}")
    return tuple(dict.fromkeys(out))


def _int(name: str, value: Any, minimum: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--{name} takes a whole number, got {value!r}", f"e.g. --{name} 100") from None
    if n < minimum:
        raise ConfigError(f"--{name} must be at least {minimum}, got {n}", f"e.g. --{name} 100")
    return n


def _run_id(value: Any) -> str:
    text = str(value)
    if not text or text in (".", "..") or "/" in text or "\\" in text or text.startswith("."):
        raise ConfigError(f"--run-id {text!r} is not a plain directory name", "use letters, digits, '-' and '_'")
    return text


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{name} must be true or false, got {value!r}", f"write {name} = true")


# option name -> parser of a raw value (string from the CLI or TOML value)
PARSERS = {
    "model": lambda v: str(v),
    "backend": lambda v: _choices("backend", v, ("auto", "onnxruntime", "torch", "tensorrt"))[0],
    "precision": lambda v: _choices("precision", v, PRECISIONS)[0],
    "scenarios": lambda v: _choices("scenario", v, S.SCENARIOS),
    "batch_sizes": lambda v: _ints("batch-sizes", v, 1),
    "idle_batch": lambda v: _int("idle-batch", v, 1),
    "idle_ms": lambda v: _floats("idle-ms", v),
    "pacing": lambda v: _choices("pacing", v, ("sleep", "spin", "keepalive")),
    "launch": lambda v: _choices("launch", v, S.LAUNCHES),
    "sync_mode": lambda v: _choices("sync-mode", v, S.SYNC_MODES),
    "pipeline": lambda v: _choices("pipeline", v, S.PIPELINES),
    "iterations": lambda v: _int("iterations", v, 1),
    "batch_iterations": lambda v: _int("batch-iterations", v, 1),
    "warmup": lambda v: _int("warmup", v, 0),
    "threads": lambda v: _int("threads", v, 1),
    "out": lambda v: str(v),
    "run_id": _run_id,
    "nsys": lambda v: _bool("nsys", v),
    "telemetry_ms": lambda v: float(_int("telemetry-ms", v, 1)),
    "flush_every": lambda v: _int("flush-every", v, 1),
    "seed": lambda v: _int("seed", v, 0),
    "device_index": lambda v: _int("device", v, 0),
}


def load_toml(path: Path) -> dict[str, Any]:
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
    # Accept the table [run] or top-level keys.
    return data.get("run", data) if isinstance(data.get("run"), dict) else data


def build_config(file_values: dict[str, Any] | None = None, flags: dict[str, Any] | None = None) -> RunConfig:
    """Merge TOML values and command-line flags (flags win; ``None`` flags are ignored)."""
    raw: dict[str, Any] = {}
    for source in (file_values or {}, {k: v for k, v in (flags or {}).items() if v is not None}):
        for key, value in source.items():
            name = key.replace("-", "_")
            if name == "scenario":
                name = "scenarios"
            if name not in PARSERS:
                raise ConfigError(f"unknown option {key!r}", f"known options: {', '.join(sorted(PARSERS))}")
            raw[name] = value
    return RunConfig(**{k: PARSERS[k](v) for k, v in raw.items()})
