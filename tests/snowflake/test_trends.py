"""The trend build (dbt-snowflake) on the Snowflake backend, over HTTP with the real
connector: a failed incremental model leaves its mart as it was, a rebuilt mart keeps
READER's grant, and a build with nothing new asks only what Snowflake answers without a
running warehouse."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from stockpipe import market_calendar as mc
from stockpipe.drain.loader import load_batch
from stockpipe.settings import Settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.trends import TrendBuildFailed
from stockpipe.trends.build import MARTS
from stockpipe.warehouse import Warehouse
from tests.support import SnowflakeServer, build_marts, raw_rows_from_bars

pytestmark = pytest.mark.integration

SESSION = mc.session("2025-11-26")
FETCHED = datetime(2025, 11, 26, 21, 5, tzinfo=UTC)
MINUTE_BARS = "select symbol, ts, close from MARTS.MINUTE_BARS order by symbol, ts"


def load(settings: Settings, fetched_at: datetime, first_offset: int, close_shift: float = 0):
    """The session's bars of AAPL and MSFT, fetched at ``fetched_at``, loaded as the drain
    would (a later fetch replaces the stored bars and is logged for the trend build)."""
    bars = SimulatedMarket().fetch(["AAPL", "MSFT"], SESSION.open, SESSION.close)
    rows = raw_rows_from_bars(bars, fetched_at, first_offset=first_offset)
    rows["CLOSE"] = rows["CLOSE"] + close_shift
    rows["HIGH"] = rows[["HIGH", "CLOSE"]].max(axis=1)
    with Warehouse.connect(settings, "load") as warehouse:
        load_batch(warehouse, rows, {("prices", 0): first_offset + len(rows)}, None)


def minute_bars(settings: Settings) -> list[tuple]:
    with Warehouse.connect(settings, "read") as warehouse:
        return warehouse.query(MINUTE_BARS)


def test_a_failed_incremental_model_leaves_its_mart_as_it_was(
    snowflake_settings: Settings, snowflake_server: SnowflakeServer, monkeypatch
) -> None:
    # One model at a time: the models after the failed one run where its session was, if
    # sessions were reused (they are not), whatever order dbt's threads would take.
    monkeypatch.setenv("STOCKPIPE_TRENDS__SNOWFLAKE_THREADS", "1")
    load(snowflake_settings, FETCHED, first_offset=0)
    with Warehouse.connect(snowflake_settings, "transform") as warehouse:
        assert build_marts(warehouse).ok
    built = minute_bars(snowflake_settings)
    assert len(built) == 780

    # A later fetch of the session: the next build deletes the symbols' rows of the
    # session, then inserts them again. The INSERT fails; dbt-snowflake does not roll back,
    # and Snowflake commits an open transaction before the next DDL on its session.
    load(snowflake_settings, FETCHED + timedelta(minutes=5), first_offset=780, close_shift=0.5)
    snowflake_server.fail_next(
        r"^\s*insert into \S*minute_bars\b",
        times=1,
        code="100038",
        sqlstate="22018",
        message="Numeric value 'n/a' is not recognized",
    )
    with (
        Warehouse.connect(snowflake_settings, "transform") as warehouse,
        pytest.raises(TrendBuildFailed, match="minute_bars"),
    ):
        build_marts(warehouse)
    assert minute_bars(snowflake_settings) == built  # every row, as it was

    with Warehouse.connect(snowflake_settings, "transform") as warehouse:
        assert build_marts(warehouse).ok  # the load log still names the session
    rebuilt = minute_bars(snowflake_settings)
    assert len(rebuilt) == 780
    assert [close for *_, close in rebuilt] == pytest.approx([close + 0.5 for *_, close in built])


def test_a_build_with_nothing_new_needs_no_running_warehouse(
    snowflake_settings: Settings, snowflake_server: SnowflakeServer, snowflake_env: str
) -> None:
    load(snowflake_settings, FETCHED, first_offset=0)
    with Warehouse.connect(snowflake_settings, "transform") as warehouse:
        assert build_marts(warehouse).ok
        before = len(snowflake_server.statements(snowflake_env))
        report = build_marts(warehouse)
    assert report.up_to_date
    asked = [e["sql"] for e in snowflake_server.statements(snowflake_env)[before:]]
    # A whole table's count(*) comes from metadata, SHOW needs no warehouse either;
    # INFORMATION_SCHEMA would resume it (a 60 s minimum bill).
    assert asked == ["select count(*) from RAW.LOAD_LOG", "show terse tables in schema MARTS"]


def test_a_rebuilt_mart_keeps_the_readers_grant(
    snowflake_settings: Settings, snowflake_server: SnowflakeServer, snowflake_env: str
) -> None:
    load(snowflake_settings, FETCHED, first_offset=0)
    with Warehouse.connect(snowflake_settings, "transform") as warehouse:
        assert build_marts(warehouse, full=True).ok
        before = len(snowflake_server.statements(snowflake_env))
        assert build_marts(warehouse, full=True).ok  # every model replaced
    entries = snowflake_server.statements(snowflake_env)[before:]
    rebuild = [" ".join(e["sql"].lower().split()) for e in entries]
    # The models' relations (a unit test's empty copy of its model, <model>__dbt_tmp, is
    # dropped at its end and holds no grant).
    replaced = [
        s
        for s in rebuild
        if re.match(r"create or replace (transient )?(table|view)", s) and "__dbt_tmp" not in s
    ]
    assert len(replaced) >= len(MARTS)
    assert all(" copy grants " in s for s in replaced), replaced
    # The grants outlived the replacement: dbt found READER's and had nothing to grant.
    assert not [s for s in rebuild if s.startswith("grant ")]
    with Warehouse.connect(snowflake_settings, "setup") as warehouse:
        for mart in MARTS:
            shown = warehouse.execute(f"show grants on table MARTS.{mart}")
            privilege, grantee = (shown.columns.index(c) for c in ("privilege", "grantee_name"))
            held = {(row[privilege], row[grantee]) for row in shown.rows}
            assert ("SELECT", "STOCKPIPE_READER") in held, mart
    # dbt's sessions carry the purpose's query tag, as every other process's do.
    assert {e["query_tag"] for e in entries} == {"stockpipe:transform"}
