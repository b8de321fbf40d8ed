"""``tracegen.Recorder``: record your own loop (iterations, steps, NVTX, CUDA events) into a
run directory in the same schema as ``tracegen run``, so ``tracegen report`` explains it.

    rec = tracegen.Recorder(out="runs", model="my detector")
    with rec, rec.variant(idle_ms=20, pacing="sleep", warmup=10):
        for frame in frames:
            with rec.iteration():
                with rec.step("idle"):
                    time.sleep(0.02)
                with rec.step("preprocess", stream=torch.cuda.current_stream()):
                    x = prepare(frame)
                with rec.step("infer", stream=torch.cuda.current_stream()):
                    y = model(x)
                with rec.step("sync"):
                    torch.cuda.synchronize()
                with rec.step("postprocess"):
                    boxes = decode(y)

Each step takes host times (``time.perf_counter_ns``) and, given a CUDA stream, CUDA-event times
on it; it also pushes an NVTX range in the ``tracegen`` domain. Event times are read later,
when a ``sync`` step begins or an iteration ends, from events the GPU has passed, so reading
them adds no wait. Steps are written every ``flush_every`` iterations as atomic part files:
a crash keeps every flushed iteration, and the manifest then reads ``interrupted``.
"""

from __future__ import annotations

import atexit
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import polars as pl

from tracegen.errors import ConfigError
from tracegen.importers.common import base_manifest, new_run_id, variant_name
from tracegen.recorder_events import make_pair, stream_kind
from tracegen.telemetry import cpu as cpu_telemetry
from tracegen.telemetry.nvtx import Ranges
from tracegen.trace import schema as S
from tracegen.trace.manifest import host_info, library_versions
from tracegen.trace.writer import RunWriter, create_run_dir

_CODE = {name: i for i, name in enumerate(S.STEP_ORDER)}
_NAMES = pl.Series(list(S.STEP_ORDER), dtype=S.STEP_DTYPE)


class _Variant:
    def __init__(self, rec: "Recorder", row: dict[str, Any]):
        self.rec, self.row = rec, row

    def __enter__(self) -> "_Variant":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        status = "complete" if exc_type is None else "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"
        self.rec._end_variant(status)
        return False


class _Iteration:
    __slots__ = ("rec",)

    def __init__(self, rec: "Recorder"):
        self.rec = rec

    def __enter__(self) -> int:
        return self.rec._begin_iteration()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.rec._end_iteration()
        return False


class _Step:
    """Reused for every step (steps do not nest): no allocation on the timed path."""

    __slots__ = ("rec", "code", "name", "pair", "key", "t0")

    def __init__(self, rec: "Recorder"):
        self.rec = rec
        self.code, self.name, self.pair, self.key, self.t0 = 0, "", None, None, 0

    def __enter__(self) -> "_Step":
        rec = self.rec
        if self.name == "sync" and rec._pending:
            rec._read_events(wait=False)  # the GPU is still busy: read earlier iterations' events now
        rec._ranges.push_step(self.name)
        self.t0 = time.perf_counter_ns()
        if self.pair is not None:
            self.pair.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        pair = self.pair
        if pair is not None:
            pair.stop()
        t1 = time.perf_counter_ns()
        rec = self.rec
        rec._ranges.pop()
        rec._rows.append((self.code, self.t0 - rec._t0, t1 - self.t0, rec._getcpu()))
        if pair is not None:
            rec._pending.append((len(rec._rows) - 1, pair, self.key))
        rec._in_step = False
        return False


