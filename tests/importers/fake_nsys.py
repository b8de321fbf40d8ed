"""Small SQLite files shaped like ``nsys export --type sqlite`` output, with known contents.

The tables and column names are those of a real export of Nsight Systems 2025 (the lent H200's;
``tests/importers/data/`` holds a trimmed real one); only the columns tracegen reads, plus a few
neighbours, are filled. ``from_run`` turns a run's ``steps.parquet`` into the report nsys would
have written for it: tracegen's NVTX ranges, CUDA API calls and the GPU work they launched.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = {
    "StringIds": "id INTEGER NOT NULL PRIMARY KEY, value TEXT NOT NULL",
    "NVTX_EVENTS": ("start INTEGER NOT NULL, end INTEGER, eventType INTEGER NOT NULL, rangeId INTEGER, category INTEGER, "
                    "color INTEGER, text TEXT, globalTid INTEGER, endGlobalTid INTEGER, textId INTEGER, domainId INTEGER, "
                    "uint64Value INTEGER, int64Value INTEGER, doubleValue REAL, uint32Value INTEGER, int32Value INTEGER, "
                    "floatValue REAL, jsonTextId INTEGER, jsonText TEXT"),
    "CUPTI_ACTIVITY_KIND_RUNTIME": ("start INTEGER NOT NULL, end INTEGER NOT NULL, eventClass INTEGER NOT NULL, "
                                    "globalTid INTEGER, correlationId INTEGER, nameId INTEGER NOT NULL, "
                                    "returnValue INTEGER NOT NULL, callchainId INTEGER"),
    "CUPTI_ACTIVITY_KIND_DRIVER": ("start INTEGER NOT NULL, end INTEGER NOT NULL, eventClass INTEGER NOT NULL, "
                                   "globalTid INTEGER, correlationId INTEGER, nameId INTEGER NOT NULL, "
                                   "returnValue INTEGER NOT NULL, callchainId INTEGER"),
    "CUPTI_ACTIVITY_KIND_KERNEL": ("start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER NOT NULL, "
                                   "contextId INTEGER NOT NULL, streamId INTEGER NOT NULL, correlationId INTEGER, "
                                   "globalPid INTEGER, demangledName INTEGER NOT NULL, shortName INTEGER NOT NULL, "
                                   "mangledName INTEGER, gridId INTEGER NOT NULL, graphNodeId INTEGER, graphId INTEGER"),
    "CUPTI_ACTIVITY_KIND_MEMCPY": ("start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER NOT NULL, "
                                   "contextId INTEGER NOT NULL, streamId INTEGER NOT NULL, correlationId INTEGER, "
                                   "globalPid INTEGER, bytes INTEGER NOT NULL, copyKind INTEGER NOT NULL, "
                                   "srcKind INTEGER, dstKind INTEGER, graphNodeId INTEGER"),
    "CUPTI_ACTIVITY_KIND_MEMSET": ("start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER NOT NULL, "
                                   "contextId INTEGER NOT NULL, streamId INTEGER NOT NULL, correlationId INTEGER, "
                                   "globalPid INTEGER, value INTEGER NOT NULL, bytes INTEGER NOT NULL, graphNodeId INTEGER"),
    "META_DATA_EXPORT": "name TEXT, value TEXT",
}
TID = 281474976710657  # globalTid-like (pid << 24 | tid)


@dataclass
class FakeReport:
    strings: dict[str, int] = field(default_factory=dict)
    rows: dict[str, list[tuple]] = field(default_factory=lambda: {t: [] for t in SCHEMA})
    corr: int = 100

    def sid(self, text: str) -> int:
        return self.strings.setdefault(text, len(self.strings) + 1)

    def domain(self, name: str, domain_id: int) -> None:
        self._nvtx(0, None, 75, text=name, domain=domain_id)

    def category(self, domain_id: int, cat: int, name: str) -> None:
        self._nvtx(0, None, 33, text=name, domain=domain_id, category=cat)

    def range(self, start: int, end: int, name: str, domain: int, *, category: int | None = None,
              payload: int | None = None, tid: int = TID, registered: bool = True) -> None:
        self._nvtx(start, end, 59, text=None if registered else name, text_id=self.sid(name) if registered else None,
                   domain=domain, category=category, payload=payload, tid=tid)

    def _nvtx(self, start, end, etype, *, text=None, text_id=None, domain=0, category=None, payload=None, tid=TID):
        self.rows["NVTX_EVENTS"].append((start, end, etype, None, category, None, text, tid, None, text_id, domain,
                                         None, payload, None, None, None, None, None, None))

    def api(self, start: int, end: int, name: str, *, driver: bool = False, tid: int = TID) -> int:
        self.corr += 1
        table = "CUPTI_ACTIVITY_KIND_DRIVER" if driver else "CUPTI_ACTIVITY_KIND_RUNTIME"
        self.rows[table].append((start, end, 1, tid, self.corr, self.sid(name), 0, None))
        return self.corr

    def kernel(self, start: int, end: int, corr: int, name: str, *, stream: int = 7, graph_node: int | None = None):
        sid = self.sid(name)
        self.rows["CUPTI_ACTIVITY_KIND_KERNEL"].append((start, end, 0, 1, stream, corr, 1, sid, sid, None, 1,
                                                        graph_node, 1 if graph_node else None))

    def memcpy(self, start: int, end: int, corr: int, nbytes: int, kind: int, stream: int = 7):
        self.rows["CUPTI_ACTIVITY_KIND_MEMCPY"].append((start, end, 0, 1, stream, corr, 1, nbytes, kind, 0, 0, None))

    def memset(self, start: int, end: int, corr: int, nbytes: int, stream: int = 9):
        self.rows["CUPTI_ACTIVITY_KIND_MEMSET"].append((start, end, 0, 1, stream, corr, 1, 0, nbytes, None))

    def save(self, path: Path, *, drop_tables: tuple[str, ...] = (), drop_columns: dict[str, str] | None = None) -> Path:
        """Write the export; ``drop_tables`` leaves tables out, ``drop_columns`` renames a column
        (table -> column) the way a differing Nsight Systems schema would."""
        path = Path(path)
        path.unlink(missing_ok=True)
        conn = sqlite3.connect(path)
        self.rows["StringIds"] = [(i, s) for s, i in self.strings.items()]
        self.rows["META_DATA_EXPORT"] = [("EXPORT_SCHEMA_VERSION", "0.fake"), ("EXPORT_PRODUCT", "tests.importers")]
        for table, cols in SCHEMA.items():
            if table in drop_tables:
                continue
            if drop_columns and table in drop_columns:
                cols = cols.replace(drop_columns[table] + " ", drop_columns[table] + "_old ", 1)
            conn.execute(f"CREATE TABLE {table} ({cols})")
            rows = self.rows[table]
            if rows:
                conn.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})", rows)
        conn.commit()
        conn.close()
        return path


@dataclass(frozen=True)
class Plan:
    """What ``from_run`` puts in each iteration (times in ns)."""

    offset: int = 5_000_000_000  # nsys clock = run clock + offset
    kernels: int = 4  # kernels per infer step
    graph: bool = False  # one graph launch (driver API) instead of a launch per kernel
    latency: int = 3_000  # launch call start -> its work starts
    gap: int = 1_000  # idle GPU time between two kernels
    kernel_ns: int | None = None  # each kernel's time; default: the step's gpu_ns split evenly
    slow_kernel: tuple[str, int, float] | None = None  # (name, from iteration, factor)
    keepalive_memsets: int = 0  # memsets in each idle step


def from_run(run, path: Path, plan: Plan = Plan(), *, domain_id: int = 1, other_domain: bool = True) -> Path:
    """The report nsys would have written for ``run`` (a ``trace.reader.Run``)."""
    rep = FakeReport()
    rep.domain("tracegen", domain_id)
    cats = {"variant": 1, "iteration": 2}
    for k, step in enumerate(("idle", "preprocess", "h2d", "infer", "d2h", "sync", "postprocess")):
        cats[step] = 3 + k
    for name, cat in cats.items():
        rep.category(domain_id, cat, name)
    if other_domain:  # e.g. torch's own ranges: must be ignored
        rep.domain("torch", 2)
    names = dict(zip(run.variants["variant_id"].to_list(), run.variants["name"].to_list()))
    steps = run.steps.sort("variant_id", "iteration", "host_start_ns")
    k = 0  # steps so far: each NVTX push/pop pair costs 10 ns of nsys time (keeps ranges apart)
    for (vid,), vsteps in steps.group_by(["variant_id"], maintain_order=True):
        v_start = None
        for (it,), isteps in vsteps.group_by(["iteration"], maintain_order=True):
            spans = []
            for s in isteps.to_dicts():
                a = s["host_start_ns"] + plan.offset + 10 * k + 4
                b = s["host_start_ns"] + s["host_ns"] + plan.offset + 10 * k + 5
                k += 1
                spans.append((s, a, b))
            i_start, i_end = spans[0][1] - 2, spans[-1][2] + 2
            v_start = i_start - 1 if v_start is None else v_start
            rep.range(i_start, i_end, "iteration", domain_id, category=cats["iteration"], payload=it)
            for s, a, b in spans:
                rep.range(a, b, s["step"], domain_id, category=cats[s["step"]])
                _work(rep, plan, s, a, b, it)
                if other_domain and s["step"] == "infer":  # overlaps tracegen's ranges, other domain
                    rep.range(a - 1, a + 2, "aten::conv2d", 2)
        rep.range(v_start, i_end + 1, names[vid], domain_id, category=cats["variant"])
    return rep.save(path)


def _work(rep: FakeReport, plan: Plan, s: dict, a: int, b: int, it: int) -> None:
    step = s["step"]
    if step in ("h2d", "d2h"):
        c = rep.api(a + 10, a + 20, "cuMemcpyHtoDAsync_v2" if step == "h2d" else "cuMemcpyDtoHAsync_v2", driver=True)
        t = a + 10 + plan.latency
        rep.memcpy(t, t + (s["gpu_ns"] or 1000), c, 1 << 20, 1 if step == "h2d" else 2)
    elif step == "infer":
        total = s["gpu_ns"] or 10_000
        each = plan.kernel_ns or max(1, total // plan.kernels)
        t = None
        if plan.graph:
            c = rep.api(a + 10, a + 30, "cuGraphLaunch", driver=True)
            t = a + 10 + plan.latency
        for k in range(plan.kernels):
            name = f"kernel_{k}"
            dur = each
            if plan.slow_kernel and plan.slow_kernel[0] == name and it >= plan.slow_kernel[1]:
                dur = int(each * plan.slow_kernel[2])
            if not plan.graph:
                call = a + 10 + 40 * k
                c = rep.api(call, call + 20, "cudaLaunchKernel")
                t = max(call + plan.latency, t + plan.gap if t is not None else 0)
            rep.kernel(t, t + dur, c, name, graph_node=(k + 1) if plan.graph else None)
            t = t + dur + (plan.gap if plan.graph else 0)
    elif step == "sync":
        rep.api(a + 5, b - 5, "cuStreamSynchronize", driver=True)
    elif step == "idle" and b - a > 100 * plan.keepalive_memsets:
        for k in range(plan.keepalive_memsets):
            c = rep.api(a + 100 * k, a + 100 * k + 10, "cuMemsetD8Async", driver=True)
            rep.memset(a + 100 * k + 50, a + 100 * k + 60, c, 4)

