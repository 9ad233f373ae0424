"""Snowflake, through snowflake-connector-python: the production warehouse.

Each purpose connects as its own role (``settings.warehouse``: the set-up role, LOADER,
TRANSFORMER, READER). The endpoint is Snowflake's own unless ``host``/``port``/``protocol``
are set (a private-link host, or the tests' HTTP server speaking Snowflake's protocol).

Batches reach the warehouse in bulk: a Parquet file PUT on the named internal stage that
the set-up created, then COPY INTO the set-up's transient batch table with the batch's
``LOAD_ID`` (see :meth:`SnowflakeWarehouse.staged`). Neither is DDL, and both run before the
transaction that reads the batch.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stockpipe.settings import ServiceLogin, Settings, validate_identifier
from stockpipe.warehouse.base import (
    Portable,
    Purpose,
    Result,
    Staged,
    Warehouse,
    WarehouseError,
    cursor_frame,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

# The internal stage batches are PUT on (created by the set-up, sql/012_raw_batches.sql).
BATCH_STAGE = "RAW.STOCK_PRICES_STAGE"
# SQLSTATE classes worth a retry on a new session: 08 connection exception, 57 operator
# intervention (57014: statement canceled, statement or lock-wait timeout).
_TRANSIENT_SQLSTATE_CLASSES = {"08", "57"}
# Snowflake's error numbers for the same, which the connector reports whatever SQLSTATE
# came with them (or none): 000625 a statement aborted waiting for a lock (lock timeout,
# too many waiters), 000630 a statement or warehouse timeout.
_TRANSIENT_ERRNOS = {625, 630}
# 22 data exception, 23 integrity constraint violation.
_DATA_SQLSTATE_CLASSES = {"22", "23"}
# What a session opened from a connector block takes from the settings, not from the block.
_SESSION_PARAMETERS = {"role", "application", "session_parameters", "host", "port", "protocol"}


def role_for(settings: Settings, purpose: Purpose) -> str:
    """The Snowflake role a session for ``purpose`` runs as."""
    wh = settings.warehouse
    return {
        "setup": wh.setup_role,
        "load": wh.loader_role,
        "transform": wh.transformer_role,
        "read": wh.reader_role,
    }[purpose]


def own_login(settings: Settings, purpose: Purpose) -> ServiceLogin | None:
    """The runtime purpose's own service user, when the settings give it one."""
    if purpose == "setup":
        return None
    login = settings.warehouse.service_logins()[purpose].login
    return login if login.configured else None


def connector_block_for(settings: Settings, purpose: Purpose) -> str | None:
    """The connector block a session for ``purpose`` logs in with, if any: the purpose's
    own, else (unless it has a user of its own) the shared one."""
    login = own_login(settings, purpose)
    if login is not None:
        return login.connector_block
    return settings.warehouse.connector_block


def connection_parameters(settings: Settings, purpose: Purpose) -> dict[str, Any]:
    """snowflake.connector.connect's arguments for a session for ``purpose``."""
    wh = settings.warehouse
    login = own_login(settings, purpose)
    params: dict[str, Any] = {
        "account": wh.account,
        "user": login.user if login else wh.user,
        "role": role_for(settings, purpose),
        "database": validate_identifier(wh.database),
        "schema": "RAW",
        "warehouse": wh.warehouse,
        "application": "stockpipe",
        "session_parameters": {
            "QUERY_TAG": f"stockpipe:{purpose}",
            "TIMEZONE": "UTC",
            # A drain that died mid-commit leaves its transaction holding locks until
            # Snowflake aborts it; wait this long for them, then fail and retry.
            "LOCK_TIMEOUT": int(wh.lock_timeout_seconds),
        },
    }
    for name in ("host", "port", "protocol"):
        if (value := getattr(wh, name)) is not None:
            params[name] = value
    if login is not None:
        # A service user: its key pair only (it has no password to fall back to).
        if login.private_key_file:
            params["private_key_file"] = str(login.private_key_file)
    elif wh.private_key_file:
        params["private_key_file"] = str(wh.private_key_file)
    elif wh.password:
        params["password"] = wh.password.get_secret_value()
    return params


