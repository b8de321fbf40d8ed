"""Focused capture: the options, the profiler calls around chosen iterations, the NVTX ranges each
capture window holds, and a run under a stand-in nsys that writes one report per window."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.analysis.runs import baseline, make_run, paced
from tests.importers.fake_nsys import Plan, from_run
from tracegen.cli import main
from tracegen.importers.nsys import import_into_run
from tracegen.run.config import build_config
from tracegen.telemetry import nsys
from tracegen.telemetry.nsys_capture import ENV, CaptureRanges, CaptureSpec, IterationRanges
from tracegen.trace.nsys_tables import read_nsys_tables
from tracegen.trace.reader import read_manifest

ROOT = Path(__file__).resolve().parents[2]


class Log:
    def __init__(self):
        self.events: list[tuple] = []


class FakeDomain:
    def __init__(self, log):
        self.log = log

    def get_event_attributes(self, message=None, **kw):
        return (message, kw.get("payload"))

    def push_range(self, attrs):
        self.log.events.append(("push",) + attrs)

    def pop_range(self):
        self.log.events.append(("pop",))


class FakeProfiler:
    def __init__(self, log):
        self.log = log

    def start(self):
        self.log.events.append(("start",))

    def stop(self):
        self.log.events.append(("stop",))


def _drive(spec, variants=("idle b1 no-gap graph", "idle b1 20ms-sleep graph"), n=10):
    """What the runner does: variant > iteration > steps, popped in order."""
    log = Log()
    r = CaptureRanges(spec=spec, profiler=FakeProfiler(log))
    r._domain = FakeDomain(log)
    r._step_attrs = {s: (s, None) for s in ("idle", "infer", "sync")}
    for v in variants:
        r.push_variant(v)
        for i in range(n):
            r.push_iteration(i)
            for s in ("idle", "infer", "sync"):
                r.push_step(s)
                r.pop()
            r.pop()
        r.pop()
    return log.events, r


def _windows(events):
    """Each capture window's events, and a check that pushes and pops balance inside it."""
    out, cur = [], None
    for e in events:
        if e[0] == "start":
            cur = []
        elif e[0] == "stop":
            out.append(cur)
            cur = None
        elif cur is not None:
            cur.append(e)
    return out


def test_profiler_runs_only_around_the_chosen_iterations_of_the_chosen_variants():
    events, r = _drive(CaptureSpec(variants=("*20ms*",), iterations=((2, 4), (7, 7))))
    wins = _windows(events)
    assert r.windows == 2 and not r.capturing
    for w, its in zip(wins, ([2, 3, 4], [7])):
        # the window opens with a copy of the variant range, holds exactly the chosen iterations, balanced
        assert w[0] == ("push", "idle b1 20ms-sleep graph", None)
        assert [e[2] for e in w if e[0] == "push" and e[1] == "iteration"] == its
        assert sum(1 if e[0] == "push" else -1 for e in w) == 0
    # outside the windows the NVTX stream is the plain one: every push popped
    assert sum(1 if e[0] == "push" else -1 for e in events if e[0] in ("push", "pop")) == 0


def test_a_window_open_at_the_variants_end_is_closed_before_its_range():
    events, _ = _drive(CaptureSpec(iterations=((8, 20),)), variants=("a", "b"))
    wins = _windows(events)
    assert len(wins) == 2 and all([e[2] for e in w if e[0] == "push" and e[1] == "iteration"] == [8, 9] for w in wins)
    stop = events.index(("stop",))
    assert events[stop - 1] == ("pop",) and events[stop + 1] == ("pop",)  # copy popped, then the real variant


def test_no_capture_options_plain_ranges(monkeypatch):
    from tracegen.telemetry.nvtx import Ranges

    monkeypatch.delenv(ENV, raising=False)
    assert type(Ranges()) is Ranges
    monkeypatch.setenv(ENV, CaptureSpec(iterations=((1, 2),)).to_env())
    monkeypatch.setattr("tracegen.telemetry.nvtx._Profiler", lambda: FakeProfiler(Log()))
    r = Ranges()
    assert isinstance(r, CaptureRanges) and r.spec.iterations == ((1, 2),)


def test_options_parse_and_refuse_bad_ranges():
    c = build_config(flags=dict(nsys_iterations="0-20, 300-320,5", nsys_variants="*sleep*,*spin*"))
    assert c.nsys_iterations == ((0, 20), (300, 320), (5, 5)) and c.nsys_variants == ("*sleep*", "*spin*")
    assert nsys.wants_nsys(c)
    t = IterationRanges()
    for bad, msg in (("20-5", "ends before it starts"), ("a-b", "takes iteration ranges")):
        with pytest.raises(Exception, match=msg):
            t.convert(bad, None, None)


