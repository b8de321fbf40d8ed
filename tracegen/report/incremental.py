"""What makes a page up to date: a content hash of its run plus what renders it.

A page is rebuilt when its key changes. The key hashes the files of the run directory that the
reader reads (names and bytes: manifest, variants, steps, telemetry, flushed parts), the tracegen version, the
files that render pages (the package's Python sources and the templates, so a change to a rule
or a template rebuilds every page even before the version moves) and the report options.
Hashing is cheap next to analysing: SHA-256 (with the CPU's SHA instructions) reads about
0.8 GB/s on the 2-core development machine, twice blake2b's speed there (0.07 s for the 56 MB
of a 10^6-iteration run).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import tracegen
from tracegen.report.render import templates_dir

CHUNK = 1 << 20


def _hash_files(h: "hashlib._Hash", root: Path, files: list[Path]) -> None:
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
        h.update(b"\0")


@functools.lru_cache(maxsize=1)
def renderer_fingerprint() -> str:
    """Hash of the tracegen version, its Python sources and its templates."""
    h = hashlib.sha256()
    h.update(tracegen.__version__.encode())
    package = Path(tracegen.__file__).resolve().parent
    _hash_files(h, package, sorted(package.rglob("*.py")))
    templates = templates_dir()
    _hash_files(h, templates, sorted(p for p in templates.rglob("*") if p.is_file()))
    return h.hexdigest()[:32]


def page_key(run_dir: Path, *options: object) -> str:
    """Key of the page of ``run_dir`` rendered with ``options`` (e.g. the latency budget)."""
    run_dir = Path(run_dir)
    h = hashlib.sha256()
    h.update(renderer_fingerprint().encode())
    h.update(repr(options).encode())
    # what the reader reads: the manifest and the tables (merged or still in parts); not the
    # Nsight Systems report or other large files kept beside them
    files = sorted(p for p in run_dir.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and (p.suffix == ".parquet" or p.name == "manifest.json"))
    _hash_files(h, run_dir, files)
    return h.hexdigest()[:32]
