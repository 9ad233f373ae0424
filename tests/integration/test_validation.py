"""Great Expectations validation of a session: a clean session passes, and each corruption
injected into the warehouse fails exactly the expectation that names it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stockpipe import market_calendar as mc
from stockpipe.drain.loader import load_batch
from stockpipe.settings import load_settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.validation import latest_outcome, validate_session
from stockpipe.warehouse import Warehouse
from tests.support import build_marts, raw_rows_from_bars

SESSION = mc.session("2025-11-26")
WATCHLIST = ["AAPL", "MSFT", "NVDA"]
AFTER_CLOSE = SESSION.close + timedelta(hours=2)


@pytest.fixture(autouse=True)
def watchlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", ",".join(WATCHLIST))


def load_session(warehouse: Warehouse, end: datetime | None = None) -> None:
    bars = SimulatedMarket().fetch(WATCHLIST, SESSION.open, end or SESSION.close)
    rows = raw_rows_from_bars(bars, datetime(2025, 11, 26, 21, 5, tzinfo=UTC))
    load_batch(warehouse, rows, {("prices", 0): len(rows)}, None)


def failures(warehouse: Warehouse, now: datetime = AFTER_CLOSE) -> list[str]:
    build_marts(warehouse)
    report = validate_session(load_settings(), warehouse, SESSION.day, now=now)
    return [o.expectation.split("(")[0] + "(" + o.expectation.split("(")[1] for o in report.failed]


def test_a_clean_session_passes_and_freshness_is_skipped_after_the_close(
    warehouse: Warehouse,
) -> None:
    load_session(warehouse)
    build_marts(warehouse)
    report = validate_session(load_settings(), warehouse, SESSION.day, now=AFTER_CLOSE)
    assert report.success, report.summary()
    skipped = [o for o in report.outcomes if o.success is None]
    assert [o.expectation for o in skipped] == ["expect_column_max_to_be_between(TS_EPOCH)"]
    assert len([o for o in report.outcomes if o.success]) >= 12


CORRUPTIONS = {
    "duplicated bars": (
        "insert into RAW.STOCK_PRICES select * replace (kafka_offset + 100000 as kafka_offset)"
        " from RAW.STOCK_PRICES where symbol = 'AAPL' and ts < %s",
        "expect_compound_columns_to_be_unique(['SYMBOL', 'TS', 'BAR_INTERVAL'])",
    ),
    "negative prices": (
        "update RAW.STOCK_PRICES set open = -1, high = -1, low = -1, close = -1 "
        "where symbol = 'MSFT' and ts = %s",
        "expect_column_values_to_be_between(MIN_PRICE)",
    ),
    "high below low": (
        "update RAW.STOCK_PRICES set high = low - 1 where symbol = 'NVDA' and ts = %s",
        "expect_column_pair_values_a_to_be_greater_than_b(HIGH vs LOW)",
    ),
    "symbol outside the watchlist": (
        "update RAW.STOCK_PRICES set symbol = 'ZZZZ' where symbol = 'NVDA' and ts = %s",
        "expect_column_values_to_be_in_set(SYMBOL)",
    ),
    "missing bars": (
        "delete from RAW.STOCK_PRICES where symbol = 'AAPL' and ts > %s",
        "expect_column_values_to_be_between(BAR_COUNT)",
    ),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_each_corruption_fails_exactly_its_expectation(
    warehouse: Warehouse, corruption: str
) -> None:
    load_session(warehouse)
    sql, expected = CORRUPTIONS[corruption]
    at = SESSION.minutes[300] if corruption == "missing bars" else SESSION.minutes[3]
    warehouse.execute(sql, (at.to_pydatetime().replace(tzinfo=None),))
    assert failures(warehouse) == [expected]


def test_null_keys_fail_the_not_null_expectation(warehouse: Warehouse) -> None:
    load_session(warehouse)
    # The table forbids NULL keys; a damaged copy of it is what this check guards against.
    warehouse.execute("alter table RAW.STOCK_PRICES alter column symbol drop not null")
    warehouse.execute(
        "update RAW.STOCK_PRICES set symbol = null where symbol = 'AAPL' and ts = %s",
        (SESSION.minutes[3].to_pydatetime().replace(tzinfo=None),),
    )
    assert failures(warehouse) == ["expect_column_values_to_not_be_null(SYMBOL)"]


def test_stale_data_in_market_hours_fails_freshness_and_skips_completeness(
    warehouse: Warehouse,
) -> None:
    load_session(warehouse, end=SESSION.minutes[60])  # bars stop at 10:30
    during = SESSION.minutes[180].to_pydatetime()  # it is 12:30 New York
    assert failures(warehouse, now=during) == ["expect_column_max_to_be_between(TS_EPOCH)"]
    report = validate_session(load_settings(), warehouse, SESSION.day, now=during)
    skipped = {o.expectation for o in report.outcomes if o.success is None}
    assert "expect_column_values_to_be_between(BAR_COUNT)" in skipped
    fresh = SESSION.minutes[65].to_pydatetime()  # five minutes after the last bar
    assert failures(warehouse, now=fresh) == []


def test_without_a_session_the_latest_closed_one_is_validated_even_during_the_next(
    warehouse: Warehouse,
) -> None:
    from stockpipe.cli.arguments import session_arg  # what ingest, backfill and demo take

    load_session(warehouse)
    build_marts(warehouse)
    following = mc.session("2025-11-28")  # the next session (Thanksgiving in between)
    during = following.open + timedelta(hours=1)
    report = validate_session(load_settings(), warehouse, None, now=during)
    assert report.session == SESSION.day == mc.latest_closed_session(during).day
    assert report.success, report.summary()
    assert session_arg(None).day == mc.latest_closed_session().day
    # The open session only when named, and the summary says it is still open.
    named = validate_session(load_settings(), warehouse, following.day, now=during)
    assert named.market_open
    assert f"session {following.day} (still open" in named.summary()


def test_data_docs_are_built_locally_and_on_s3(
    warehouse: Warehouse,
    tmp_path,
    s3,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_session(warehouse)
    build_marts(warehouse)
    s3.create_bucket(Bucket="stockpipe-docs")
    monkeypatch.setenv("STOCKPIPE_VALIDATION__DATA_DOCS_S3_BUCKET", "stockpipe-docs")
    report = validate_session(
        load_settings(), warehouse, SESSION.day, now=AFTER_CLOSE, docs_dir=tmp_path / "docs"
    )
    assert report.docs_dir.exists()
    assert report.docs_url == "s3://stockpipe-docs/data-docs/index.html"
    # The outcome is kept for the dashboard and the report.
    kept = latest_outcome(load_settings().validation_record)
    assert kept["session"] == str(SESSION.day) and kept["success"] == report.success
    assert kept["docs"] == report.docs_url
    pages = [p.name for p in (tmp_path / "docs" / "validations").rglob("*.html")]
    assert len(pages) == 3  # one validation page per suite
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="stockpipe-docs")["Contents"]]
    assert "data-docs/index.html" in keys
    assert sum(k.startswith("data-docs/validations/") for k in keys) == 3
