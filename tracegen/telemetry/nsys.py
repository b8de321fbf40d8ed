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


CHILD_ENV = "TRACEGEN_NSYS_CHILD"  # set in the re-run under nsys, so it never starts nsys again
_CHILD_DROPS = ("--nsys-variants", "--nsys-iterations")  # the child gets them through the environment


def wants_nsys(config) -> bool:
    """True when ``tracegen run`` should re-run itself under nsys: ``--nsys`` or a focused capture
    option, and not already the re-run (whose config file may say ``nsys = true`` too)."""
    from tracegen.telemetry.nsys_capture import CaptureSpec

    return (bool(config.nsys) or CaptureSpec.from_config(config).active) and not os.environ.get(CHILD_ENV)


def child_arguments(argv: list[str], run_id: str) -> list[str]:
    """``tracegen run`` arguments without --nsys (and the capture options) and with a fixed --run-id."""
    args: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nsys" or any(a.startswith(d + "=") for d in _CHILD_DROPS):
            continue
        if a in _CHILD_DROPS:
            skip = True
            continue
        args.append(a)
    if not any(a == "--run-id" or a.startswith("--run-id=") for a in args):
        args += ["--run-id", run_id]
    return args


def nsys_command(nsys: str, output_base: Path, child: list[str], capture: bool = False) -> list[str]:
    from tracegen.telemetry.nsys_capture import NSYS_ARGS

    return [nsys, "profile", "-t", NSYS_TRACE, f"--cuda-graph-trace={GRAPH_TRACE}", *(NSYS_ARGS if capture else ()),
            "--force-overwrite", "false", "-o", str(output_base), sys.executable, "-m", "tracegen", *child]


def collect_reports(base: Path, run_dir: Path) -> list[str]:
    """Move the report(s) nsys wrote for ``-o base`` into the run: ``profile.nsys-rep``, or with
    several capture windows (``--capture-range-end=repeat`` writes one report each)
    ``profile.1.nsys-rep``, ``profile.2.nsys-rep``, ... in the order they were written."""
    found = sorted(base.parent.glob(base.name + "*.nsys-rep"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    if len(found) == 1:
        os.replace(found[0], run_dir / REPORT_NAME)
        return [REPORT_NAME]
    names = []
    for k, path in enumerate(found, 1):
        name = REPORT_NAME.replace(".nsys-rep", f".{k}.nsys-rep")
        os.replace(path, run_dir / name)
        names.append(name)
    return names


def run_under_nsys(config, argv: list[str], console=None):
    """Re-run ``tracegen run`` under nsys and move the report(s) into the run directory."""
    from tracegen.run.result import RunResult
    from tracegen.telemetry.nsys_capture import ENV, CaptureSpec
    from tracegen.trace.reader import read_manifest

    nsys = nsys_path()
    if nsys is None:
        raise TracegenError("--nsys needs Nsight Systems, but `nsys` is not on PATH",
                            "install Nsight Systems (or add its bin folder to PATH), or run without --nsys")
    import datetime as _dt
    import secrets

    spec = CaptureSpec.from_config(config)
    run_id = config.run_id or f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%d-%H%M%S}-nsys-{secrets.token_hex(2)}"
    out = Path(config.out)
    run_dir = out / run_id
    if run_dir.exists():
        raise ConfigError(f"run directory {run_dir} already exists", "choose another --run-id")
    out.mkdir(parents=True, exist_ok=True)
    base = out / f".{run_id}.nsys"
    sub_argv = argv[argv.index("run") + 1:] if "run" in argv else argv[1:]
    cmd = nsys_command(nsys, base, ["run", *child_arguments(sub_argv, run_id)], capture=spec.active)
    if console is not None:
        console.print(f"recording under Nsight Systems: {' '.join(cmd[:7])} ...")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", CHILD_ENV: "1"}
    if spec.active:
        env[ENV] = spec.to_env()
    proc = subprocess.run(cmd, env=env)
    if not run_dir.is_dir():
        raise TracegenError(f"the run under nsys did not start (exit status {proc.returncode})", "see the messages above")
    reports = collect_reports(base, run_dir)
    manifest = read_manifest(run_dir)
    manifest["nsys"] = {"report": reports[0] if reports else None, "reports": reports, "command": cmd,
                        "exit_status": proc.returncode,
                        "capture": {"variants": list(spec.variants), "iterations": [list(r) for r in spec.iterations]}
                        if spec.active else None}
    from tracegen.trace.atomic import write_json

    write_json(run_dir / "manifest.json", manifest)
    from tracegen.trace.reader import read_run

    run = read_run(run_dir)
    if spec.active and not reports and run.status == "complete":
        from tracegen.telemetry.nsys_capture import check_matches

        check_matches(spec, run.variants["name"].to_list())
        raise TracegenError("the focused capture recorded no report: no chosen iteration ran in a chosen variant",
                            "check --nsys-iterations against the iteration numbers (warm-up first)")
    done = int((run.variants["status"] == "complete").sum())
    iterations = int(run.steps.select("variant_id", "iteration").n_unique()) if run.steps.height else 0
    return RunResult(run_dir, run_id, run.status, done, iterations, run.manifest.get("error"))
