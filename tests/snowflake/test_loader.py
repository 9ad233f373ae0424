"""The loader on the Snowflake backend, over HTTP with the real connector: set-up once, then
bulk staging, the strictly-newer merge, compare-and-set offsets, retries on a new session."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from stockpipe import market_calendar as mc
from stockpipe.drain.loader import load_batch
from stockpipe.drain.offsets import read_offsets
from stockpipe.settings import Settings, load_settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.warehouse import Warehouse, WarehouseNotSetUp
from tests.support import SnowflakeServer, raw_rows_from_bars, set_up_warehouse

SESSION = mc.session("2025-11-26")
FETCHED = datetime(2025, 11, 26, 21, 5, tzinfo=UTC)


def bars(symbols=("AAPL", "MSFT")):
    return SimulatedMarket().fetch(list(symbols), SESSION.open, SESSION.close)


def transactions(statements: list[dict]) -> list[list[str]]:
    """The statements of each BEGIN .. COMMIT/ROLLBACK, per session, in order."""
    open_by_session: dict[str, list[str]] = {}
    done = []
    for entry in statements:
        sql = entry["sql"].strip().lower()
        if sql == "begin":
            open_by_session[entry["session"]] = []
        elif sql in ("commit", "rollback"):
            done.append(open_by_session.pop(entry["session"], []))
        elif entry["session"] in open_by_session:
            open_by_session[entry["session"]].append(sql)
    return done


def test_setup_runs_once_then_runtime_roles_start(snowflake_env: str) -> None:
    settings = load_settings()
    with (
        pytest.raises(WarehouseNotSetUp, match="stockpipe warehouse setup"),
        Warehouse.connect(settings, "load"),
    ):
        pass
    first = set_up_warehouse(settings)
    assert "000_account.sql" in first and "900_grants.sql" in first
    assert set_up_warehouse(settings) == []  # a second run changes nothing
    for purpose in ("load", "transform", "read"):
        with Warehouse.connect(settings, purpose) as warehouse:
            assert warehouse.backend == "snowflake"
            assert warehouse.query("select count(*) from RAW.STOCK_PRICES") == [(0,)]


def test_batches_load_in_bulk_and_only_newer_fetches_rewrite(
    snowflake_settings: Settings, snowflake_server: SnowflakeServer, snowflake_env: str
) -> None:
    source = bars()
    with Warehouse.connect(snowflake_settings, "load") as warehouse:
        result = load_batch(
            warehouse,
            raw_rows_from_bars(source, FETCHED),
            {("prices", 0): 780},
            "cluster-a",
            start_offsets={("prices", 0): 0},
        )
        assert (result.inserted, result.replaced) == (780, 0)
        # The same fetch again (a retried batch, a reset to earliest): nothing rewritten.
        again = raw_rows_from_bars(source, FETCHED, first_offset=780)
        result = load_batch(
            warehouse, again, {("prices", 0): 1560}, "cluster-a", start_offsets={("prices", 0): 780}
        )
        assert (result.inserted, result.replaced) == (0, 0)
        # A later fetch with a corrected close replaces each bar once.
        later = raw_rows_from_bars(source, FETCHED + timedelta(minutes=1), first_offset=1560)
        later["CLOSE"] = later["HIGH"]
        result = load_batch(
            warehouse,
            later,
            {("prices", 0): 2340},
            "cluster-a",
            start_offsets={("prices", 0): 1560},
        )
        assert (result.inserted, result.replaced) == (0, 780)
        rows = warehouse.query_frame("select symbol, ts, close, high from RAW.STOCK_PRICES")
        assert len(rows) == 780 and (rows["close"] == rows["high"]).all()
        assert warehouse.query("select count(*) from RAW.STOCK_PRICES_BATCH") == [(0,)]
        assert read_offsets(warehouse, "prices")[("prices", 0)].next_offset == 2340

    statements = snowflake_server.statements(snowflake_env)
    loads = [e for e in statements if e["role"] == "STOCKPIPE_LOADER"]
    assert any(e["sql"].lower().startswith("put ") for e in loads)
    assert any(e["sql"].lower().startswith("copy into raw.stock_prices_batch") for e in loads)
    assert not any("temp" in e["sql"].lower() for e in loads)  # no temporary stage or table
    for statements_in_transaction in transactions(loads):
        for sql in statements_in_transaction:
            assert not re.match(r"(create|alter|drop|put|copy|grant)\b", sql), sql


def test_a_fenced_drain_never_moves_an_offset_backwards(snowflake_settings: Settings) -> None:
    source = bars(("AAPL",))
    with Warehouse.connect(snowflake_settings, "load") as warehouse:
        load_batch(
            warehouse,
            raw_rows_from_bars(source, FETCHED),
            {("prices", 0): 390},
            None,
            start_offsets={("prices", 0): 0},
        )
        # Another drain that still thinks the partition starts at 0 commits late.
        late = load_batch(
            warehouse,
            raw_rows_from_bars(source, FETCHED),
            {("prices", 0): 200},
            None,
            start_offsets={("prices", 0): 0},
        )
        assert late.fenced == {("prices", 0): 390}
        assert late.committed_offsets == {}
        assert read_offsets(warehouse, "prices")[("prices", 0)].next_offset == 390
        assert warehouse.query("select count(*) from RAW.KAFKA_OFFSETS") == [(1,)]


def test_backfill_from_the_raw_zone_into_snowflake_rebuilds_without_duplicates(
    snowflake_settings: Settings, snowflake_server: SnowflakeServer, snowflake_env: str
) -> None:
    from stockpipe.drain.raw_zone import RawZone, backfill
    from stockpipe.object_store import LocalStore
    from stockpipe.warehouse.raw_schema import RAW_ARROW_SCHEMA

    zone = RawZone(LocalStore(snowflake_settings.lake_dir))
    frame = raw_rows_from_bars(bars(), FETCHED, loaded_at=FETCHED)
    rows = pa.Table.from_pandas(frame, preserve_index=False)
    zone.write_batch(rows.cast(RAW_ARROW_SCHEMA))
    with Warehouse.connect(snowflake_settings, "load") as warehouse:
        first = backfill(zone, warehouse, "prices")
        assert (first.files, first.inserted, first.replaced) == (1, 780, 0)
        warehouse.execute("delete from RAW.STOCK_PRICES where symbol = %s", ("MSFT",))
        rebuilt = backfill(zone, warehouse, "prices")  # after a DELETE: loads again
        assert (rebuilt.inserted, rebuilt.replaced) == (390, 0)
        assert warehouse.query(
            "select count(*), count(distinct symbol || cast(ts as varchar)) from RAW.STOCK_PRICES"
        ) == [(780, 780)]
        assert warehouse.query("select count(*) from RAW.KAFKA_OFFSETS") == [(0,)]
    copies = [
        e["sql"].lower()
        for e in snowflake_server.statements(snowflake_env)
        if e["sql"].lower().startswith("copy into")
    ]
    assert copies and all("use_logical_type = true" in c for c in copies)
