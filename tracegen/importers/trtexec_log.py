"""Reader of trtexec's console log (what ``trtexec ... | tee trtexec.log`` keeps).

trtexec prints its options in sections (``=== Model Options ===``, ``=== Build Options ===``,
``=== Inference Options ===``, ``=== Device Information ===``, ``=== Performance summary ===``),
one ``key: value`` per line after a ``[date-time] [I]`` prefix, plus ``TensorRT version: X.Y.Z``,
the ``&&&& RUNNING TensorRT.trtexec [TensorRT vNNNN] # command`` banner and, with
``--dumpProfile``, a ``=== Profile (N iterations ) ===`` table whose last column is the layer.
The sections become the same dicts trt-engine-explorer's metadata JSON holds, so the importer
reads both the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracegen.errors import TraceError
from tracegen.importers.common import read_bytes

_PREFIX = re.compile(r"^\[\d+/\d+/\d+-\d+:\d+:\d+\] \[([IWEVF])\] ?(.*)$")
_HEADER = re.compile(r"^=== (.+?) ===$")
_BANNER = re.compile(r"&&&& (?:RUNNING|PASSED|FAILED) TensorRT\.trtexec \[TensorRT v(\d+)\](?: \[b\d+\])? # (.*)$")
_PROFILE_ROW = re.compile(r"^\s*([\d.]+)\s+([\d.]+)\s+(?:([\d.]+)\s+)?([\d.]+)\s+(\S.*?)\s*$")
_STAT = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=\s*([-+\d.eE]+)\s*ms")

# Section titles as trtexec prints them -> the metadata JSON's keys.
SECTION_KEYS = {"Model Options": "model_options", "Build Options": "build_options",
                "Inference Options": "inference_options", "Device Information": "device_information",
                "Performance summary": "performance_summary", "System Options": "system_options",
                "Reporting Options": "reporting_options"}


@dataclass
class Log:
    path: Path
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    tensorrt_version: str | None = None
    command: str | None = None
    profile_layers: list[str] = field(default_factory=list)  # names in the --dumpProfile table
    summary: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> {min, max, mean, median, p90...}
    engine_facts: dict[str, str] = field(default_factory=dict)


def _version_from_banner(number: str) -> str:
    """NV_TENSORRT_VERSION: major*1000+minor*100+patch before TensorRT 10, major*10000+... since."""
    n = int(number)
    if n >= 100000:
        return f"{n // 10000}.{n // 100 % 100}.{n % 100}"
    return f"{n // 1000}.{n // 100 % 10}.{n % 100}"


def parse_stats(text: str) -> dict[str, float]:
    """``min = 0.87 ms, max = ..., percentile(99%) = ... ms`` -> {"min": .., "p99": ..}."""
    out = {}
    for name, pct, value in _STAT.findall(text):
        out[f"p{pct.rstrip('0').rstrip('.') if '.' in pct else pct}" if pct else name] = float(value)
    return out


def read_log(path: Path) -> Log:
    data = read_bytes(path, "trtexec log")
    text = data.decode("utf-8", errors="replace")
    log = Log(Path(path))
    section: str | None = None
    in_profile = False
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        banner = _BANNER.search(line)
        if banner:
            log.tensorrt_version = log.tensorrt_version or _version_from_banner(banner.group(1))
            log.command = log.command or banner.group(2).strip()
            continue
        m = _PREFIX.match(line)
        if not m:
            continue
        body = m.group(2)
        header = _HEADER.match(body.strip())
        if header:
            title = header.group(1)
            in_profile = title.startswith("Profile (")
            section = SECTION_KEYS.get(title, title.lower().replace(" ", "_")) if not in_profile else None
            continue
        if in_profile:
            row = _PROFILE_ROW.match(body)
            if row and row.group(5) != "Total":
                log.profile_layers.append(row.group(5))
            elif not body.strip():
                in_profile = False
            continue
        if body.startswith("TensorRT version:"):
            log.tensorrt_version = body.split(":", 1)[1].strip()
            continue
        for prefix, key in (("Engine built in", "build_s"), ("Engine loaded in", "load_s"),
                            ("Loaded engine with size:", "engine_size"), ("Engine deserialized in", "deserialize")):
            if body.startswith(prefix):
                log.engine_facts[key] = body[len(prefix):].strip()
        if section is None or ":" not in body or body.startswith("["):
            continue
        key, _, value = body.partition(":")
        key, value = key.strip(), value.strip()
        if not key:
            continue
        target = log.sections.setdefault(section, {})
        if key in target and key.startswith("Input inference shape"):
            target[key] = f"{target[key]},{value}"  # one line per input
        else:
            target.setdefault(key, value)
        if section == "performance_summary" and "=" in value:
            log.summary[key] = parse_stats(value)
    if not log.sections and log.tensorrt_version is None:
        raise TraceError(f"{path} is not a trtexec log (no '=== ... Options ===' sections, no TensorRT version)",
                         "pass trtexec's console output, e.g. from `trtexec ... 2>&1 | tee trtexec.log`")
    return log
