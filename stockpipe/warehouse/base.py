"""What every warehouse session offers, whichever backend is behind it.

One entry point for SQL, :meth:`Warehouse.execute`, speaking Snowflake SQL with ``%s``
parameters; :meth:`Warehouse.query` and :meth:`Warehouse.query_frame` are shorthands for
its rows. A statement whose text is wrapped in :class:`Portable` is written in SQL that
Snowflake and DuckDB read alike: the embedded backend may then run it on DuckDB as it is
instead of translating it (see :mod:`stockpipe.warehouse.embedded`). Snowflake runs every
statement the same way.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from stockpipe.settings import Settings

# What a session is for; on Snowflake each purpose runs as its own role (settings.warehouse).
Purpose = Literal["setup", "load", "transform", "read"]


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached or refused a statement."""


class WarehouseBusy(WarehouseError):
    """The embedded warehouse file is held by another process (DuckDB allows one writer)."""


class WarehouseNotSetUp(WarehouseError):
    """The warehouse is not at the version this code expects: run ``stockpipe warehouse setup``."""


class Portable(str):
    """SQL text that Snowflake and DuckDB read alike (mark it where the statement is written)."""

    __slots__ = ()


@dataclass(frozen=True)
class Result:
    """What a statement returned.

    Attributes:
        columns: the result's column names, lower-case (empty for statements without rows).
        rows: its rows.
        rowcount: rows changed by DML (inserted, updated or deleted), else the rows returned.
    """

    columns: tuple[str, ...]
    rows: list[tuple]
    rowcount: int

    @classmethod
    def of_cursor(cls, cursor: Any) -> Result:
        """The result of the statement a snowflake-connector (or fakesnow) cursor ran."""
        if not cursor.description:
            return cls((), [], int(cursor.rowcount or 0))
        rows = cursor.fetchall()
        columns = tuple(d[0].lower() for d in cursor.description)
        rowcount = cursor.rowcount if cursor.rowcount is not None else len(rows)
        return cls(columns, rows, int(rowcount))


def cursor_frame(cursor: Any, sql: str, params: Sequence[Any] | None) -> pd.DataFrame:
    """The rows of ``sql`` on a snowflake-connector (or fakesnow) cursor as a pandas frame
    with lower-case column names, built from the result's Arrow batches.

    Not through ``fetchall``: a Python object per value made a session of RAW several times
    its size in memory while the frame was built (README "Memory budget").
    """
    cursor.execute(str(sql), params)
    frame = cursor.fetch_pandas_all()
    frame.columns = [d[0].lower() for d in cursor.description]
    return frame


@dataclass(frozen=True)
class Staged:
    """A frame made readable by the session's statements: ``relation`` is SQL to select it
    from, ``params`` the values of that SQL's ``%s`` placeholders, which come first."""

    relation: str
    params: tuple[Any, ...] = ()


class Warehouse(ABC):
    """A session on the warehouse, with the few operations the pipeline needs."""

    backend: ClassVar[str]

    def __init__(self, database: str, location: str, purpose: Purpose):
        self.database = database
        self.location = location
        self.purpose = purpose

    # -- connecting -----------------------------------------------------------------------
    @classmethod
    @contextmanager
    def connect(cls, settings: Settings, purpose: Purpose = "read") -> Iterator[Warehouse]:
        """Open the warehouse the settings name, for ``purpose``; close it on exit.

        The default purpose is the least privileged one. Sessions for any purpose but
        ``setup`` first check that the warehouse is set up for this version of the code.

        Raises:
            WarehouseNotSetUp: naming ``stockpipe warehouse setup``.
        """
        from stockpipe import metrics
        from stockpipe.warehouse import open_session

        opened = time.monotonic()
        warehouse = open_session(settings, purpose)
        try:
            if purpose != "setup":
                from stockpipe.warehouse.setup import require_setup

                require_setup(warehouse)
            yield warehouse
        finally:
            warehouse.close()
            metrics.WAREHOUSE_SESSION_SECONDS.labels(warehouse.backend, purpose).inc(
                time.monotonic() - opened
            )

    @abstractmethod
    def reconnect(self) -> None:
        """Drop this session (rolling back whatever it left open) and open a new one.

        For retries: a failed commit may leave the session's transaction open.
        """

    @abstractmethod
    def close(self) -> None: ...

    # -- statements -----------------------------------------------------------------------
    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        """Run one Snowflake SQL statement with ``%s`` parameters."""

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """The rows of a query."""
        return self.execute(sql, params).rows

    @abstractmethod
    def query_frame(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """The rows of a query as a pandas frame with lower-case column names."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One warehouse transaction: committed on success, rolled back on any error.

        DDL must stay outside: Snowflake commits implicitly before DDL, and DuckDB (the
        embedded warehouse) cannot mix DDL with writes to the database in one transaction.
        """
        self.execute(Portable("begin"))
        try:
            yield
            self.execute(Portable("commit"))
        except BaseException:
            # Also after a failed COMMIT, which may leave the transaction open. If the
            # session is gone, so is its transaction: the original error is what matters.
            with contextlib.suppress(Exception):
                self.execute(Portable("rollback"))
            raise

    @abstractmethod
    def staged(self, frame: pa.Table, batch_table: str) -> AbstractContextManager[Staged]:
        """``frame`` readable in the block through the yielded :class:`Staged`.

        Args:
            frame: columns named as those of ``batch_table`` (upper-case).
            batch_table: the set-up table that batches pass through on Snowflake (its
                columns and a ``LOAD_ID``); the embedded backend reads ``frame`` in place.
        """

    # -- backend traits -------------------------------------------------------------------
    @abstractmethod
    def is_transient(self, error: BaseException) -> bool:
        """Whether ``error`` is worth a retry on a new session: a lost connection, a busy
        file, a timeout. Not SQL or data errors, which would fail again."""

    @abstractmethod
    def is_data_error(self, error: BaseException) -> bool:
        """Whether ``error`` is the warehouse refusing the data itself (a value it cannot
        store or convert), rather than a connection, lock, timeout or SQL problem.

        Such an error fails again for the same rows, whatever the retries: the drain
        isolates the rows instead (see :mod:`stockpipe.drain.pipeline`).
        """

    @contextmanager
    def memory_limit(self, limit: str) -> Iterator[None]:
        """The embedded warehouse's memory limit within the block; nothing on Snowflake."""
        yield

    @contextmanager
    def serving_connector(self) -> Iterator[None]:
        """Within the block, ``snowflake.connector.connect`` reaches this warehouse: what
        tools that bring their own connection (dbt-snowflake) need. Snowflake is reached by
        the connector as it is."""
        yield

    def sibling(self) -> Warehouse:
        """A second session on the same warehouse, sharing what can be shared."""
        raise WarehouseError("sibling sessions are for the embedded warehouse; connect again")