class IncompleteLoad(WarehouseError):
    """A COPY loaded fewer rows than were staged (transient: the load is retried)."""


def check_copy(result: Result, expected_rows: int, where: str) -> None:
    """Require a COPY's result to show every staged row loaded.

    Snowflake answers a COPY with one row per file (``status``, ``rows_parsed``,
    ``rows_loaded``, ...), or with the single status "Copy executed with 0 files processed."
    when it found no file to load: both succeed as statements.

    Raises:
        IncompleteLoad: a file not ``LOADED``, no file, or fewer rows than ``expected_rows``.
    """
    if "rows_loaded" not in result.columns or not result.rows:
        status = result.rows[0][0] if result.rows and result.rows[0] else "no result"
        raise IncompleteLoad(f"COPY into {where} loaded no file ({status}): nothing committed")
    row_of = [dict(zip(result.columns, row, strict=False)) for row in result.rows]
    not_loaded = [r for r in row_of if str(r.get("status", "")).upper() != "LOADED"]
    loaded = sum(int(r.get("rows_loaded") or 0) for r in row_of)
    if not_loaded or loaded != expected_rows:
        detail = "; ".join(
            f"{r.get('file')}: {r.get('status')} ({r.get('first_error') or 'no error'})"
            for r in not_loaded
        )
        raise IncompleteLoad(
            f"COPY into {where} loaded {loaded} of {expected_rows} rows"
            + (f" ({detail})" if detail else "")
            + ": nothing committed"
        )


def load_connector_block(block_name: str, database: str) -> Any:
    """The saved prefect-snowflake SnowflakeConnector block ``block_name``.

    Raises:
        WarehouseError: the block is for another database than ``database``.
    """
    from prefect_snowflake import SnowflakeConnector

    block = SnowflakeConnector.load(block_name)
    if block.database.upper() != database.upper():
        raise WarehouseError(
            f"connector block {block_name} is for database {block.database}, but "
            f"STOCKPIPE_WAREHOUSE__DATABASE is {database}: save the block again "
            "(python -m deployments.blocks) or set the database to match"
        )
    return block


