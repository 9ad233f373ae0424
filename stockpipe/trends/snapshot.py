"""A read-only copy of the marts, for readers of the embedded warehouse.

DuckDB lets one process at a time hold the warehouse file, and a reader cannot open it
while a writer does, not even read-only; a drain following the topic holds it all day. So
every trend build on the embedded warehouse leaves a snapshot of the marts the readers
use (the dashboard, the report) as Parquet files, and readers query it with an in-memory
DuckDB under the marts' own names (``MARTS.DAILY_TRENDS``), so the same SQL runs on the
snapshot and, as the READER role, on Snowflake. A snapshot is complete before it becomes
current (one rename of the ``CURRENT`` pointer); the previous ones are kept a while, so a
reader in the middle of a query keeps its files.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.embedded import duck_frame

SNAPSHOT_TABLES = ("DAILY_TRENDS", "MINUTE_BARS", "LATEST_QUOTE", "TOP_MOVERS")
KEEP = 3
POINTER = "CURRENT"


def write_snapshot(warehouse: Warehouse, directory: Path) -> Path:
    """Copy :data:`SNAPSHOT_TABLES` of the embedded warehouse to a new snapshot in
    ``directory`` and make it the current one; returns its folder."""
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    target = directory / name
    target.mkdir(parents=True)
    duck = warehouse.duck  # type: ignore[attr-defined] - embedded only
    for table in SNAPSHOT_TABLES:
        path = str(target / f"{table}.parquet").replace("'", "''")
        duck.execute(
            f"copy (select * from {warehouse.database}.MARTS.{table}) to '{path}' (format parquet)"
        )
    pointer = directory / f"{POINTER}.{name}"
    pointer.write_text(name)
    pointer.replace(directory / POINTER)
    for old in sorted(p for p in directory.iterdir() if p.is_dir() and p.name != name)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def current_snapshot(directory: Path) -> Path | None:
    """The current snapshot's folder, or None before the first build."""
    pointer = directory / POINTER
    if not pointer.exists():
        return None
    folder = directory / pointer.read_text().strip()
    return folder if folder.is_dir() else None


class SnapshotReader:
    """Queries on the current snapshot, under the marts' names (``MARTS.<TABLE>``).

    Args:
        directory: the snapshots' directory (``settings.marts_snapshot_dir``).
    """

    def __init__(self, directory: Path):
        import duckdb

        self.directory = directory
        self.folder: Path | None = None
        self._duck = duckdb.connect(":memory:")
        self._duck.execute("set TimeZone = 'UTC'")
        self._duck.execute("create schema MARTS")

    def version(self) -> str:
        """The current snapshot's name (switching the views to it when a build replaced it).

        Raises:
            FileNotFoundError: there is no snapshot yet.
        """
        folder = current_snapshot(self.directory)
        if folder is None:
            raise FileNotFoundError(
                f"no marts snapshot in {self.directory}: run 'stockpipe trends'"
            )
        if folder != self.folder:
            for table in SNAPSHOT_TABLES:
                path = str(folder / f"{table}.parquet").replace("'", "''")
                self._duck.execute(
                    f"create or replace view MARTS.{table} as select * from read_parquet('{path}')"
                )
            self.folder = folder
        return folder.name

    def query_frame(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """The rows of ``sql`` (``%s`` placeholders, as for the warehouse), lower-case columns."""
        return duck_frame(self._duck, sql, params)

    def close(self) -> None:
        self._duck.close()
