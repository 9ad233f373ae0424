"""The warehouse: Snowflake, or DuckDB through fakesnow with the same SQL.

:class:`Warehouse` (``base``) is the interface everything above speaks: one entry point
for SQL in Snowflake's dialect, transactions, bulk staging of a batch. One class per
backend implements it: :class:`~stockpipe.warehouse.embedded.EmbeddedWarehouse` and
:class:`~stockpipe.warehouse.snowflake.SnowflakeWarehouse`. ``Warehouse.connect(settings,
purpose)`` opens the one the settings name, and checks that it is set up
(:mod:`stockpipe.warehouse.setup`).
"""

from __future__ import annotations

from datetime import datetime

from stockpipe.quote_spec import EXCHANGE_TZ
from stockpipe.settings import Settings, validate_identifier
from stockpipe.warehouse.base import (
    Portable,
    Purpose,
    Result,
    Staged,
    Warehouse,
    WarehouseBusy,
    WarehouseError,
    WarehouseNotSetUp,
)

__all__ = [
    "Portable",
    "Purpose",
    "Result",
    "Staged",
    "Warehouse",
    "WarehouseBusy",
    "WarehouseError",
    "WarehouseNotSetUp",
    "open_session",
]


def open_session(settings: Settings, purpose: Purpose) -> Warehouse:
    """A new session on the warehouse the settings name (the caller closes it).

    Prefer ``Warehouse.connect``, which also checks the set-up and closes the session.
    """
    from stockpipe import metrics

    database = validate_identifier(settings.warehouse.database)
    today = datetime.now(EXCHANGE_TZ).date().isoformat()
    metrics.WAREHOUSE_SESSIONS.labels(settings.warehouse.backend, today).inc()
    if settings.warehouse.backend == "embedded":
        from stockpipe.warehouse.embedded import EmbeddedWarehouse

        return EmbeddedWarehouse.open(
            settings.warehouse_dir, database, settings.warehouse.embedded_memory_limit, purpose
        )
    from stockpipe.warehouse.snowflake import SnowflakeWarehouse

    return SnowflakeWarehouse(settings, purpose)
