"""The embedded warehouse: SQL applies idempotently; batches and offsets commit atomically."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from stockpipe import market_calendar as mc
from stockpipe.drain.loader import load_batch
from stockpipe.drain.offsets import read_offsets
from stockpipe.settings import load_settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.support import check_query_frames, raw_rows_from_bars, set_up_warehouse

SESSION = mc.session("2025-11-26")


def test_setup_records_what_it_applied_and_plans_changes(warehouse: Warehouse, tmp_path) -> None:
    import shutil

    from stockpipe.warehouse.setup import DEFAULT_SQL_DIR, plan, read_sql_dir, setup_variables

    settings = load_settings()
    variables = setup_variables(settings)
    steps = {s.name: s.action for s in plan(warehouse, read_sql_dir(variables))}
    assert steps["010_raw_stock_prices.sql"] == "unchanged"
    assert steps["900_grants.sql"].startswith("skipped (Snowflake only")
    assert setup_warehouse(warehouse, settings) == []  # nothing new: nothing runs
    assert warehouse.query("select count(*) from RAW.STOCK_PRICES") == [(0,)]

    # A changed file is planned as changed and applied again; the rest stay as they are.
    sql_dir = tmp_path / "sql"
    shutil.copytree(DEFAULT_SQL_DIR, sql_dir)
    view = sql_dir / "300_marts_alerts_sent.sql"
    view.write_text(view.read_text().replace("varchar(1000)", "varchar(2000)"))
    changed = [s.name for s in plan(warehouse, read_sql_dir(variables, sql_dir)) if s.runs]
    assert changed == ["300_marts_alerts_sent.sql"]
    assert setup_warehouse(warehouse, settings, sql_dir) == changed
    assert not [s for s in plan(warehouse, read_sql_dir(variables, sql_dir)) if s.runs]
    snowflake_only = 4  # the three account files (database, roles, monitor) and the grants
    ran = setup_warehouse(warehouse, settings, sql_dir, force=True)
    assert len(ran) == len(list(sql_dir.glob("*.sql"))) - snowflake_only


def test_runtime_sessions_refuse_a_warehouse_not_set_up_for_this_code(tmp_path) -> None:
    from stockpipe.warehouse import WarehouseNotSetUp
    from stockpipe.warehouse.setup import DEFAULT_SQL_DIR, require_setup

    settings = load_settings()
    with (
        pytest.raises(WarehouseNotSetUp, match="stockpipe warehouse setup"),
        Warehouse.connect(settings, "load"),
    ):
        pass
    set_up_warehouse(settings)
    with Warehouse.connect(settings, "load") as warehouse:  # set up: it starts
        assert warehouse.query("select count(*) from RAW.STOCK_PRICES") == [(0,)]

        # Code that ships a changed object (an upgrade not yet set up) refuses to start.
        import shutil

        sql_dir = tmp_path / "sql"
        shutil.copytree(DEFAULT_SQL_DIR, sql_dir)
        view = sql_dir / "300_marts_alerts_sent.sql"
        view.write_text(view.read_text().replace("varchar(1000)", "varchar(2000)"))
        with pytest.raises(WarehouseNotSetUp, match=r"300_marts_alerts_sent.sql \(changed\)"):
            require_setup(warehouse, sql_dir)


def test_batch_and_offsets_commit_together_and_reloads_do_not_duplicate(
    warehouse: Warehouse,
) -> None:
    bars = SimulatedMarket().fetch(["AAPL", "MSFT"], SESSION.open, SESSION.close)
    first = datetime(2025, 11, 26, 21, 5, tzinfo=UTC)
    result = load_batch(
        warehouse, raw_rows_from_bars(bars, first), {("prices", 0): len(bars)}, "cluster-a"
    )
    assert (result.inserted, result.replaced) == (780, 0)
    assert read_offsets(warehouse, "prices")[("prices", 0)].next_offset == 780

    # The same bars again, fetched later with a corrected close: replaced, not duplicated.
    later = raw_rows_from_bars(bars, first + timedelta(minutes=1), first_offset=780)
    later["CLOSE"] = later["HIGH"]
    result = load_batch(warehouse, later, {("prices", 0): 1560}, "cluster-a")
    assert (result.inserted, result.replaced) == (0, 780)
    # And an older fetch arriving late changes nothing.
    stale = raw_rows_from_bars(bars, first - timedelta(minutes=5), first_offset=1560)
    result = load_batch(warehouse, stale, {("prices", 0): 2340}, "cluster-a")
    assert (result.inserted, result.replaced) == (0, 0)

    rows = warehouse.query_frame("select symbol, ts, close, high from RAW.STOCK_PRICES")
    assert len(rows) == 780
    assert (rows["close"] == rows["high"]).all()
    assert read_offsets(warehouse, "prices")[("prices", 0)].next_offset == 2340


def test_query_frames_keep_their_columns_and_types_with_rows_or_none(
    warehouse: Warehouse,
) -> None:
    bars = SimulatedMarket().fetch(["AAPL"], SESSION.open, SESSION.close)
    fetched = datetime(2025, 11, 26, 21, 5, tzinfo=UTC)
    load_batch(warehouse, raw_rows_from_bars(bars, fetched), {("prices", 0): 390}, None)
    check_query_frames(warehouse, "AAPL", 390)


def test_duplicate_keys_inside_one_batch_keep_the_latest_fetch(warehouse: Warehouse) -> None:
    bars = SimulatedMarket().fetch(["AAPL"], SESSION.open, SESSION.minutes[10])
    early = raw_rows_from_bars(bars, datetime(2025, 11, 26, 15, tzinfo=UTC))
    late = raw_rows_from_bars(bars, datetime(2025, 11, 26, 16, tzinfo=UTC), first_offset=10)
    late["VOLUME"] = 7
    batch = pd.concat([late, early], ignore_index=True)
    result = load_batch(warehouse, batch, {("prices", 0): 20}, None)
    assert result.inserted == 10
    volumes = warehouse.query("select distinct volume from RAW.STOCK_PRICES")
    assert volumes == [(7,)]


def test_a_failed_commit_leaves_neither_rows_nor_offsets(warehouse: Warehouse) -> None:
    bars = SimulatedMarket().fetch(["AAPL"], SESSION.open, SESSION.minutes[10])
    rows = raw_rows_from_bars(bars, datetime(2025, 11, 26, 15, tzinfo=UTC))
    # The offsets are claimed (written) first; then the merge of the rows fails on its last
    # row, which RAW's NOT NULL refuses: the transaction's last write fails.
    broken = rows.copy()
    broken.loc[broken.index[-1], "SOURCE"] = None
    with pytest.raises(duckdb.ConstraintException, match=r'NOT NULL constraint failed.*"SOURCE"'):
        load_batch(warehouse, broken, {("prices", 0): 10}, None)
    assert warehouse.query("select count(*) from RAW.STOCK_PRICES") == [(0,)]
    assert warehouse.query("select count(*) from RAW.KAFKA_OFFSETS") == [(0,)]
    # After the failure the same batch, whole, loads normally.
    assert load_batch(warehouse, rows, {("prices", 0): 10}, None).inserted == 10
    assert read_offsets(warehouse, "prices")[("prices", 0)].next_offset == 10


def test_second_writer_process_gets_a_clear_busy_error(warehouse: Warehouse, tmp_path) -> None:
    import subprocess
    import sys

    code = (
        "from stockpipe.settings import load_settings\n"
        "from stockpipe.warehouse import Warehouse, WarehouseBusy\n"
        "try:\n"
        "    with Warehouse.connect(load_settings()):\n"
        "        print('opened')\n"
        "except WarehouseBusy as exc:\n"
        "    print('busy:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("busy:"), out.stdout + out.stderr
    assert "STOCKS.db" in out.stdout


def test_a_batch_spanning_years_commits_within_the_drains_memory_limit(
    warehouse: Warehouse,
) -> None:
    # Three million bars (500 symbols, ~11 years of minutes), then a batch of the next
    # 20,000 bars plus a re-fetch of the very first one: its time range is the whole table.
    bars = """
        select 'SYM' || (i % 500) as symbol,
               timestamp '2015-01-02 14:30' + to_minutes(i // 500 * 2) as ts,
               '1m' as bar_interval, 10.0 as open, 11.0 as high, 9.0 as low, 10.0 as close,
               100 as volume, 'simulated' as source, {fetched} as fetched_at,
               1 as schema_version, 'prices' as kafka_topic, 0 as kafka_partition,
               {offset} as kafka_offset, null::timestamp as kafka_timestamp,
               timestamp '2026-01-01' as loaded_at
        from range({start}, {stop}) t(i)
    """
    total = 3_000_000
    table = bars.format(fetched="timestamp '2026-01-01'", offset="i", start=0, stop=total)
    warehouse.duck.execute(f"insert into RAW.STOCK_PRICES by name {table}")
    batch = warehouse.duck.execute(
        bars.format(fetched="timestamp '2026-02-01'", offset="i", start=total, stop=total + 20_000)
        + " union all "
        + bars.format(fetched="timestamp '2026-02-01'", offset=total + 20_000, start=0, stop=1)
    ).to_arrow_table()
    batch = batch.rename_columns([c.upper() for c in batch.column_names])
    with warehouse.memory_limit(load_settings().drain.embedded_memory_limit):
        result = load_batch(warehouse, batch, {("prices", 0): total + 20_001}, None)
    assert (result.inserted, result.replaced) == (20_000, 1)
    count = warehouse.query("select count(*) from RAW.STOCK_PRICES")[0][0]
    assert count == total + 20_000


def test_a_session_that_reads_all_day_does_not_keep_what_it_read(warehouse: Warehouse) -> None:
    """The live tier reads its views after every commit for a whole session; fakesnow keeps
    every result by query id unless told otherwise (it grew ~0.9 MB a read of 20,000 rows)."""
    import os

    from stockpipe.warehouse.base import Portable
    from tests.support import memory_mb

    def resident_mb() -> float:
        return memory_mb(os.getpid())[0]

    warehouse.execute(Portable("create schema if not exists SCRATCH"))
    warehouse.execute(
        Portable(
            "create or replace table SCRATCH.READS as select range as i, now() as ts, "
            "random() as x, 'S' || (range % 50) as symbol from range(20000)"
        )
    )
    for _ in range(10):  # the allocator's first growth
        warehouse.query_frame("select * from SCRATCH.READS")
    before = resident_mb()
    for _ in range(100):
        assert len(warehouse.query_frame("select * from SCRATCH.READS")) == 20_000
    assert resident_mb() - before < 40, "each read's result is kept"
