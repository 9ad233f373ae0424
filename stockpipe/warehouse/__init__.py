"""The warehouse: Snowflake, or DuckDB through fakesnow with the same connector API and SQL.

:class:`Warehouse` is the only place that knows which backend is in use. Everything above
it speaks Snowflake SQL with ``%s`` parameters: :meth:`Warehouse.execute` and
:meth:`Warehouse.query` for any statement, and the common-SQL methods (:meth:`Warehouse.dml`,
:meth:`Warehouse.select`, :meth:`Warehouse.run`, :meth:`Warehouse.staged`) for the
statements the drain runs on every batch.

The embedded warehouse is a DuckDB file in fakesnow's layout. A session opens it with DuckDB
alone and builds fakesnow's snowflake-connector-compatible connection on the same DuckDB
connection only when a statement needs Snowflake SQL translated. A drain needs none (its
statements are written in SQL both warehouses read alike), so it never imports fakesnow
and with it snowflake-connector, pandas and sqlglot: ~70 MB less resident memory.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stockpipe.settings import EXCHANGE_TZ, MEMORY_LIMIT_PATTERN, Settings, validate_identifier

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached or refused a statement."""


class WarehouseBusy(WarehouseError):
    """The embedded warehouse file is held by another process (DuckDB allows one writer)."""


