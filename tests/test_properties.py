"""Property-based tests (hypothesis): whatever a user, a config file or a damaged run directory
throws at them, the option parser, the trace reader and the analysis raise nothing but
tracegen's own errors (which the CLI prints as one line). Example counts are in ``settings``;
the README's reliability table states them."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracegen.errors import TracegenError
from tracegen.run.config import build_config, option_keys
from tracegen.trace import schema as S
from tracegen.trace.reader import read_run

CONFIG_EXAMPLES, CLI_EXAMPLES, READER_EXAMPLES, ANALYSIS_EXAMPLES = 400, 300, 150, 60
QUICK = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["1,2", "0", "-1", "1e9", "nan", "inf", "auto", "spin",
                                                           "builtin:tiny", "..", "a/b", "1,,2", " ", "fp16"]))
values = st.one_of(scalars, st.lists(scalars, max_size=4))
keys = st.one_of(st.sampled_from(sorted(option_keys())), st.text(max_size=8))


@settings(max_examples=CONFIG_EXAMPLES, **QUICK)
@given(file_values=st.dictionaries(keys, values, max_size=5), flags=st.dictionaries(keys, values, max_size=5))
def test_config_values_give_a_config_or_a_config_error(file_values, flags):
    try:
        build_config(file_values, flags)
    except TracegenError:
        pass


flag_names = st.sampled_from(sorted({"--" + k for k in option_keys() if "_" not in k} | {"--frobnicate", "-n", "-m"}))
argv = st.lists(st.one_of(flag_names, st.text(max_size=10), st.sampled_from(["1", "0", "-5", "2.7", "nan", "x,y"])),
                max_size=8)


@settings(max_examples=CLI_EXAMPLES, **QUICK)
@given(args=argv)
def test_command_lines_give_a_config_or_a_config_error(args):
    from tracegen.cli.run import parse_args

    try:
        parse_args(args)
    except TracegenError:
        pass


# -- the trace reader --------------------------------------------------------------------------------
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     st.text(max_size=6)),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=8)
manifests = st.one_of(
    json_values,
    st.fixed_dictionaries({"schema_version": st.one_of(st.integers(-3, 3), json_values)},
                          optional={"status": st.one_of(st.sampled_from(list(S.RUN_STATUSES)), json_values),
                                    "process": json_values, "run_id": json_values}),
)
ints = st.one_of(st.none(), st.integers(-2**40, 2**40))


@st.composite
def step_frames(draw, max_rows=30):
    n = draw(st.integers(0, max_rows))
    rows = {
        "variant_id": draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)),
        "iteration": draw(st.lists(st.integers(-2, 40), min_size=n, max_size=n)),
        "warmup": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        "step": draw(st.lists(st.sampled_from(list(S.STEP_ORDER)), min_size=n, max_size=n)),
        "host_start_ns": draw(st.lists(ints, min_size=n, max_size=n)),
        "host_ns": draw(st.lists(ints, min_size=n, max_size=n)),
        "gpu_ns": draw(st.lists(ints, min_size=n, max_size=n)),
        "cpu_core": draw(st.lists(st.one_of(st.none(), st.integers(-1, 64)), min_size=n, max_size=n)),
    }
    return pl.DataFrame(rows, schema=S.STEPS_SCHEMA)


def _variants(ids, status="complete") -> pl.DataFrame:
    rows = [dict(variant_id=i, name=f"v{i}", scenario="idle" if i % 2 else "batch", batch=1 + i, idle_ms=float(5 * (i % 2)),
                 pacing="sleep" if i % 2 else "none", launch="eager", sync_mode="auto", pipeline="full", warmup=2,
                 iterations=10, completed=12, status=status) for i in ids]
    return pl.DataFrame(rows, schema=S.VARIANTS_SCHEMA)


@settings(max_examples=READER_EXAMPLES, **QUICK)
@given(manifest=manifests, steps=step_frames(), raw=st.one_of(st.none(), st.binary(max_size=64)),
       drop=st.sampled_from([None, "host_ns", "step", "variant_id"]))
def test_any_run_directory_reads_or_fails_with_a_trace_error(manifest, steps, raw, drop):
    tmp = Path(tempfile.mkdtemp())
    try:
        (tmp / S.MANIFEST).write_text(json.dumps(manifest))
        _variants(range(4)).write_parquet(tmp / S.VARIANTS)
        if raw is not None:
            (tmp / S.STEPS).write_bytes(raw)
        else:
            (steps.drop(drop) if drop else steps).write_parquet(tmp / S.STEPS)
        try:
            run = read_run(tmp)
        except TracegenError:
            return
        assert (run.steps["host_ns"].drop_nulls() >= 0).all()
    finally:
        shutil.rmtree(tmp)


# -- the analysis entry points -----------------------------------------------------------------------
@st.composite
def plausible_runs(draw):
    """Runs that pass the reader: a few variants, per-step times anywhere from 0 to seconds,
    ragged iterations, missing steps, nulls."""
    n_variants = draw(st.integers(1, 4))
    frames = []
    for vid in range(n_variants):
        iterations = draw(st.integers(0, 40))
        steps = draw(st.lists(st.sampled_from(["idle", "preprocess", "infer", "postprocess", "h2d", "sync"]),
                              min_size=1, max_size=4, unique=True))
        scale = draw(st.sampled_from([0, 1, 1_000, 1_000_000, 10**9]))
        times = draw(st.lists(st.integers(0, 3), min_size=iterations * len(steps), max_size=iterations * len(steps)))
        rows = [dict(variant_id=vid, iteration=it, warmup=it < 2, step=s, host_start_ns=(it * 10 + k) * 10**6,
                     host_ns=times[it * len(steps) + k] * scale, gpu_ns=None, cpu_core=0)
                for it in range(iterations) for k, s in enumerate(steps)]
        frames.append(pl.DataFrame(rows, schema=S.STEPS_SCHEMA))
    return n_variants, pl.concat(frames)


@settings(max_examples=ANALYSIS_EXAMPLES, **QUICK)
@given(case=plausible_runs(), budget=st.one_of(st.none(), st.floats(0.001, 1e6)))
def test_analysis_returns_or_raises_a_tracegen_error(case, budget):
    from tracegen.analysis.findings import analyze
    from tracegen.trace.reader import require_measurements

    n_variants, steps = case
    tmp = Path(tempfile.mkdtemp())
    try:
        (tmp / S.MANIFEST).write_text(json.dumps({"schema_version": S.SCHEMA_VERSION, "run_id": "p",
                                                  "status": "complete"}))
        _variants(range(n_variants)).write_parquet(tmp / S.VARIANTS)
        steps.write_parquet(tmp / S.STEPS)
        try:
            run = read_run(tmp)
            require_measurements(run)
            result = analyze(run, budget_ms=budget)
        except TracegenError:
            return
        for f in result.findings:
            assert f.severity in ("critical", "warning", "info")
            json.dumps(f.to_dict(), allow_nan=False)
        assert not any(isinstance(x, float) and math.isnan(x) for x in [budget or 0.0])
    finally:
        shutil.rmtree(tmp)