class Recorder:
    """A run recorded from the user's own loop (see the module docstring)."""

    def __init__(self, out: str | Path = "runs", run_id: str | None = None, *, model: str = "user pipeline",
                 backend: str | None = None, telemetry: bool = False, telemetry_ms: float = 50.0, nvtx: bool = True,
                 flush_every: int = 500, device_index: int = 0, config: dict[str, Any] | None = None,
                 command: list[str] | None = None):
        if flush_every < 1:
            raise ConfigError("flush_every must be at least 1", "pass flush_every=500 or so")
        self.run_id = run_id or new_run_id(model, "recorder")
        self.run_dir = create_run_dir(Path(out) / self.run_id)
        self._ranges = Ranges(enabled=nvtx)
        self._getcpu = cpu_telemetry.current_core or (lambda: -1)
        self._flush_every = flush_every
        self._t0 = time.perf_counter_ns()
        self._rows: list[tuple[int, int, int, int]] = []  # code, start, host ns, core of the open buffer
        self._row_meta: list[tuple[int, int]] = []  # variant id, iteration of each row (filled per iteration)
        self._gpu: dict[int, int] = {}  # row index -> GPU ns, once read
        self._pending: list[tuple[int, Any, Any]] = []  # row index, event pair, pool key
        self._pool: dict[Any, list[Any]] = {}
        self._streams: dict[Any, Any] = {}
        self._step = _Step(self)
        self._iter_ctx = _Iteration(self)
        self._in_step = self._in_iteration = False
        self._variants: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None
        self._iteration = 0
        self._iter_start_row = 0
        self._since_flush = 0
        self._steps_seen: set[str] = set()
        self._closed = False
        self._samplers: list = []
        manifest = base_manifest(
            "recorder", self.run_id, command if command is not None else list(sys.argv),
            origin={"tool": "tracegen.Recorder", "script": sys.argv[0] if sys.argv else None},
            config=dict(config or {}), host=host_info(), libraries=library_versions(),
            backend={"name": backend or "user code", "precision": ""}, model={"spec": model},
            latency={"basis": "host"},
            clock="host times are time.perf_counter_ns since the Recorder started; GPU times from CUDA events",
        )
        self._writer = RunWriter(self.run_dir, manifest)
        self._writer.write_variants(pl.DataFrame(schema=S.VARIANTS_SCHEMA))
        if telemetry:
            self._start_telemetry(telemetry_ms / 1000.0, device_index)
        # A program that ends without close() still leaves a readable run that says so.
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- telemetry ----------------------------------------------------------------------------------
    def _start_telemetry(self, interval_s: float, device_index: int) -> None:
        self._samplers = [cpu_telemetry.CpuSampler(interval_s)]
        gpu = False
        try:
            from tracegen.telemetry.nvml import GpuSampler, gpu_static_info

            self._samplers.append(GpuSampler(device_index, interval_s))
            self._writer.update_manifest(gpu=gpu_static_info(device_index))
            gpu = True
        except Exception:  # noqa: BLE001 - no NVML or no GPU: CPU telemetry only
            pass
        self._writer.update_manifest(telemetry={"cpu_frequency": self._samplers[0].exposes_frequency, "gpu": gpu,
                                                "interval_ms": interval_s * 1000})
        for s in self._samplers:
            s.start(self._t0)

    # -- variants -----------------------------------------------------------------------------------
    def variant(self, name: str | None = None, *, scenario: str = "idle", batch: int = 1, idle_ms: float = 0.0,
                pacing: str | None = None, launch: str = "eager", sync_mode: str = "auto", pipeline: str = "full",
                warmup: int = 0, iterations: int | None = None) -> _Variant:
        """Start a variant (its parameters label the page); use as a context manager or call
        ``variant()`` again to start the next one."""
        if self._closed:
            raise ConfigError("this Recorder is closed", "create a new Recorder")
        if self._in_iteration:
            raise ConfigError("a variant cannot start inside an iteration", "start it before the loop")
        pacing = pacing or ("sleep" if idle_ms > 0 else "none")
        for value, allowed, what in ((scenario, S.SCENARIOS, "scenario"), (pacing, S.PACINGS, "pacing"),
                                     (launch, S.LAUNCHES, "launch"), (sync_mode, S.SYNC_MODES, "sync_mode"),
                                     (pipeline, S.PIPELINES, "pipeline")):
            if value not in allowed:
                raise ConfigError(f"unknown {what} {value!r}", f"use one of {', '.join(allowed)}")
        if batch < 1 or idle_ms < 0 or warmup < 0:
            raise ConfigError("batch must be at least 1, idle_ms and warmup at least 0", "fix the variant's parameters")
        if self._current is not None:
            self._end_variant("complete")
        vid = len(self._variants)
        row = {"variant_id": vid, "scenario": scenario, "batch": int(batch), "idle_ms": float(idle_ms), "pacing": pacing,
               "launch": launch, "sync_mode": sync_mode, "pipeline": pipeline, "warmup": int(warmup),
               "iterations": iterations, "completed": 0, "status": "running"}
        row["name"] = name or variant_name("recorder", scenario, batch, idle_ms, pacing, launch, sync_mode, pipeline)
        self._variants.append(row)
        self._current, self._iteration = row, 0
        for s in self._samplers:
            s.set_variant(vid)
        self._write_variants()
        self._ranges.push_variant(row["name"])
        return _Variant(self, row)

    def _end_variant(self, status: str) -> None:
        row = self._current
        if row is None:
            return
        self._flush(final=True)
        self._ranges.pop()
        row["completed"] = self._iteration
        row["status"] = status
        if row["iterations"] is None:
            row["iterations"] = max(0, self._iteration - row["warmup"])
        self._current = None
        for s in self._samplers:
            s.set_variant(None)
        self._write_variants()

    def _write_variants(self) -> None:
        rows = [{**r, "iterations": r["iterations"] if r["iterations"] is not None else max(0, r["completed"] - r["warmup"])}
                for r in self._variants]
        self._writer.write_variants(pl.DataFrame(rows, schema=S.VARIANTS_SCHEMA, strict=False))

    # -- iterations and steps ---------------------------------------------------------------------------
    def iteration(self) -> _Iteration:
        """Context manager around one iteration; yields its index within the variant."""
        return self._iter_ctx

    def _begin_iteration(self) -> int:
        if self._in_iteration:
            raise ConfigError("iterations do not nest", "close the current iteration first")
        if self._current is None:
            self.variant()
        self._in_iteration = True
        self._iter_start_row = len(self._rows)
        self._ranges.push_iteration(self._iteration)
        return self._iteration

    def _end_iteration(self) -> None:
        self._ranges.pop()
        self._in_iteration = False
        vid, it = self._current["variant_id"], self._iteration
        self._row_meta.extend([(vid, it)] * (len(self._rows) - self._iter_start_row))
        self._iteration += 1
        self._since_flush += 1
        if self._pending:
            self._read_events(wait=False)
        if self._since_flush >= self._flush_every:
            self._flush()

    def step(self, name: str, stream: Any = None) -> _Step:
        """Context manager timing one step (a tracegen step name) on the host and, with
        ``stream``, with CUDA events on that stream."""
        code = _CODE.get(name)
        if code is None:
            raise ConfigError(f"unknown step {name!r}", f"use one of {', '.join(S.STEP_ORDER)}")
        if not self._in_iteration:
            raise ConfigError(f"step {name!r} outside an iteration", "wrap the steps in `with rec.iteration():`")
        if self._in_step:
            raise ConfigError(f"step {name!r} inside step {self._step.name!r}", "steps follow one another; they do not nest")
        self._in_step = True
        st = self._step
        st.code, st.name = code, name
        if stream is None:
            st.pair = st.key = None
        else:
            key = stream if isinstance(stream, int) else id(stream)
            free = self._pool.get(key)
            if free:
                st.pair = free.pop()
            else:
                stream_kind(stream)
                self._streams[key] = stream  # keep the stream alive as long as its events
                self._pool.setdefault(key, [])
                st.pair = make_pair(stream)
            st.key = key
        self._steps_seen.add(name)
        return st

    def _read_events(self, wait: bool) -> None:
        """Store the GPU times of every event pair the GPU has passed (all of them with ``wait``)."""
        still = []
        for row, pair, key in self._pending:
            if wait:
                pair.wait()
            elif not pair.done():
                still.append((row, pair, key))
                continue
            self._gpu[row] = pair.elapsed_ns()
            self._pool[key].append(pair)
        self._pending = still

    # -- writing ----------------------------------------------------------------------------------------
    def _flush(self, final: bool = False) -> None:
        """Write the buffered complete iterations as one part file (waits for their events)."""
        n = len(self._row_meta)  # rows of finished iterations
        if self._pending:
            self._read_events(wait=True)
        if n:
            rows, meta = self._rows[:n], self._row_meta
            vids = [m[0] for m in meta]
            its = [m[1] for m in meta]
            warm = {r["variant_id"]: r["warmup"] for r in self._variants}
            df = pl.DataFrame({
                "variant_id": pl.Series(vids, dtype=pl.Int32),
                "iteration": pl.Series(its, dtype=pl.Int32),
                "warmup": [it < warm[v] for v, it in zip(vids, its)],
                "step": _NAMES.gather([r[0] for r in rows]),
                "host_start_ns": pl.Series([r[1] for r in rows], dtype=pl.Int64),
                "host_ns": pl.Series([r[2] for r in rows], dtype=pl.Int64),
                "gpu_ns": pl.Series([self._gpu.get(i) for i in range(n)], dtype=pl.Int64),
                "cpu_core": pl.Series([r[3] if r[3] >= 0 else None for r in rows], dtype=pl.Int16),
            })
            self._writer.append_steps(df)
            del self._rows[:n]
            self._row_meta = []
            self._gpu = {}
        telemetry = [row for s in self._samplers for row in s.drain()]
        self._writer.append_telemetry(telemetry)
        self._since_flush = 0
        if self._current is not None:
            self._current["completed"] = self._iteration
            self._write_variants()

    def close(self, status: str = "complete", error: str | None = None) -> Path:
        """Write what is buffered, merge the parts and record the final status; returns the run directory."""
        if self._closed:
            return self.run_dir
        if self._in_iteration:  # stopped inside an iteration: keep the iterations that finished
            self._ranges.pop()
            self._in_iteration = False
            del self._rows[self._iter_start_row:]
            self._pending = [p for p in self._pending if p[0] < self._iter_start_row]
        if self._current is not None:
            self._end_variant(status if status != "complete" else "complete")
        self._flush(final=True)
        rows = [row for s in self._samplers for row in s.stop()]
        for s in self._samplers:
            s.close()
        self._writer.append_telemetry(rows)
        present = [s for s in S.STEP_ORDER if s in self._steps_seen]
        self._writer.update_manifest(pipeline={"steps": present, "not_applicable": {}}, variants_planned=len(self._variants))
        self._writer.finish(status, error)
        self._closed = True
        return self.run_dir

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close("complete")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("interrupted", "stopped by Ctrl-C; completed iterations were kept")
        else:
            self.close("failed", f"{exc_type.__name__}: {exc}")
        return False


def _close_at_exit(ref) -> None:
    rec = ref()
    if rec is not None and not rec._closed:
        try:
            rec.close("interrupted", "the program ended without Recorder.close(); completed iterations were kept")
        except Exception:  # noqa: BLE001 - never fail the interpreter's exit
            pass
