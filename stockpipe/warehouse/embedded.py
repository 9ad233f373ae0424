"""The embedded warehouse: a DuckDB file in fakesnow's layout, spoken to in Snowflake SQL.

A session opens the file with DuckDB alone and builds fakesnow's snowflake-connector-
compatible connection on the same DuckDB connection only when a statement needs Snowflake
SQL translated. fakesnow parses and rewrites every statement with sqlglot (~9 ms for each
of the loader's statements, a third of a drain's time) and its imports are a third of a
drain's memory; statements marked :class:`~stockpipe.warehouse.base.Portable` skip it and
run on the session's DuckDB connection as they are (the one fakesnow would use too, hence
the same transaction). A drain issues only those, so it never imports fakesnow and with it
snowflake-connector, pandas and sqlglot.

There are no roles here: every purpose gets the same session.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stockpipe.settings import MEMORY_LIMIT_PATTERN
from stockpipe.warehouse.base import (
    Portable,
    Purpose,
    Result,
    Staged,
    Warehouse,
    WarehouseBusy,
    WarehouseError,
    cursor_frame,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

_DML = re.compile(r"^\s*(insert|update|delete|merge)\b", re.IGNORECASE)


class EmbeddedWarehouse(Warehouse):
    backend = "embedded"

    def __init__(self, instance: Any, database: str, directory: Path, purpose: Purpose, owns: bool):
        super().__init__(database, str(directory / f"{database}.db"), purpose)
        self._instance = instance
        self._owns_instance = owns
        self._directory = directory
        self.duck = self._new_duck()
        self._fakesnow: Any = None

    @classmethod
    def open(
        cls, directory: Path, database: str, memory_limit: str, purpose: Purpose
    ) -> EmbeddedWarehouse:
        import duckdb

        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{database}.db"
        try:
            instance = duckdb.connect(
                ":memory:",
                config={
                    # DuckDB's default is 80% of RAM, and it keeps what it may as cache: bound
                    # it (a drain lowers it further, see memory_limit()).
                    "memory_limit": memory_limit,
                    # What fakesnow 0.12 sets on its instances (its SQL uses arrow lambdas).
                    "lambda_syntax": "ENABLE_SINGLE_ARROW",
                    # Where DuckDB spills what does not fit under the limit (an in-memory
                    # instance has no spill directory, and would fail instead).
                    "temp_directory": str(directory / "duckdb-spill"),
                },
            )
            instance.execute("set global TimeZone = 'UTC'")
            instance.execute(f"attach '{path}' as {database}")
            instance.execute(f"create schema if not exists {database}.RAW")
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise WarehouseBusy(
                    f"the embedded warehouse {path} is open in another "
                    "process (DuckDB allows one writer); wait for it to finish"
                ) from exc
            raise WarehouseError(
                f"cannot open the embedded warehouse in {directory}: {exc}"
            ) from exc
        return cls(instance, database, directory, purpose, owns=True)

    def _new_duck(self) -> Any:
        duck = self._instance.cursor()  # a DuckDB connection of its own: its own transactions
        duck.execute(f"set schema = '{self.database}.RAW'")
        return duck

    @property
    def _translating(self) -> Any:
        """fakesnow's connection on this session's DuckDB connection (built on first use)."""
        if self._fakesnow is None:
            self._fakesnow = _fakesnow_connection(self.duck, self.database, self._directory)
        return self._fakesnow

    def sibling(self) -> EmbeddedWarehouse:
        """A second session sharing this process's DuckDB instance: a second process could
        not open the file while this one holds it."""
        return EmbeddedWarehouse(
            self._instance, self.database, self._directory, self.purpose, owns=False
        )

    def reconnect(self) -> None:
        # An in-process session cannot be lost; only its transaction must end.
        with contextlib.suppress(Exception):  # no transaction was open
            self.duck.execute("rollback")

    def close(self) -> None:
        if self._fakesnow is not None:
            self._fakesnow.close()
        self.duck.close()
        if self._owns_instance:
            self._instance.close()

    # -- statements -----------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        if isinstance(sql, Portable):
            cursor = self.duck.execute(sql.replace("%s", "?"), list(params or []))
            if cursor.description is None:
                return Result((), [], 0)
            rows = cursor.fetchall()
            if _DML.match(sql):  # DuckDB answers DML with one row: the count
                return Result((), [], int(rows[0][0]) if rows else 0)
            return Result(tuple(d[0].lower() for d in cursor.description), rows, len(rows))
        # Closed at once: its DuckDB cursor goes with it, not when the collector gets to it.
        with contextlib.closing(self._translating.cursor()) as cursor:
            cursor.execute(sql, params)
            return Result.of_cursor(cursor)

    @contextmanager
    def staged(self, frame: pa.Table, batch_table: str) -> Iterator[Staged]:
        # DuckDB reads the Arrow table where it is: no copy, no load.
        name = f"_batch_{uuid.uuid4().hex}"
        self.duck.register(name, frame)
        try:
            yield Staged(name)
        finally:
            self.duck.unregister(name)

    @contextmanager
    def serving_connector(self) -> Iterator[None]:
        """Within the block, ``snowflake.connector.connect`` opens fakesnow connections on this
        warehouse's DuckDB instance: how dbt-snowflake reaches the embedded warehouse (a
        second process could not open the file while this one holds it)."""
        from unittest import mock

        import snowflake.connector

        opened: list[Any] = []

        def connect(**kwargs: Any) -> Any:
            duck = self._instance.cursor()
            schema = str(kwargs.get("schema") or "RAW").upper()
            duck.execute(f"set schema = '{self.database}.{schema}'")
            connection = _fakesnow_connection(duck, self.database, self._directory, schema)
            opened.append(connection)
            return connection

        # sqlglot warns of every table property DuckDB lacks (dbt's TRANSIENT): not the user's.
        sqlglot_log = logging.getLogger("sqlglot")
        level = sqlglot_log.level
        sqlglot_log.setLevel(logging.ERROR)
        try:
            with mock.patch.object(snowflake.connector, "connect", connect):
                yield
        finally:
            sqlglot_log.setLevel(level)
            for connection in opened:
                with contextlib.suppress(Exception):  # dbt closed it already
                    connection.close()

    # -- backend traits -------------------------------------------------------------------
    def is_transient(self, error: BaseException) -> bool:
        import duckdb

        # A busy or unwritable file, a write conflict with a sibling session.
        return isinstance(
            error, WarehouseError | duckdb.IOException | duckdb.TransactionException | OSError
        )

    def is_data_error(self, error: BaseException) -> bool:
        import duckdb

        # InvalidInputException: e.g. a string that is not valid UTF-8.
        return isinstance(
            error, duckdb.DataError | duckdb.IntegrityError | duckdb.InvalidInputException
        )

    def query_frame(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        # Portable SQL is DuckDB's to fetch: no translation and no Python row objects (the
        # live tier reads its views after every commit).
        if isinstance(sql, Portable):
            return duck_frame(self.duck, sql, params)
        with contextlib.closing(self._translating.cursor()) as cursor:
            return cursor_frame(cursor, sql, params)

    @contextmanager
    def memory_limit(self, limit: str) -> Iterator[None]:
        """DuckDB's memory limit is ``limit`` (e.g. "48MB") within the block."""
        if not re.fullmatch(MEMORY_LIMIT_PATTERN, limit):
            raise WarehouseError(f"memory limit {limit!r} is not a number of MB or GB")
        before = self.duck.execute("select current_setting('memory_limit')").fetchone()[0]
        self.duck.execute(f"set memory_limit = '{limit}'")
        try:
            yield
        finally:
            self.duck.execute(f"set memory_limit = '{before}'")


