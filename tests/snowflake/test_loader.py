"""The loader on the Snowflake backend, over HTTP with the real connector: bulk staging,
the strictly-newer merge, compare-and-set offsets, retries on a new session."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from snowflake.connector.errors import ProgrammingError

from stockpipe import market_calendar as mc
from stockpipe.drain.loader import load_batch
from stockpipe.drain.offsets import read_offsets
from stockpipe.settings import Settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.snowflake import IncompleteLoad
from tests.support import SnowflakeServer, check_query_frames, raw_rows_from_bars

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


def test_query_frames_keep_their_columns_and_types_with_rows_or_none(
    snowflake_settings: Settings,
) -> None:
    # From the result's Arrow batches through the real connector (fetch_pandas_all).
    with Warehouse.connect(snowflake_settings, "load") as warehouse:
        rows = raw_rows_from_bars(bars(["AAPL"]), FETCHED)
        load_batch(warehouse, rows, {("prices", 0): 390}, None)
        check_query_frames(warehouse, "AAPL", 390)


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


def test_a_reload_of_the_raw_zone_into_snowflake_rebuilds_without_duplicates(
    snowflake_settings: Settings, snowflake_server: SnowflakeServer, snowflake_env: str
) -> None:
    from stockpipe.drain.raw_zone import RawZone, reload
    from stockpipe.object_store import LocalStore
    from stockpipe.warehouse.raw_schema import RAW_ARROW_SCHEMA

    zone = RawZone(LocalStore(snowflake_settings.lake_dir))
    frame = raw_rows_from_bars(bars(), FETCHED, loaded_at=FETCHED)
    rows = pa.Table.from_pandas(frame, preserve_index=False)
    zone.write_batch(rows.cast(RAW_ARROW_SCHEMA))
    with Warehouse.connect(snowflake_settings, "load") as warehouse:
        first = reload(zone, warehouse, "prices")
        assert (first.files, first.inserted, first.replaced) == (1, 780, 0)
        warehouse.execute("delete from RAW.STOCK_PRICES where symbol = %s", ("MSFT",))
        rebuilt = reload(zone, warehouse, "prices")  # after a DELETE: loads again
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


@pytest.mark.parametrize(
    ("upload", "why"),
    [("drop", "loaded no file"), ("truncate", "loaded 390 of 780 rows")],
)
def test_a_copy_that_loads_fewer_rows_than_staged_commits_nothing(
    snowflake_settings: Settings, snowflake_server: SnowflakeServer, upload: str, why: str
) -> None:
    frame = raw_rows_from_bars(bars(), FETCHED)
    snowflake_server.lose_next_uploads(upload)
    with Warehouse.connect(snowflake_settings, "load") as warehouse:
        with pytest.raises(IncompleteLoad, match=why):
            load_batch(warehouse, frame, {("prices", 0): 780}, None, {("prices", 0): 0})
        assert warehouse.is_transient(IncompleteLoad(why))  # the drain retries it
        # Nothing committed, nothing left in the batch table or on the stage.
        assert warehouse.query("select count(*) from RAW.STOCK_PRICES") == [(0,)]
        assert read_offsets(warehouse, "prices") == {}
        assert warehouse.query("select count(*) from RAW.STOCK_PRICES_BATCH") == [(0,)]
        assert warehouse.query("list @RAW.STOCK_PRICES_STAGE") == []
        # The same batch again, uploaded whole: every row, and the offsets with them.
        result = load_batch(warehouse, frame, {("prices", 0): 780}, None, {("prices", 0): 0})
        assert result.inserted == 780
        assert read_offsets(warehouse, "prices")[("prices", 0)].next_offset == 780
        assert warehouse.query("list @RAW.STOCK_PRICES_STAGE") == []  # purged once loaded


def test_a_failed_copy_leaves_nothing_on_the_stage(
    snowflake_settings: Settings, snowflake_server: SnowflakeServer
) -> None:
    frame = raw_rows_from_bars(bars(), FETCHED)
    snowflake_server.fail_next(
        r"^\s*copy into raw\.stock_prices_batch",
        times=1,
        code="000630",
        sqlstate="57014",
        message="Statement reached its statement or warehouse timeout of 1,800 second(s) and "
        "was canceled.",
    )
    with Warehouse.connect(snowflake_settings, "load") as warehouse:
        with pytest.raises(ProgrammingError, match="timeout") as failed:
            load_batch(warehouse, frame, {("prices", 0): 780}, None, {("prices", 0): 0})
        assert warehouse.is_transient(failed.value)
        # PURGE removes loaded files only: the PUT file of the failed COPY was removed.
        assert warehouse.query("list @RAW.STOCK_PRICES_STAGE") == []
        assert read_offsets(warehouse, "prices") == {}


def test_one_compare_and_set_claims_every_partition_of_a_batch(
    snowflake_settings: Settings, snowflake_server: SnowflakeServer, snowflake_env: str
) -> None:
    frame = raw_rows_from_bars(bars(("AAPL", "MSFT", "NVDA")), FETCHED)
    frame["KAFKA_PARTITION"] = [i % 3 for i in range(len(frame))]
    first = {("prices", p): 400 for p in range(3)}
    then = {("prices", p): 800 for p in range(3)}
    with Warehouse.connect(snowflake_settings, "load") as warehouse:
        load_batch(warehouse, frame, first, None, {tp: 0 for tp in first})
        # Partition 2 was taken over by another drain that committed past this batch's start.
        warehouse.execute(
            "update RAW.KAFKA_OFFSETS set next_offset = 900 where kafka_partition = 2"
        )
        late = load_batch(warehouse, frame, then, None, {tp: 400 for tp in then})
        assert late.fenced == {("prices", 2): 900}
        assert set(late.committed_offsets) == {("prices", 0), ("prices", 1)}
        assert {p: o.next_offset for (_, p), o in read_offsets(warehouse, "prices").items()} == {
            0: 800,
            1: 800,
            2: 900,
        }
    loads = [
        e for e in snowflake_server.statements(snowflake_env) if e["role"] == "STOCKPIPE_LOADER"
    ]
    for statements in transactions(loads):
        updates = [s for s in statements if s.startswith("update raw.kafka_offsets")]
        assert len(updates) == 1  # one statement under the lock, not one per partition
