"""Trim a real ``nsys export --type sqlite`` file to a few iterations, for a test fixture.

    python tests/importers/data/trim_export.py SRC.sqlite DST.sqlite --iterations 0,1,2,40,64

Keeps, unchanged: the NVTX domain and category rows (eventType 75/33 and 76), every variant
range, the iteration ranges whose payload is listed and all NVTX ranges inside them; the CUDA
API calls that start inside a kept iteration range; the kernels, memcpys, memsets and graph
launches whose correlation id belongs to a kept API call; the strings those rows reference; and
META_DATA_EXPORT, TARGET_INFO_GPU, TARGET_INFO_SESSION_START_TIME. Other tables are left out.
Rows are copied as they are (no timestamps changed), so the trimmed file is a real export of
fewer iterations.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

KEEP_WHOLE = ("META_DATA_EXPORT", "TARGET_INFO_GPU", "TARGET_INFO_SESSION_START_TIME")
GPU = ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY", "CUPTI_ACTIVITY_KIND_MEMSET",
       "CUPTI_ACTIVITY_KIND_GRAPH_TRACE")
API = ("CUPTI_ACTIVITY_KIND_RUNTIME", "CUPTI_ACTIVITY_KIND_DRIVER")


def trim(src: Path, dst: Path, iterations: list[int]) -> None:
    dst.unlink(missing_ok=True)
    con = sqlite3.connect(dst)
    con.execute("ATTACH DATABASE ? AS s", (f"file:{src}?mode=ro",))
    tables = {r[0]: r[1] for r in con.execute("SELECT name, sql FROM s.sqlite_master WHERE type = 'table'")}
    for name in ("StringIds", "NVTX_EVENTS", *API, *GPU, *KEEP_WHOLE):
        if name in tables:
            con.execute(tables[name])
    its = ",".join(str(int(i)) for i in iterations)
    con.execute("CREATE TEMP TABLE win AS SELECT start, end, globalTid FROM s.NVTX_EVENTS "
                f"WHERE eventType = 59 AND int64Value IN ({its}) AND category = (SELECT category FROM s.NVTX_EVENTS "
                "WHERE eventType = 33 AND text = 'iteration' LIMIT 1)")
    con.execute("INSERT INTO NVTX_EVENTS SELECT e.* FROM s.NVTX_EVENTS e WHERE e.eventType IN (33, 75, 76) "
                "OR e.category = (SELECT category FROM s.NVTX_EVENTS WHERE eventType = 33 AND text = 'variant' LIMIT 1) "
                "OR EXISTS (SELECT 1 FROM win w WHERE e.globalTid = w.globalTid AND e.start >= w.start "
                "AND e.end <= w.end)")
    for api in API:
        if api in tables:
            con.execute(f"INSERT INTO {api} SELECT a.* FROM s.{api} a WHERE EXISTS (SELECT 1 FROM win w "
                        "WHERE a.globalTid = w.globalTid AND a.start >= w.start AND a.start <= w.end)")
    calls = " UNION ".join(f"SELECT correlationId FROM {a}" for a in API if a in tables)
    for g in GPU:
        if g in tables:
            con.execute(f"INSERT INTO {g} SELECT * FROM s.{g} WHERE correlationId IN ({calls})")
    for t in KEEP_WHOLE:
        if t in tables:
            con.execute(f"INSERT INTO {t} SELECT * FROM s.{t}")
    refs = ["SELECT textId FROM NVTX_EVENTS"] + [f"SELECT nameId FROM {a}" for a in API if a in tables]
    if "CUPTI_ACTIVITY_KIND_KERNEL" in tables:
        refs += [f"SELECT {c} FROM CUPTI_ACTIVITY_KIND_KERNEL" for c in ("shortName", "demangledName", "mangledName")]
    con.execute(f"INSERT INTO StringIds SELECT * FROM s.StringIds WHERE id IN ({' UNION '.join(refs)})")
    con.commit()
    con.execute("DETACH DATABASE s")
    con.execute("VACUUM")
    con.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--iterations", required=True, help="comma-separated iteration indices to keep")
    a = p.parse_args()
    trim(a.src, a.dst, [int(x) for x in a.iterations.split(",")])
    print(f"{a.dst}: {a.dst.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