class SnowflakeWarehouse(Warehouse):
    backend = "snowflake"

    def __init__(self, settings: Settings, purpose: Purpose):
        database = validate_identifier(settings.warehouse.database)
        wh = settings.warehouse
        if wh.host:
            where = wh.host
        elif wh.account:
            where = f"{wh.account}.snowflakecomputing.com"
        else:
            where = f"(the account of connector block {connector_block_for(settings, purpose)})"
        super().__init__(database, f"snowflake://{where}/{database}", purpose)
        self._settings = settings
        self._conn = self._open()

    def _open(self) -> Any:
        import snowflake.connector

        wh = self._settings.warehouse
        params = connection_parameters(self._settings, self.purpose)
        role = params["role"]
        block = connector_block_for(self._settings, self.purpose)
        try:
            if block:
                return self._open_with_block(block, params)
            return snowflake.connector.connect(**params)
        except snowflake.connector.errors.Error as exc:
            # The connector's message never contains the password; keep it that way.
            login = (
                f"with connector block {block}"
                if block
                else f"account {wh.account} as user {params['user']}"
            )
            raise WarehouseError(
                f"cannot connect to Snowflake {login} as role {role}: {exc}"
            ) from exc

    def _open_with_block(self, block_name: str, params: dict[str, Any]) -> Any:
        """A session from a saved SnowflakeConnector block (as the VM's worker connects).

        The block holds the login, the database, the virtual warehouse and the schema; the
        session still runs as this purpose's role, with the session parameters (query tag,
        UTC, lock timeout) and, when set, the endpoint of the settings.
        """
        block = load_connector_block(block_name, self.database)
        return block.get_connection(
            **{name: value for name, value in params.items() if name in _SESSION_PARAMETERS}
        )

    def reconnect(self) -> None:
        try:
            self._conn.rollback()
            self._conn.close()
        except Exception as exc:
            log.info("closing the old Snowflake session: %s", exc)
        self._conn = self._open()

    def close(self) -> None:
        self._conn.close()

    # -- statements -----------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        cursor = self._conn.cursor()
        try:
            cursor.execute(str(sql), params)
            return Result.of_cursor(cursor)
        finally:
            cursor.close()

    def query_frame(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        cursor = self._conn.cursor()
        try:
            return cursor_frame(cursor, sql, params)
        finally:
            cursor.close()

    @contextmanager
    def staged(self, frame: pa.Table, batch_table: str) -> Iterator[Staged]:
        """PUT ``frame`` as one Parquet file on the batch stage, COPY it into
        ``batch_table`` under a new ``LOAD_ID``; delete those rows after the block.

        COPY's load history never sees a path twice (one folder per load id), and PURGE
        removes the file once loaded. A COPY that did not load every row of the file
        (a lost or cut upload, a file it skipped) raises :class:`IncompleteLoad` before the
        block runs, so no transaction ever reads a partial batch; its rows and its folder on
        the stage are removed.

        Raises:
            IncompleteLoad: the COPY's result shows fewer rows loaded than ``frame`` has.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        validate_identifier(batch_table.split(".")[-1])
        for column in frame.column_names:
            validate_identifier(column)
        load_id = uuid.uuid4().hex
        folder = f"@{BATCH_STAGE}/{load_id}/"
        clear_rows = Portable(f"delete from {batch_table} where load_id = %s")
        try:
            with tempfile.TemporaryDirectory(prefix="stockpipe-batch-") as directory:
                path = Path(directory) / f"{load_id}.parquet"
                pq.write_table(
                    frame.append_column("LOAD_ID", pa.array([load_id] * len(frame))), path
                )
                self.execute(
                    f"put 'file://{path.as_posix()}' {folder} "
                    "auto_compress = false overwrite = true"
                )
            # A folder of its own per load rather than FILES = (...): fakesnow's internal
            # stages take no FILES list, and a prefix holding one file is the same on Snowflake.
            copied = self.execute(
                f"copy into {batch_table} from {folder} "
                "file_format = (type = parquet use_logical_type = true) "
                "match_by_column_name = case_insensitive on_error = abort_statement purge = true"
            )
            check_copy(copied, len(frame), f"{batch_table} (load {load_id})")
        except BaseException:
            # PURGE removes only loaded files: what a failed COPY left stays on the stage
            # (and is billed as storage) unless removed here.
            for cleanup, params in ((f"remove {folder}", None), (clear_rows, (load_id,))):
                try:
                    self.execute(cleanup, params)
                except Exception as exc:
                    log.warning("could not clean up load %s (%s): %s", load_id, cleanup, exc)
            raise
        try:
            yield Staged(
                f"(select {', '.join(frame.column_names)} from {batch_table} where load_id = %s)",
                (load_id,),
            )
        finally:
            try:
                self.execute(clear_rows, (load_id,))
            except Exception as exc:
                # Left-over rows are never read again (each load reads its own LOAD_ID).
                log.warning("could not clear load %s from %s: %s", load_id, batch_table, exc)

    # -- backend traits -------------------------------------------------------------------
    def is_transient(self, error: BaseException) -> bool:
        from snowflake.connector import errors

        if isinstance(error, WarehouseError | errors.OperationalError | errors.InterfaceError):
            return True
        if not isinstance(error, errors.ProgrammingError):
            return False
        sqlstate = getattr(error, "sqlstate", None) or ""
        return (
            sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES
            or getattr(error, "errno", None) in _TRANSIENT_ERRNOS
        )

    def is_data_error(self, error: BaseException) -> bool:
        from snowflake.connector import errors

        sqlstate = getattr(error, "sqlstate", None) or ""
        return isinstance(error, errors.DatabaseError) and sqlstate[:2] in _DATA_SQLSTATE_CLASSES
