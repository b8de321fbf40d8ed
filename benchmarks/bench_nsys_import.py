"""How long the nsys-import join takes on large exports, against a plain SQL join of the same.

    python benchmarks/bench_nsys_import.py [--kernels 1000000] [--sql-kernels 20000] [--repeats 3]

Builds synthetic exports shaped like the real one (tests/importers/data): one thread, tracegen's
NVTX ranges (variant > iteration > idle / infer / sync), one cudaLaunchKernel per kernel in the
infer step plus a cuStreamSynchronize in sync; 250 kernels per iteration, like an eager ResNet.
Times ``tracegen.importers.nsys.join_export`` (read + join + per-step summary; medians of
``--repeats``) and, on the smaller export, the nested SQL join that tests/importers/test_nsys_real.py
uses as its reference, and prints a table.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracegen.importers import nsys_export as X  # noqa: E402
from tracegen.importers.nsys import join_export  # noqa: E402

PER_ITERATION = 250
TID = 281474976710657


def build(path: Path, kernels: int) -> None:
    iterations = max(1, kernels // PER_ITERATION)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("CREATE TABLE NVTX_EVENTS (start INTEGER NOT NULL, end INTEGER, eventType INTEGER NOT NULL, "
                "category INTEGER, text TEXT, globalTid INTEGER, textId INTEGER, domainId INTEGER, int64Value INTEGER)")
    con.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (start INTEGER NOT NULL, end INTEGER NOT NULL, "
                "globalTid INTEGER, correlationId INTEGER, nameId INTEGER NOT NULL)")
    con.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INTEGER NOT NULL, end INTEGER NOT NULL, "
                "deviceId INTEGER NOT NULL, streamId INTEGER NOT NULL, correlationId INTEGER, "
                "shortName INTEGER NOT NULL, graphNodeId INTEGER)")
    strings = ["tracegen", "variant", "iteration", "idle", "infer", "sync", "cudaLaunchKernel", "cuStreamSynchronize",
               "idle b1 no-gap eager sync-auto infer"] + [f"kernel_{k}" for k in range(PER_ITERATION)]
    sid = {s: i + 1 for i, s in enumerate(strings)}
    con.executemany("INSERT INTO StringIds VALUES (?, ?)", [(i, s) for s, i in sid.items()])
    nvtx = [(0, None, 75, None, "tracegen", TID, None, 1, None)]
    api, ker = [], []
    t, corr = 1_000_000, 0
    v0 = t
    for it in range(iterations):
        i0 = t
        nvtx.append((t + 10, t + 1_000, 59, 3, None, TID, sid["idle"], 1, None))
        t += 1_010
        s0 = t
        for k in range(PER_ITERATION):
            corr += 1
            a = s0 + 10 + 4_000 * k
            api.append((a, a + 3_000, TID, corr, sid["cudaLaunchKernel"]))
            ker.append((a + 5_000, a + 7_000, 0, 7, corr, sid[f"kernel_{k}"], None))
        t = s0 + 4_000 * PER_ITERATION + 20
        nvtx.append((s0, t, 59, 4, None, TID, sid["infer"], 1, None))
        corr += 1
        api.append((t + 10, t + 9_000, TID, corr, sid["cuStreamSynchronize"]))
        nvtx.append((t + 5, t + 10_000, 59, 5, None, TID, sid["sync"], 1, None))
        t += 10_010
        nvtx.append((i0, t, 59, 2, None, TID, sid["iteration"], 1, it))
        t += 10
    nvtx.append((v0 - 5, t + 5, 59, 1, None, TID, sid["idle b1 no-gap eager sync-auto infer"], 1, None))
    con.executemany("INSERT INTO NVTX_EVENTS VALUES (?,?,?,?,?,?,?,?,?)", nvtx)
    con.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (?,?,?,?,?)", api)
    con.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?,?,?,?,?,?,?)", ker)
    con.commit()
    con.close()


def polars_join(path: Path) -> int:
    ex = X.open_export(path)
    try:
        j = join_export(ex, "tracegen", "iteration")
    finally:
        ex.close()
    return int(j.summary["kernels"].sum())


SQL = """
WITH r AS (SELECT e.start, e.end, e.globalTid AS tid, COALESCE(e.text, s.value) AS name FROM NVTX_EVENTS e
           LEFT JOIN StringIds s ON s.id = e.textId WHERE e.eventType = 59),
     st AS (SELECT * FROM r WHERE name = 'infer')
SELECT COUNT(*), SUM(k.end - k.start) FROM st JOIN CUPTI_ACTIVITY_KIND_RUNTIME a
  ON a.globalTid = st.tid AND a.start >= st.start AND a.start <= st.end
  JOIN CUPTI_ACTIVITY_KIND_KERNEL k ON k.correlationId = a.correlationId
"""


def sql_join(path: Path) -> int:
    with sqlite3.connect(path) as c:
        return int(c.execute(SQL).fetchone()[0])


def timed(fn, path: Path, repeats: int) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn(path)
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernels", type=int, default=1_000_000)
    p.add_argument("--sql-kernels", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        rows = []
        for n, with_sql in ((a.sql_kernels, True), (a.kernels, False)):
            path = Path(d) / f"k{n}.sqlite"
            build(path, n)
            mb = path.stat().st_size / 1e6
            t_pl, k_pl = timed(polars_join, path, a.repeats)
            t_sql, k_sql = timed(sql_join, path, 1 if n > 50_000 else a.repeats) if with_sql else (None, None)
            if with_sql:
                assert k_pl == k_sql, (k_pl, k_sql)
            rows.append((n, mb, t_pl, t_sql))
        print(f"{'kernels':>10} {'export MB':>10} {'nsys-import join s':>19} {'plain SQL join s':>17} {'ratio':>7}")
        for n, mb, t_pl, t_sql in rows:
            ratio = f"{t_sql / t_pl:7.1f}" if t_sql else "      -"
            sql = f"{t_sql:17.2f}" if t_sql else f"{'-':>17}"
            print(f"{n:>10,} {mb:>10.1f} {t_pl:>19.2f} {sql} {ratio}")


if __name__ == "__main__":
    main()