def _fakesnow_connection(
    duck: Any, database: str, directory: Path | None, schema: str = "RAW"
) -> Any:
    """fakesnow's snowflake-connector-compatible connection on an open DuckDB session.

    ``fakesnow.instance.FakeSnow`` would open a DuckDB instance of its own; this runs the
    setup it runs (fakesnow 0.12, pinned: its global and per-database information-schema
    objects and macros, all idempotent) on ours, so both share one session and transaction.
    """
    from fakesnow import info_schema, macros
    from fakesnow.fakes import FakeSnowflakeConnection
    from fakesnow.transforms import show

    # sqlglot warns of Snowflake properties DuckDB has no use for ("Unsupported property
    # transientproperty" for every TRANSIENT table): true, expected, and nothing to act on.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)

    # fakesnow warns on every result that it copies Arrow data; not actionable for users.
    warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
    duck.execute("attach if not exists ':memory:' as _fs_global")
    duck.execute(info_schema.fs_global_creation_sql())
    duck.execute(show.fs_global_creation_sql())
    duck.execute(info_schema.per_db_creation_sql(database))
    duck.execute(macros.creation_sql(database))
    return FakeSnowflakeConnection(duck, RecentResults(), database, schema, db_path=directory)


def duck_frame(duck: Any, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """The rows of ``sql`` (``%s`` placeholders, as for the warehouse) on a DuckDB
    connection, fetched by DuckDB into a frame, with lower-case column names."""
    frame = duck.execute(sql.replace("%s", "?"), list(params or [])).df()
    frame.columns = [str(c).lower() for c in frame.columns]
    return frame


class RecentResults(OrderedDict):
    """fakesnow's cache of results by query id (for RESULT_SCAN), kept to the last
    :attr:`KEEP`: fakesnow keeps every result's Arrow table for as long as its connection
    lives, so a process that queries all session (the live tier) grew by each result."""

    KEEP = 16

    def __setitem__(self, key: str, value: tuple) -> None:
        super().__setitem__(key, value)
        while len(self) > self.KEEP:
            self.popitem(last=False)