def test_cli_refuses_a_bad_range_in_one_line(capsys):
    with pytest.raises(SystemExit) as done:
        main(["run", "--nsys-iterations", "9-3"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "--nsys-iterations range '9-3' ends before it starts" in err


def test_child_never_restarts_nsys_and_gets_the_spec_by_environment(monkeypatch):
    c = build_config(flags=dict(nsys=True, nsys_iterations="1-2"))
    monkeypatch.setenv(nsys.CHILD_ENV, "1")
    assert not nsys.wants_nsys(c)
    args = nsys.child_arguments(["-m", "x", "--nsys", "--nsys-iterations", "1-2", "--nsys-variants=*a*"], "r1")
    assert args == ["-m", "x", "--run-id", "r1"]
    cmd = nsys.nsys_command("/opt/nsys", Path("/tmp/b"), ["run"], capture=True)
    assert "--capture-range=cudaProfilerApi" in cmd and "--capture-range-end=repeat" in cmd


@pytest.mark.slow
def test_stand_in_nsys_with_two_windows_gives_two_reports_that_import_together(monkeypatch, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    seen = tmp_path / "seen.json"
    # Records the capture spec it was given, runs the child without it (no GPU here), then writes
    # one report per window the way --capture-range-end=repeat does.
    (bindir / "nsys").write_text(
        "#!/bin/sh\nshift 9\nbase=\"$1\"; shift\n"
        f"printf '%s' \"${ENV}\" > {seen}\nunset {ENV}\n"
        "\"$@\"; rc=$?\necho one > \"$base.1.nsys-rep\"; sleep 0.05; echo two > \"$base.2.nsys-rep\"\nexit $rc\n")
    (bindir / "nsys").chmod(0o755 | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "runs"
    args = ["--model", "builtin:tiny", "--backend", "onnxruntime", "--scenario", "idle", "--idle-ms", "0",
            "--pacing", "sleep", "--iterations", "4", "--warmup", "1", "--threads", "1", "-q", "--out", str(out),
            "--run-id", "cap", "--nsys-iterations", "1-2"]
    config = build_config(flags=dict(model="builtin:tiny", backend="onnxruntime", scenarios="idle", idle_ms="0",
                                     pacing="sleep", iterations=4, warmup=1, threads=1, out=str(out), run_id="cap",
                                     nsys_iterations="1-2"))
    result = nsys.run_under_nsys(config, ["tracegen", "run", *args])
    assert result.status == "complete"
    assert json.loads(seen.read_text()) == {"variants": [], "iterations": [[1, 2]]}
    m = read_manifest(out / "cap")
    assert m["nsys"]["reports"] == ["profile.1.nsys-rep", "profile.2.nsys-rep"]
    assert (out / "cap" / "profile.2.nsys-rep").read_text() == "two\n"
    assert m["nsys"]["capture"] == {"variants": [], "iterations": [[1, 2]]}


def test_import_reads_every_window_report_with_its_own_clock(tmp_path):
    run = make_run(tmp_path, [baseline(iterations=8, warmup=1), paced("sleep", 2, iterations=8, warmup=1)])
    half = [run.steps.filter(run.steps["variant_id"] == v) for v in (0, 1)]
    from dataclasses import replace

    reps = []
    for k, part in enumerate(half):
        sub = replace(run, steps=part)
        reps.append(from_run(sub, run.path / f"profile.{k + 1}.sqlite", Plan(offset=(k + 1) * 4_000_000_000)))
    m = read_manifest(run.path)
    m["nsys"] = {"report": "profile.1.nsys-rep", "reports": ["profile.1.nsys-rep", "profile.2.nsys-rep"]}
    (run.path / "manifest.json").write_text(json.dumps(m))
    result = import_into_run(run.path)
    t = read_nsys_tables(run.path, read_manifest(run.path))
    assert result.iterations == 18 and set(t.steps["variant_id"]) == {0, 1}
    entries = read_manifest(run.path)["nsys_import"]["reports"]
    assert [round(e["clock_offset_ns"] / 1e9) for e in entries] == [4, 8]
    assert [e["covers"] for e in entries] == [[[0, 0, 8]], [[1, 0, 8]]]
