"""Reading an Nsight Systems SQLite export: find or make the export, check its schema, load frames.

The export (``nsys export --type sqlite``) has one table per kind of event and no indexes.
tracegen reads five of them:

- ``NVTX_EVENTS``: ranges (eventType 59 push/pop, 60 start/end) with their message (``text``, or
  ``textId`` -> ``StringIds`` for registered strings), ``domainId``, ``category`` and payload
  (``int64Value`` and its siblings); eventType 75 rows name the domains, 33 rows the categories.
- ``CUPTI_ACTIVITY_KIND_RUNTIME`` / ``_DRIVER``: CUDA API calls on host threads (``globalTid``)
  with the ``correlationId`` that links each to the GPU work it enqueued.
- ``CUPTI_ACTIVITY_KIND_KERNEL`` / ``_MEMCPY`` / ``_MEMSET``: GPU work with the same
  ``correlationId``. The kernels of a CUDA graph carry the correlation id of the graph launch.
- ``CUPTI_ACTIVITY_KIND_GRAPH_TRACE``: whole graph launches, where nsys traced graphs as one
  unit (its default, ``--cuda-graph-trace=graph``); then the graph's kernels are not in KERNEL.

Tables are created lazily, so a report without NVTX or without kernels simply lacks the table;
columns have changed between Nsight Systems versions, so each one used is checked up front and
a mismatch is reported with the version the export says it came from.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tracegen.errors import TraceError

NVTX = "NVTX_EVENTS"
STRINGS = "StringIds"
RUNTIME = "CUPTI_ACTIVITY_KIND_RUNTIME"
DRIVER = "CUPTI_ACTIVITY_KIND_DRIVER"
KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"
MEMCPY = "CUPTI_ACTIVITY_KIND_MEMCPY"
MEMSET = "CUPTI_ACTIVITY_KIND_MEMSET"
# A CUDA graph launch traced as a whole (nsys --cuda-graph-trace=graph, the default): one row per
# launch, its kernels not recorded one by one. With --cuda-graph-trace=node they are in KERNEL.
GRAPH = "CUPTI_ACTIVITY_KIND_GRAPH_TRACE"
GPU_TABLES = (KERNEL, MEMCPY, MEMSET, GRAPH)

# NVTX_EVENTS.eventType values (Nsight Systems' NvtxEventType enum).
NVTX_PUSHPOP = 59
NVTX_STARTEND = 60
NVTX_DOMAIN_NAME = 75
NVTX_CATEGORY_NAME = 33

# Columns tracegen needs from each table it reads (the export has many more).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    STRINGS: ("id", "value"),
    NVTX: ("start", "end", "eventType", "globalTid", "domainId", "category"),
    RUNTIME: ("start", "end", "globalTid", "correlationId"),
    DRIVER: ("start", "end", "globalTid", "correlationId"),
    KERNEL: ("start", "end", "deviceId", "streamId", "correlationId"),
    MEMCPY: ("start", "end", "deviceId", "streamId", "correlationId", "bytes", "copyKind"),
    MEMSET: ("start", "end", "deviceId", "streamId", "correlationId", "bytes"),
    GRAPH: ("start", "end", "deviceId", "streamId", "correlationId", "graphId"),
}
PAYLOAD_COLUMNS = ("int64Value", "uint64Value", "int32Value", "uint32Value")
# cudaMemcpyKind as CUPTI reports it (CUpti_ActivityMemcpyKind), for exports without the enum table.
COPY_KINDS = {1: "HtoD", 2: "DtoH", 3: "HtoA", 4: "AtoH", 5: "AtoA", 6: "AtoD", 7: "DtoA", 8: "DtoD", 9: "HtoH",
              10: "PtoP"}

SCHEMA_FIX = ("export the report again with a current Nsight Systems (`nsys export --type sqlite -o OUT.sqlite "
              "REPORT.nsys-rep`); tracegen reads the schema of Nsight Systems 2023 and later")


@dataclass
class Export:
    """An open SQLite export and what it holds."""

    path: Path
    conn: sqlite3.Connection
    columns: dict[str, set[str]]  # table -> column names
    meta: dict[str, str]  # META_DATA_EXPORT / version facts, where present

    def has(self, table: str) -> bool:
        return table in self.columns

    @property
    def version(self) -> str:
        product, schema = self.meta.get("EXPORT_PRODUCT_VERSION"), self.meta.get("EXPORT_SCHEMA_VERSION")
        if product:
            return f"Nsight Systems {product}, export schema {schema or '?'}"
        return schema or "unknown Nsight Systems version"

    def facts(self) -> dict[str, str]:
        """What the manifest keeps about the export."""
        keep = ("EXPORT_PRODUCT_VERSION", "EXPORT_SCHEMA_VERSION", "EXPORT_TIME_UTC", "EXPORT_PARAM_INPUT_FILE")
        return {k: self.meta[k] for k in keep if k in self.meta}

    def close(self) -> None:
        self.conn.close()


# -- finding or making the export ------------------------------------------------------------------
def export_sqlite(report: Path, nsys: str | None = None) -> Path:
    """Run ``nsys export --type sqlite`` beside ``report`` (once; an existing export is reused)."""
    report = Path(report)
    target = report.with_suffix(".sqlite")
    if target.exists() and target.stat().st_mtime >= report.stat().st_mtime:
        return target
    nsys = nsys or shutil.which("nsys")
    if nsys is None:
        raise TraceError(
            f"{report} is an Nsight Systems report, and reading it needs `nsys export`, but `nsys` is not on PATH",
            f"install Nsight Systems (or add its bin folder to PATH), or export it elsewhere with "
            f"`nsys export --type sqlite -o {target.name} {report.name}` and pass the .sqlite file",
        )
    cmd = [nsys, "export", "--type", "sqlite", "--force-overwrite", "true", "-o", str(target), str(report)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not target.exists():
        last = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise TraceError(
            f"`{' '.join(cmd)}` failed (exit status {proc.returncode}: {last[-1] if last else 'no message'})",
            "check that the report is complete (a profile that was killed leaves no usable report)",
        )
    return target


def open_export(path: Path) -> Export:
    """Open an export read-only and learn its tables, columns and version."""
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path} does not exist", "pass an .nsys-rep report or its .sqlite export")
    try:
        # immutable: no locks and no journal, so exports on read-only or network folders open too.
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
    except sqlite3.DatabaseError as exc:
        raise TraceError(f"{path} is not an SQLite database ({exc})",
                         "pass an .nsys-rep report or the .sqlite file `nsys export --type sqlite` wrote") from None
    columns = {n: {r[1] for r in conn.execute(f'PRAGMA table_info("{n}")')} for n in names}
    meta: dict[str, str] = {}
    if "META_DATA_EXPORT" in columns and {"name", "value"} <= columns["META_DATA_EXPORT"]:
        meta.update({str(k): str(v) for k, v in conn.execute("SELECT name, value FROM META_DATA_EXPORT")})
    return Export(path, conn, columns, meta)


def check_schema(ex: Export) -> None:
    """Raise a one-line TraceError when the export cannot be joined: no NVTX, no GPU work, or columns
    missing from a table tracegen reads (another Nsight Systems version)."""
    if not ex.has(NVTX):
        raise TraceError(
            f"{ex.path} has no NVTX ranges (no {NVTX} table)",
            "record with NVTX tracing on (`nsys profile -t cuda,nvtx ...`; `tracegen run --nsys` does this) "
            "in an application annotated with NVTX ranges",
        )
    if not any(ex.has(t) for t in GPU_TABLES):
        raise TraceError(
            f"{ex.path} has no CUDA kernels or copies (no {KERNEL} table)",
            "record with CUDA tracing on (`nsys profile -t cuda,nvtx ...`) while the application runs GPU work; "
            "a CPU-only run has no kernels to join",
        )
    if not (ex.has(RUNTIME) or ex.has(DRIVER)):
        raise TraceError(
            f"{ex.path} has GPU work but no CUDA API calls ({RUNTIME} / {DRIVER}), so kernels cannot be tied to "
            "NVTX ranges", "record with `-t cuda` (not only GPU metrics)",
        )
    for table, needed in REQUIRED_COLUMNS.items():
        if table == STRINGS and not ex.has(table):
            raise TraceError(f"{ex.path} has no {STRINGS} table ({ex.version})", SCHEMA_FIX)
        if not ex.has(table):
            continue
        missing = [c for c in needed if c not in ex.columns[table]]
        if missing:
            raise TraceError(
                f"{ex.path}: table {table} lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                f"this export's schema ({ex.version}) differs from the one tracegen reads", SCHEMA_FIX,
            )
    if not ({"text", "textId"} & ex.columns[NVTX]):
        raise TraceError(f"{ex.path}: table {NVTX} has neither text nor textId ({ex.version})", SCHEMA_FIX)
    if ex.has(KERNEL) and not ({"shortName", "demangledName"} & ex.columns[KERNEL]):
        raise TraceError(f"{ex.path}: table {KERNEL} has no kernel name column ({ex.version})", SCHEMA_FIX)


# -- frames ----------------------------------------------------------------------------------------
def _frame(ex: Export, sql: str, schema: dict[str, pl.DataType], params: tuple = ()) -> pl.DataFrame:
    cur = ex.conn.execute(sql, params)
    rows = cur.fetchall()
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(rows, schema=schema, orient="row")


def _text(ex: Export, alias: str = "e") -> str:
    """SQL for an NVTX message: inline text, else the registered string."""
    cols = ex.columns[NVTX]
    if "text" in cols and "textId" in cols:
        return f"COALESCE({alias}.text, s.value)"
    return f"{alias}.text" if "text" in cols else "s.value"


def _strings_join(ex: Export, alias: str = "e") -> str:
    return f"LEFT JOIN {STRINGS} s ON s.id = {alias}.textId" if "textId" in ex.columns[NVTX] else ""


def domains(ex: Export) -> dict[int, str]:
    """NVTX domain id -> name; id 0 is the default domain (``torch.cuda.nvtx`` and plain
    ``nvtxRangePush`` ranges land there)."""
    sql = (f"SELECT e.domainId, {_text(ex)} FROM {NVTX} e {_strings_join(ex)} "
           f"WHERE e.eventType = {NVTX_DOMAIN_NAME}")
    found = {int(d): str(n) for d, n in ex.conn.execute(sql) if d is not None and n is not None}
    return {0: "(default)", **found}


def categories(ex: Export, domain_id: int) -> dict[int, str]:
    sql = (f"SELECT e.category, {_text(ex)} FROM {NVTX} e {_strings_join(ex)} "
           f"WHERE e.eventType = {NVTX_CATEGORY_NAME} AND COALESCE(e.domainId, 0) = ?")
    return {int(c): str(n) for c, n in ex.conn.execute(sql, (domain_id,)) if c is not None and n is not None}


RANGE_SCHEMA = {"tid": pl.Int64(), "start": pl.Int64(), "end": pl.Int64(), "name": pl.String(),
                "category": pl.Int64(), "payload": pl.Int64()}


def ranges(ex: Export, domain_id: int) -> pl.DataFrame:
    """Closed push/pop and start/end ranges of one domain: tid, start, end, name, category, payload."""
    payload = [c for c in PAYLOAD_COLUMNS if c in ex.columns[NVTX]]
    pay = f"COALESCE({', '.join('e.' + c for c in payload)})" if len(payload) > 1 else (
        f"e.{payload[0]}" if payload else "NULL")
    sql = (f"SELECT e.globalTid, e.start, e.end, {_text(ex)}, e.category, {pay} FROM {NVTX} e {_strings_join(ex)} "
           f"WHERE e.eventType IN ({NVTX_PUSHPOP}, {NVTX_STARTEND}) AND COALESCE(e.domainId, 0) = ? AND e.end IS NOT NULL "
           f"AND e.end >= e.start")
    return _frame(ex, sql, RANGE_SCHEMA, (domain_id,))


def range_counts(ex: Export, domain_id: int, limit: int = 8) -> list[tuple[str, int]]:
    """The most frequent range names of a domain (for error messages and --iteration-range help)."""
    sql = (f"SELECT {_text(ex)} AS n, COUNT(*) AS c FROM {NVTX} e {_strings_join(ex)} "
           f"WHERE e.eventType IN ({NVTX_PUSHPOP}, {NVTX_STARTEND}) AND COALESCE(e.domainId, 0) = ? GROUP BY n ORDER BY c DESC LIMIT ?")
    return [(str(n), int(c)) for n, c in ex.conn.execute(sql, (domain_id, limit))]


API_SCHEMA = {"tid": pl.Int64(), "api_start": pl.Int64(), "api_end": pl.Int64(), "correlation_id": pl.Int64()}


def api_calls(ex: Export) -> pl.DataFrame:
    """CUDA runtime and driver API calls: tid, api_start, api_end, correlation_id."""
    parts = [f"SELECT globalTid, start, end, correlationId FROM {t}" for t in (RUNTIME, DRIVER) if ex.has(t)]
    return _frame(ex, " UNION ALL ".join(parts), API_SCHEMA)


OPS_SCHEMA = {"kind": pl.String(), "start": pl.Int64(), "end": pl.Int64(), "correlation_id": pl.Int64(),
              "stream": pl.Int64(), "device": pl.Int64(), "bytes": pl.Int64(), "name": pl.String(),
              "graph_node": pl.Int64()}


def gpu_ops(ex: Export) -> pl.DataFrame:
    """Kernels, memcpys, memsets and whole-graph launches: kind, start, end, correlation_id, stream, device, bytes, name,
    graph_node (non-null for work that ran as a node of a CUDA graph)."""
    parts = []
    if ex.has(KERNEL):
        cols = ex.columns[KERNEL]
        name_col = "shortName" if "shortName" in cols else "demangledName"
        node = "k.graphNodeId" if "graphNodeId" in cols else "NULL"
        parts.append(f"SELECT 'kernel', k.start, k.end, k.correlationId, k.streamId, k.deviceId, NULL, n.value, {node} "
                     f"FROM {KERNEL} k LEFT JOIN {STRINGS} n ON n.id = k.{name_col}")
    if ex.has(MEMCPY):
        node = "graphNodeId" if "graphNodeId" in ex.columns[MEMCPY] else "NULL"
        kinds = " ".join(f"WHEN {k} THEN 'memcpy {v}'" for k, v in COPY_KINDS.items())
        parts.append(f"SELECT 'memcpy', start, end, correlationId, streamId, deviceId, bytes, "
                     f"CASE copyKind {kinds} ELSE 'memcpy' END, {node} FROM {MEMCPY}")
    if ex.has(MEMSET):
        node = "graphNodeId" if "graphNodeId" in ex.columns[MEMSET] else "NULL"
        parts.append(f"SELECT 'memset', start, end, correlationId, streamId, deviceId, bytes, 'memset', {node} "
                     f"FROM {MEMSET}")
    if ex.has(GRAPH):
        parts.append(f"SELECT 'graph', start, end, correlationId, streamId, deviceId, NULL, 'graph ' || graphId, NULL "
                     f"FROM {GRAPH}")
    return _frame(ex, " UNION ALL ".join(parts), OPS_SCHEMA)
