"""Finnhub and Alpha Vantage as sources, against local servers in their formats.

The bars go the normal way (ingest -> the real broker -> drain -> the embedded warehouse)
and must equal an independent fetch of the same simulated bars the fakes serve from.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pandas as pd
import pytest

from stockpipe import market_calendar as mc
from stockpipe.backfill import backfill
from stockpipe.drain import run_drain
from stockpipe.ingest import ingest_window
from stockpipe.settings import Settings, load_settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.warehouse import Warehouse
from tests.fake_providers import FakeProviders, served_providers
from tests.support import set_up_warehouse

pytestmark = pytest.mark.integration
SESSION = mc.session("2025-11-26")
SYMBOLS = ["AAPL", "MSFT"]


@pytest.fixture
def provider_env(env_settings: Settings, monkeypatch) -> Iterator[FakeProviders]:
    """Both providers' settings point at the fakes; retries wait no time."""
    with served_providers(monkeypatch, SYMBOLS) as fake:
        yield fake


def warehouse_bars(settings: Settings) -> pd.DataFrame:
    with Warehouse.connect(settings) as warehouse:
        frame = warehouse.query_frame(
            "select symbol, ts, bar_interval, open, high, low, close, volume, source "
            "from RAW.STOCK_PRICES order by symbol, ts"
        )
    frame.columns = [c.lower() for c in frame.columns]
    return frame


def expected_bars(interval: str, start, end, symbols=SYMBOLS) -> pd.DataFrame:
    bars = SimulatedMarket(seed=42).fetch(symbols, start, end, interval)
    return bars.sort_values(["symbol", "ts"], ignore_index=True)


def assert_same_bars(landed: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(landed) == len(expected)
    assert list(landed["symbol"]) == list(expected["symbol"])
    assert list(pd.to_datetime(landed["ts"]).dt.tz_localize("UTC")) == list(expected["ts"])
    for column in ("open", "high", "low", "close"):
        assert (landed[column].astype(float) - expected[column].round(4)).abs().max() < 1e-9
    assert list(landed["volume"].astype(int)) == list(expected["volume"].astype(int))


@pytest.mark.parametrize("kind", ["finnhub", "alphavantage"])
def test_a_session_of_minute_bars_lands_in_the_warehouse_as_the_provider_served_it(
    provider_env: FakeProviders, monkeypatch, kind: str
) -> None:
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", kind)
    settings = load_settings()
    set_up_warehouse(settings)
    report = ingest_window(settings, SESSION.open, SESSION.close)
    assert (report.source, report.published, report.rejected) == (kind, 780, {})
    assert run_drain(settings).inserted == 780
    landed = warehouse_bars(settings)
    assert set(landed["source"]) == {kind} and set(landed["bar_interval"]) == {"1m"}
    assert_same_bars(landed, expected_bars("1m", SESSION.open, SESSION.close))
    # Again: nothing new to publish, whatever the provider answers.
    assert ingest_window(settings, SESSION.open, SESSION.close).published == 0


@pytest.mark.parametrize("kind", ["finnhub", "alphavantage"])
def test_daily_history_backfills_through_the_provider(
    provider_env: FakeProviders, monkeypatch, kind: str
) -> None:
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", kind)
    settings = load_settings()
    set_up_warehouse(settings)
    first, last = date(2025, 9, 2), date(2025, 11, 26)
    report = backfill(settings, first, last, "1d")
    sessions = mc.sessions_between(first, last)
    assert report.published == len(sessions) * len(SYMBOLS) and not report.rejected
    assert run_drain(settings).inserted == report.published
    landed = warehouse_bars(settings)
    assert set(landed["bar_interval"]) == {"1d"}
    assert_same_bars(landed, expected_bars("1d", sessions[0].open, sessions[-1].close))
    if kind == "alphavantage":  # the full daily series once per symbol, for every window
        daily_calls = [r for r in provider_env.requests if r.get("function") == "TIME_SERIES_DAILY"]
        assert len(daily_calls) == len(SYMBOLS)


def test_the_ingest_summary_names_symbols_without_bars_and_those_left_for_tomorrow(
    provider_env: FakeProviders, monkeypatch
) -> None:
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", "alphavantage")
    monkeypatch.setenv("STOCKPIPE_SOURCE__ALPHAVANTAGE_CALLS_PER_DAY", "2")
    report = ingest_window(
        load_settings(), SESSION.open, SESSION.close, symbols=["AAPL", "ZZZZ", "MSFT"]
    )
    assert report.published == 390
    assert "; no bars for ZZZZ" in report.summary()
    assert "the provider's calls for the day are spent: MSFT" in report.summary()
