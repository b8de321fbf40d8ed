"""``tracegen run --nsys``: the same run, recorded under Nsight Systems.

The benchmark is started again as a child process under ``nsys profile -t cuda,nvtx,osrt``; the
report file lands beside the run's traces as ``profile.nsys-rep``, so the NVTX ranges in the
report and the rows of ``steps.parquet`` describe the same iterations.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tracegen.errors import ConfigError, TracegenError

NSYS_TRACE = "cuda,nvtx,osrt"
# Trace each kernel of a CUDA graph launch (nsys' default traces the graph as one block), so
# `tracegen nsys-import` can compare graph variants kernel by kernel with eager ones.
GRAPH_TRACE = "node"
REPORT_NAME = "profile.nsys-rep"


def nsys_path() -> str | None:
    return shutil.which("nsys")


def nsys_available() -> bool:
    """True when Nsight Systems' ``nsys`` is on PATH."""
    return nsys_path() is not None


def child_arguments(argv: list[str], run_id: str) -> list[str]:
    """``tracegen run`` arguments without --nsys and with a fixed --run-id."""
    args = [a for a in argv if a != "--nsys"]
    if not any(a == "--run-id" or a.startswith("--run-id=") for a in args):
        args += ["--run-id", run_id]
    return args


def nsys_command(nsys: str, output_base: Path, child: list[str]) -> list[str]:
    return [nsys, "profile", "-t", NSYS_TRACE, f"--cuda-graph-trace={GRAPH_TRACE}", "--force-overwrite", "false",
            "-o", str(output_base), sys.executable, "-m", "tracegen", *child]


def run_under_nsys(config, argv: list[str], console=None):
    """Re-run ``tracegen run`` under nsys and move the report into the run directory."""
    from tracegen.run.result import RunResult
    from tracegen.trace.reader import read_manifest

    nsys = nsys_path()
    if nsys is None:
        raise TracegenError("--nsys needs Nsight Systems, but `nsys` is not on PATH",
                            "install Nsight Systems (or add its bin folder to PATH), or run without --nsys")
    import datetime as _dt
    import secrets

    run_id = config.run_id or f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%d-%H%M%S}-nsys-{secrets.token_hex(2)}"
    out = Path(config.out)
    run_dir = out / run_id
    if run_dir.exists():
        raise ConfigError(f"run directory {run_dir} already exists", "choose another --run-id")
    out.mkdir(parents=True, exist_ok=True)
    base = out / f".{run_id}.nsys"
    sub_argv = argv[argv.index("run") + 1:] if "run" in argv else argv[1:]
    cmd = nsys_command(nsys, base, ["run", *child_arguments(sub_argv, run_id)])
    if console is not None:
        console.print(f"recording under Nsight Systems: {' '.join(cmd[:7])} ...")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env)
    report = Path(str(base) + ".nsys-rep")  # nsys appends the extension to -o
    if not run_dir.is_dir():
        raise TracegenError(f"the run under nsys did not start (exit status {proc.returncode})", "see the messages above")
    if report.exists():
        os.replace(report, run_dir / REPORT_NAME)
    manifest = read_manifest(run_dir)
    manifest["nsys"] = {"report": REPORT_NAME if (run_dir / REPORT_NAME).exists() else None,
                        "command": cmd, "exit_status": proc.returncode}
    from tracegen.trace.atomic import write_json

    write_json(run_dir / "manifest.json", manifest)
    from tracegen.trace.reader import read_run

    run = read_run(run_dir)
    done = int((run.variants["status"] == "complete").sum())
    iterations = int(run.steps.select("variant_id", "iteration").n_unique()) if run.steps.height else 0
    return RunResult(run_dir, run_id, run.status, done, iterations, run.manifest.get("error"))