class Warehouse:
    """A session on the warehouse, with the few operations the pipeline needs."""

    def __init__(
        self,
        conn: Any,
        backend: str,
        database: str,
        location: str,
        duck: Any = None,
        directory: Path | None = None,
    ):
        self._conn = conn
        self.backend = backend
        self.database = database
        self.location = location
        # Embedded only: this session's DuckDB connection, its instance, the files' directory.
        self.duck = duck
        self._directory = directory
        self._instance: Any = None
        self._owns_instance = True

    @property
    def conn(self) -> Any:
        """The snowflake-connector (or, embedded, fakesnow) connection of this session."""
        if self._conn is None:
            self._conn = _fakesnow_connection(self.duck, self.database, self._directory)
        return self._conn

    @property
    def retryable_errors(self) -> tuple[type[BaseException], ...]:
        """Errors worth retrying: lost connections, busy or unwritable files, Snowflake's
        operational errors. Not SQL errors, which would fail again."""
        if self.backend == "embedded":
            import duckdb

            return (WarehouseError, duckdb.IOException, duckdb.TransactionException, OSError)
        from snowflake.connector import errors

        return (WarehouseError, errors.OperationalError, errors.InterfaceError, OSError)

    def is_data_error(self, error: BaseException) -> bool:
        """Whether ``error`` is the warehouse refusing the data itself (a value it cannot
        store or convert), rather than a connection, lock, timeout or SQL problem.

        Such an error fails again for the same rows, whatever the retries: the drain
        isolates the rows instead (see :mod:`stockpipe.drain.pipeline`).
        """
        if self.backend == "embedded":
            import duckdb

            # InvalidInputException: e.g. a string that is not valid UTF-8.
            return isinstance(
                error, duckdb.DataError | duckdb.IntegrityError | duckdb.InvalidInputException
            )
        from snowflake.connector import errors

        # SQLSTATE class 22 (data exception) and 23 (integrity constraint violation).
        sqlstate = getattr(error, "sqlstate", None) or ""
        return isinstance(error, errors.DatabaseError) and sqlstate[:2] in {"22", "23"}

    # -- connecting -----------------------------------------------------------------------
    @classmethod
    @contextmanager
    def connect(cls, settings: Settings) -> Iterator[Warehouse]:
        """Open the warehouse the settings name; close it on exit."""
        database = validate_identifier(settings.warehouse.database)
        from stockpipe import metrics

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

        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{database}.db"
        try:
            instance = duckdb.connect(
                ":memory:",
                config={
                    # DuckDB's default is 80% of RAM, and it keeps what it may as cache: bound
                    # it (a drain lowers it further, see Warehouse.memory_limit).
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
        return cls._embedded_session(instance, database, directory)

    @classmethod
    def _embedded_session(cls, instance: Any, database: str, directory: Path) -> Warehouse:
        duck = instance.cursor()  # a DuckDB connection of its own: its own transactions
        duck.execute(f"set schema = '{database}.RAW'")
        location = str(directory / f"{database}.db")
        session = cls(None, "embedded", database, location, duck=duck, directory=directory)
        session._instance = instance
        return session

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

    @contextmanager
    def memory_limit(self, limit: str) -> Iterator[None]:
        """Embedded: DuckDB's memory limit is ``limit`` (e.g. "48MB") within the block, and
        what it was afterwards. Snowflake: nothing to do."""
        if self.backend != "embedded":
            yield
            return
        if not re.fullmatch(MEMORY_LIMIT_PATTERN, limit):
            raise WarehouseError(f"memory limit {limit!r} is not a number of MB or GB")
        before = self.duck.execute("select current_setting('memory_limit')").fetchone()[0]
        self.duck.execute(f"set memory_limit = '{limit}'")
        try:
            yield
        finally:
            self.duck.execute(f"set memory_limit = '{before}'")

    def sibling(self) -> Warehouse:
        """A second session on the same warehouse (its own transactions).

        On the embedded warehouse it shares this process's DuckDB instance: a second
        process could not open the file while this one holds it.
        """
        if self._instance is None:
            raise WarehouseError("sibling sessions are for the embedded warehouse; connect again")
        assert self._directory is not None
        other = self._embedded_session(self._instance, self.database, self._directory)
        other._owns_instance = False
        return other

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self.duck is not None:
            self.duck.close()
        if self._instance is not None and self._owns_instance:
            self._instance.close()

    # -- statements -----------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        cursor = self.conn.cursor()
        cursor.execute(sql, params)
        return cursor

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return self.execute(sql, params).fetchall()

    # -- SQL common to Snowflake and DuckDB ---------------------------------------------------
    # On the embedded warehouse, fakesnow parses and rewrites every statement with sqlglot
    # before DuckDB sees it: ~9 ms for each of the loader's statements, a third of a drain's
    # time, and its imports are a third of a drain's memory. The drain's statements are
    # written in SQL that Snowflake and DuckDB read alike, so on the embedded warehouse they
    # go straight to the session's DuckDB connection (the one fakesnow would use too, hence
    # the same transaction as every other statement of the session).
    def _common(self, sql: str, params: Sequence[Any] | None) -> Any:
        if self.backend == "embedded":
            return self.duck.execute(sql.replace("%s", "?"), list(params or []))
        return self.execute(sql, params)

    def run(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run a statement (DDL, BEGIN/COMMIT) written in SQL common to Snowflake and DuckDB."""
        self._common(sql, params)

    def dml(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Run an INSERT/UPDATE/DELETE written in SQL common to Snowflake and DuckDB.

        Returns:
            The number of rows it changed.
        """
        cursor = self._common(sql, params)
        if self.backend == "embedded":
            row = cursor.fetchone()
            return int(row[0]) if row else 0
        return int(cursor.rowcount or 0)

    def select(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Run a SELECT written in SQL common to Snowflake and DuckDB; return its rows."""
        return self._common(sql, params).fetchall()

    def query_frame(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        import pandas as pd

        cursor = self.execute(sql, params)
        columns = [d[0].lower() for d in cursor.description]
        return pd.DataFrame(cursor.fetchall(), columns=columns)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One warehouse transaction: committed on success, rolled back on any error.

        DDL must stay outside: Snowflake commits implicitly before DDL, and DuckDB (the
        embedded warehouse) cannot mix DDL with writes to the database in one transaction.
        """
        self.run("begin")
        try:
            yield
        except BaseException:
            self.run("rollback")
            raise
        self.run("commit")

    @contextmanager
    def staged(self, frame: pa.Table, name: str, like: str) -> Iterator[None]:
        """``frame`` readable as table ``name`` by this session's statements in the block.

        Column names must be those of table ``like`` (upper-case). Embedded: DuckDB reads
        the Arrow table where it is, registered under ``name``: no copy, no load.
        Snowflake: a session-temporary table like ``like``, bulk-loaded with write_pandas
        (PUT + COPY).
        """
        validate_identifier(name)
        for column in frame.column_names:
            validate_identifier(column)
        if self.backend == "embedded":
            self.duck.register(name, frame)
            try:
                yield
            finally:
                self.duck.unregister(name)
            return
        from snowflake.connector.pandas_tools import write_pandas

        # DDL outside any transaction (see transaction()); the table lives for the session.
        self.run(f"create temporary table if not exists {name} like {like}")
        self.dml(f"delete from {name}")
        ok, *_ = write_pandas(
            self.conn,
            frame.to_pandas(),
            name,
            auto_create_table=False,
            quote_identifiers=False,
            use_logical_type=True,
        )
        if not ok:
            raise WarehouseError(f"bulk load into {name} failed")
        yield


def _fakesnow_connection(duck: Any, database: str, directory: Path | None) -> Any:
    """fakesnow's snowflake-connector-compatible connection on an open DuckDB session.

    ``fakesnow.instance.FakeSnow`` would open a DuckDB instance of its own; this runs the
    setup it runs (fakesnow 0.12, pinned: its global and per-database information-schema
    objects and macros, all idempotent) on ours, so both share one session and transaction.
    """
    from fakesnow import info_schema, macros
    from fakesnow.fakes import FakeSnowflakeConnection
    from fakesnow.transforms import show

    # fakesnow warns on every result that it copies Arrow data; not actionable for users.
    warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
    duck.execute("attach if not exists ':memory:' as _fs_global")
    duck.execute(info_schema.fs_global_creation_sql())
    duck.execute(show.fs_global_creation_sql())
    duck.execute(info_schema.per_db_creation_sql(database))
    duck.execute(macros.creation_sql(database))
    return FakeSnowflakeConnection(duck, {}, database, "RAW", db_path=directory)
