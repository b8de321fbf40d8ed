"""Upgrades of older run directories, applied in memory when they are read (asv-style).

``MIGRATIONS[v]`` turns a version-``v`` run (manifest dict and tables) into version ``v + 1``.
Schema 1 is the first version, so there is nothing to migrate yet; a future schema 2 adds
``MIGRATIONS[1]`` and its test.
"""

from __future__ import annotations

from typing import Callable

import polars as pl

Tables = dict[str, pl.DataFrame]
MIGRATIONS: dict[int, Callable[[dict, Tables], tuple[dict, Tables]]] = {}


def migrate(manifest: dict, tables: Tables, target: int) -> tuple[dict, Tables]:
    version = int(manifest["schema_version"])
    while version < target:
        step = MIGRATIONS.get(version)
        if step is None:
            raise KeyError(version)
        manifest, tables = step(manifest, tables)
        version += 1
        manifest["schema_version"] = version
    return manifest, tables
