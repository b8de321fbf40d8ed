"""From a finding to the right place in Nsight Systems: which NVTX ranges and iterations to open,
where they are on the report's timeline, and the exact commands that show their GPU work.

``where_to_look(...)`` is what a rule calls (its ``.text`` fits ``Finding.nsys_hint``). With an
imported report (``tracegen nsys-import``) it knows each iteration's position on the nsys
timeline (seconds since the session started, as nsys-ui shows them) and gives a ``sqlite3``
query over the run's own export; without one it says how to record and import one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

DOMAIN = "tracegen"


@dataclass(frozen=True)
class Pointer:
    text: str  # one paragraph: ranges, iterations, timeline positions
    commands: tuple[str, ...]  # exact shell commands
    ui_steps: tuple[str, ...]  # what to click in nsys-ui
    windows: tuple[tuple[str, float, float], ...] = ()  # (label, start s, end s) on the nsys timeline


def _fmt(rs: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in rs)


def report_for(imp: dict, variant_id: int | None, iteration: int | None) -> dict:
    """The imported report (``manifest["nsys_import"]["reports"]`` entry) that holds the iteration;
    a focused capture writes one report per capture window, each on its own timeline."""
    entries = imp.get("reports") or [{"sqlite": imp.get("sqlite"), "clock_offset_ns": imp.get("clock_offset_ns")}]
    for e in entries:
        for vid, a, b in e.get("covers") or []:
            if vid == variant_id and iteration is not None and a <= iteration <= b:
                return e
    return entries[0]


def windows(nsys_steps: pl.DataFrame | None, offset_ns: int | None, variant_id: int,
            iterations: tuple[tuple[int, int], ...], label: str = "") -> tuple[tuple[str, float, float], ...]:
    """Where the iteration ranges lie on the nsys timeline (s), from the imported per-step table."""
    if nsys_steps is None or offset_ns is None or nsys_steps.height == 0:
        return ()
    out = []
    for a, b in iterations:
        part = nsys_steps.filter((pl.col("variant_id") == variant_id) & pl.col("iteration").is_between(a, b))
        if part.height:
            start = int(part["range_start_ns"].min()) + offset_ns
            end = int((part["range_start_ns"] + part["range_ns"]).max()) + offset_ns
            out.append((f"{label}iterations {a}-{b}" if a != b else f"{label}iteration {a}", start / 1e9, end / 1e9))
    return tuple(out)


def where_to_look(manifest: dict, variant_name: str, iterations: tuple[tuple[int, int], ...],
                  steps: tuple[str, ...] = ("infer",), *, run_dir: Path | str | None = None, variant_id: int | None = None,
                  nsys_steps: pl.DataFrame | None = None, compare: tuple[str, int, tuple[tuple[int, int], ...]] | None = None
                  ) -> Pointer:
    """Where to look for ``iterations`` of the variant ``variant_name`` (and, with ``compare`` =
    (name, variant id, iterations), the iterations to hold them against)."""
    imp = manifest.get("nsys_import") or {}
    rep = (manifest.get("nsys") or {}).get("report") or "profile.nsys-rep"
    run = str(run_dir) if run_dir is not None else "RUN_DIR"
    entry = report_for(imp, variant_id, iterations[0][0] if iterations else None) if imp else {}
    path = entry.get("sqlite")
    sqlite = str(Path(run) / path) if path and not Path(path).is_absolute() else (
        path or f"{run}/{Path(rep).with_suffix('.sqlite').name}")
    rep = Path(path).with_suffix(".nsys-rep").name if path else rep
    offset = entry.get("clock_offset_ns")
    wins = windows(nsys_steps, offset, variant_id, iterations) if variant_id is not None else ()
    if compare is not None:
        other = report_for(imp, compare[1], compare[2][0][0] if compare[2] else None) if imp else {}
        wins += windows(nsys_steps, other.get("clock_offset_ns"), compare[1], compare[2], label=f"{compare[0]}: ")
    cats = ", ".join(f'"{s}"' for s in steps)
    where = f"iterations {_fmt(iterations)}" if iterations else "its iterations"
    text = (f'NVTX domain "{DOMAIN}": the range "{variant_name}", {where} (iteration ranges carry the iteration '
            f"as payload), step ranges {cats} and the CUDA rows beneath them")
    if compare is not None:
        text += f'; compare with "{compare[0]}", iterations {_fmt(compare[2])}'
    if wins:
        text += "; on the timeline: " + "; ".join(f"{lbl} at {a:.4f}-{b:.4f} s" for lbl, a, b in wins[:4])
    text += "."
    its = sorted({i for a, b in iterations for i in range(a, b + 1)})[:50]
    if imp:
        sql = ("SELECT k.start, k.end - k.start AS ns, s.value AS kernel FROM CUPTI_ACTIVITY_KIND_KERNEL k "
               "JOIN CUPTI_ACTIVITY_KIND_RUNTIME r USING (correlationId) JOIN StringIds s ON s.id = k.shortName "
               "JOIN NVTX_EVENTS it ON it.eventType = 59 AND it.int64Value IN ({its}) AND r.globalTid = it.globalTid "
               "AND r.start BETWEEN it.start AND it.end AND COALESCE(it.text, (SELECT value FROM StringIds WHERE "
               "id = it.textId)) = 'iteration' WHERE it.start >= {t0} AND it.end <= {t1} ORDER BY k.start")
        # the iteration range opens a little before its first step: 1 ms of slack (payloads keep neighbours out)
        t0 = int(wins[0][1] * 1e9) - 1_000_000 if wins else 0
        t1 = int(wins[0][2] * 1e9) + 1_000_000 if wins else 2 ** 62
        commands = (
            f"tracegen nsys-import {run}   # once: per-step kernel tables in the run",
            f'python -c "import polars as pl; print(pl.read_parquet(\'{run}/nsys_kernels.parquet\')'
            f".filter(pl.col('variant_id') == {variant_id}, pl.col('iteration').is_in({its[:10]})))\"",
            f'sqlite3 -header -column {sqlite} "{sql.format(its=",".join(map(str, its[:10])) or "0", t0=t0, t1=t1)}"',
            f"nsys stats -r nvtx_pushpop_trace,cuda_gpu_trace {run}/{rep}",
        )
    else:
        commands = (
            "tracegen run --nsys ...   # the same options as this run: records profile.nsys-rep in the run",
            f"tracegen nsys-import {run}   # then: per-step kernel tables, and this hint with timeline positions",
        )
    ui = (
        f"nsys-ui {run}/{rep}",
        f'Timeline: expand the process, then the thread row "NVTX" and its domain "{DOMAIN}"; '
        f'the variant range is named "{variant_name}"',
        "Hover an iteration range to see its payload (the iteration); select it and press Z (zoom to selection)",
        'The CUDA HW row under the device shows the kernels; right-click a step range > "Show in Events View" '
        "lists the CUDA calls it made",
    )
    if wins:
        ui = ui[:2] + (f"Zoom the timeline to {wins[0][1]:.4f}-{wins[0][2]:.4f} s ({wins[0][0]})",) + ui[2:]
    return Pointer(text, commands, ui, wins)
