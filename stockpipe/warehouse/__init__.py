"""The warehouse: Snowflake, or DuckDB through fakesnow with the same connector API and SQL.

:class:`Warehouse` is the only place that knows which backend is in use. Everything above
it speaks the snowflake-connector API (cursor, execute with ``%s`` parameters) and
Snowflake SQL.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from stockpipe.settings import Settings, validate_identifier

log = logging.getLogger(__name__)


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached or refused a statement."""


class WarehouseBusy(WarehouseError):
    """The embedded warehouse file is held by another process (DuckDB allows one writer)."""


def _transient_errors() -> tuple[type[BaseException], ...]:
    import duckdb
    from snowflake.connector import errors

    # Worth retrying: lost connections, busy or unwritable files, Snowflake's operational
    # errors. Not worth retrying: SQL errors (ProgrammingError), which would fail again.
    return (
        WarehouseError,
        errors.OperationalError,
        errors.InterfaceError,
        duckdb.IOException,
        duckdb.TransactionException,
        OSError,
    )


class Warehouse:
    """A connection to the warehouse, with the few operations the pipeline needs."""

    def __init__(self, conn: Any, backend: str, database: str, location: str):
        self.conn = conn
        self.backend = backend
        self.database = database
        self.location = location

    # -- connecting -----------------------------------------------------------------------
    @classmethod
    @contextmanager
    def connect(cls, settings: Settings) -> Iterator[Warehouse]:
        """Open the warehouse the settings name; close it on exit."""
        database = validate_identifier(settings.warehouse.database)
        from stockpipe import metrics
        from stockpipe.market_calendar import EXCHANGE_TZ

        today = datetime.now(EXCHANGE_TZ).date().isoformat()
        metrics.WAREHOUSE_SESSIONS.labels(settings.warehouse.backend, today).inc()
        if settings.warehouse.backend == "embedded":
            warehouse = cls._connect_embedded(
                settings.warehouse_dir, database, settings.warehouse.embedded_memory_limit
            )
        else:
            warehouse = cls._connect_snowflake(settings, database)
        try:
            yield warehouse
        finally:
            warehouse.close()

    @classmethod
    def _connect_embedded(cls, directory: Path, database: str, memory_limit: str) -> Warehouse:
        import duckdb
        from fakesnow.instance import FakeSnow

        # fakesnow warns on every result that it copies Arrow data; not actionable for users.
        warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)

        directory.mkdir(parents=True, exist_ok=True)
        try:
            fake = FakeSnow(db_path=directory)
            conn = fake.connect(database=database, schema="RAW")
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise WarehouseBusy(
                    f"the embedded warehouse {directory / (database + '.db')} is open in another "
                    "process (DuckDB allows one writer); wait for it to finish"
                ) from exc
            raise WarehouseError(
                f"cannot open the embedded warehouse in {directory}: {exc}"
            ) from exc
        # DuckDB's default memory limit is 80% of RAM, and it keeps what it may: bound it so a
        # drain's memory follows its batch, not the size of the warehouse.
        fake.duck_conn.execute(f"SET memory_limit = '{memory_limit}'")
        warehouse = cls(conn, "embedded", database, str(directory / f"{database}.db"))
        warehouse._fake = fake
        return warehouse

    @classmethod
    def _connect_snowflake(cls, settings: Settings, database: str) -> Warehouse:
        import snowflake.connector

        wh = settings.warehouse
        if wh.connector_block:
            from prefect_snowflake import SnowflakeConnector

            connector = SnowflakeConnector.load(wh.connector_block)
            conn = connector.get_connection()
            return cls(conn, "snowflake", database, f"snowflake block {wh.connector_block}")
        params: dict[str, Any] = {
            "account": wh.account,
            "user": wh.user,
            "database": database,
            "schema": "RAW",
            "warehouse": wh.warehouse,
            "application": "stockpipe",
            "session_parameters": {"QUERY_TAG": "stockpipe", "TIMEZONE": "UTC"},
        }
        if wh.role:
            params["role"] = wh.role
        if wh.private_key_file:
            params["private_key_file"] = str(wh.private_key_file)
        elif wh.password:
            params["password"] = wh.password.get_secret_value()
        try:
            conn = snowflake.connector.connect(**params)
        except snowflake.connector.errors.Error as exc:
            # The connector's message never contains the password; keep it that way.
            raise WarehouseError(
                f"cannot connect to Snowflake account {wh.account}: {exc}"
            ) from exc
        return cls(conn, "snowflake", database, f"snowflake://{wh.account}/{database}")

    def sibling(self) -> Warehouse:
        """A second session on the same warehouse (its own transactions).

        On the embedded warehouse it shares this process's DuckDB instance: a second
        process could not open the file while this one holds it.
        """
        fake = getattr(self, "_fake", None)
        if fake is None:
            raise WarehouseError("sibling sessions are for the embedded warehouse; connect again")
        conn = fake.connect(database=self.database, schema="RAW")
        other = type(self)(conn, self.backend, self.database, self.location)
        other._owns_instance = False
        return other

    def close(self) -> None:
        self.conn.close()
        if not getattr(self, "_owns_instance", True):
            return
        fake = getattr(self, "_fake", None)
        if fake is not None:
            fake.duck_conn.close()

    # -- statements -----------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        cursor = self.conn.cursor()
        cursor.execute(sql, params)
        return cursor

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return self.execute(sql, params).fetchall()

    # -- the drain's hot path ---------------------------------------------------------------
    # On the embedded warehouse, fakesnow parses and rewrites every statement with sqlglot
    # before DuckDB sees it: ~9 ms for each of the loader's statements, a third of a drain's
    # time. The loader's per-batch statements are written in SQL that Snowflake and DuckDB
    # read alike, so on the embedded warehouse they go straight to fakesnow's DuckDB
    # connection (the same connection, hence the same transaction, as every other statement).
    def _duck(self) -> Any:
        return self.conn._duck_conn  # fakesnow 0.12's connection to DuckDB (pinned)

    def _duck_execute(self, sql: str, params: Sequence[Any] | None) -> Any:
        return self._duck().execute(sql.replace("%s", "?"), list(params or []))

    def dml(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Run an INSERT/UPDATE/DELETE written in SQL common to Snowflake and DuckDB.

        Returns:
            The number of rows it changed.
        """
        if self.backend == "embedded":
            row = self._duck_execute(sql, params).fetchone()
            return int(row[0]) if row else 0
        return int(self.execute(sql, params).rowcount or 0)

    def select(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Run a SELECT written in SQL common to Snowflake and DuckDB; return its rows."""
        if self.backend == "embedded":
            return self._duck_execute(sql, params).fetchall()
        return self.query(sql, params)

    def query_frame(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        cursor = self.execute(sql, params)
        columns = [d[0].lower() for d in cursor.description]
        return pd.DataFrame(cursor.fetchall(), columns=columns)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One warehouse transaction: committed on success, rolled back on any error.

        DDL must stay outside: Snowflake commits implicitly before DDL, and DuckDB (the
        embedded warehouse) cannot mix DDL with writes to the database in one transaction.
        """
        self.execute("begin")
        try:
            yield
        except BaseException:
            self.execute("rollback")
            raise
        self.execute("commit")

    def write_frame(self, frame: pd.DataFrame, table: str, schema: str | None = None) -> int:
        """Bulk-load ``frame`` into an existing table (write_pandas: PUT + COPY on Snowflake).

        Column names must match the table's (upper-case). Returns the rows written.
        """
        validate_identifier(table)
        if self.backend == "embedded":
            # DuckDB scans the frame itself (vectorised); fakesnow's write_pandas converts
            # every cell in Python first, which costs more than the whole load.
            columns = ", ".join(validate_identifier(str(c)) for c in frame.columns)
            target = f"{validate_identifier(schema)}.{table}" if schema else table
            duck = self._duck()
            duck.register("stockpipe_bulk_frame", frame)
            try:
                duck.execute(
                    f"insert into {target} ({columns}) select {columns} from stockpipe_bulk_frame"
                )
            finally:
                duck.unregister("stockpipe_bulk_frame")
            return len(frame)
        from snowflake.connector.pandas_tools import write_pandas

        ok, _chunks, rows, *_ = write_pandas(
            self.conn,
            frame,
            table,
            schema=schema,
            auto_create_table=False,
            quote_identifiers=False,
            use_logical_type=True,
        )
        if not ok:
            raise WarehouseError(f"bulk load into {table} failed")
        return int(rows)


TRANSIENT_WAREHOUSE_ERRORS = _transient_errors()
