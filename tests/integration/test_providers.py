"""Finnhub and Alpha Vantage as sources, against local servers in their formats.

The bars go the normal way (ingest -> the real broker -> drain -> the embedded warehouse)
and must equal an independent fetch of the same simulated bars the fakes serve from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date

import pandas as pd
import pytest

from stockpipe import market_calendar as mc
from stockpipe.backfill import backfill
from stockpipe.drain import run_drain
from stockpipe.ingest import ingest_window
from stockpipe.settings import Settings, load_settings
from stockpipe.sources import make_source
from stockpipe.sources.providers import ProviderRefused
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.warehouse import Warehouse
from tests.fake_providers import (
    AV_DAY_INFORMATION,
    AV_MINUTE_NOTE,
    FINNHUB_NO_ACCESS,
    FINNHUB_RATE_LIMIT,
    FakeProviders,
)
from tests.support import set_up_warehouse

pytestmark = pytest.mark.integration
SESSION = mc.session("2025-11-26")
SYMBOLS = ["AAPL", "MSFT"]


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    server = FakeProviders().start()
    yield server
    server.stop()


@pytest.fixture
def provider_env(env_settings: Settings, fake: FakeProviders, monkeypatch) -> FakeProviders:
    """Both providers' settings point at the fakes; retries wait no time."""
    monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_API_KEY", fake.key)
    monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_URL", fake.url + "/api/v1")
    monkeypatch.setenv("STOCKPIPE_SOURCE__ALPHAVANTAGE_API_KEY", fake.key)
    monkeypatch.setenv("STOCKPIPE_SOURCE__ALPHAVANTAGE_URL", fake.url + "/query")
    monkeypatch.setenv("STOCKPIPE_SOURCE__BACKOFF_BASE_SECONDS", "0")
    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", ",".join(SYMBOLS))
    return fake


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


def test_finnhub_rate_limits_are_retried_and_unknown_symbols_reported(
    provider_env: FakeProviders, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", "finnhub")
    settings = load_settings()
    source = make_source(settings.source)
    provider_env.script(FINNHUB_RATE_LIMIT, FINNHUB_RATE_LIMIT)
    with caplog.at_level(logging.WARNING):
        bars = source.fetch(["AAPL", "ZZZZ"], SESSION.open, SESSION.close)
    assert len(bars) == 390 and set(bars["symbol"]) == {"AAPL"}
    assert source.missing == ["ZZZZ"]
    assert len(provider_env.requests) == 4  # two refused, then AAPL, then ZZZZ
    assert "retry 2/5" in caplog.text
    assert provider_env.key not in caplog.text


def test_a_refusal_names_the_setting_and_never_the_key(
    provider_env: FakeProviders, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", "finnhub")
    source = make_source(load_settings().source)
    provider_env.script(FINNHUB_NO_ACCESS)
    with pytest.raises(ProviderRefused) as refused:
        source.fetch(["AAPL"], SESSION.open, SESSION.close)
    assert "HTTP 403" in str(refused.value) or "status_code: 403" in str(refused.value)
    assert "a 403 a plan without candle access" in str(refused.value)
    assert provider_env.key not in str(refused.value) + caplog.text


def test_network_errors_are_one_readable_line_without_the_key(
    provider_env: FakeProviders, monkeypatch, caplog
) -> None:
    """The key travels in the query string, which a connection error quotes: the line says
    what failed; the raw text, key scrubbed, is in the debug log."""
    import logging

    from stockpipe.local_stack.processes import free_port
    from stockpipe.sources.providers import ProviderUnavailable

    caplog.set_level(logging.DEBUG, logger="stockpipe.sources.providers")
    monkeypatch.setenv("STOCKPIPE_SOURCE__MAX_RETRIES", "0")
    for kind, name, variable, path in (
        ("finnhub", "Finnhub", "FINNHUB_URL", "/api/v1"),
        ("alphavantage", "Alpha Vantage", "ALPHAVANTAGE_URL", "/query"),
    ):
        monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", kind)
        monkeypatch.setenv(f"STOCKPIPE_SOURCE__{variable}", f"http://127.0.0.1:{free_port()}{path}")
        with pytest.raises(ProviderUnavailable) as failed:
            make_source(load_settings().source).fetch(["AAPL"], SESSION.open, SESSION.close)
        message = str(failed.value)
        assert message.startswith(f"cannot reach {name}: the connection was refused"), message
        assert "\n" not in message and len(message) < 100
        assert provider_env.key not in message + caplog.text
        assert "***" in caplog.text  # the raw error, key scrubbed, for whoever debugs it


def test_alpha_vantage_spends_the_days_budget_and_says_what_it_left(
    provider_env: FakeProviders, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", "alphavantage")
    monkeypatch.setenv("STOCKPIPE_SOURCE__ALPHAVANTAGE_CALLS_PER_DAY", "3")
    settings = load_settings()
    state = tmp_path / "sources"
    source = make_source(settings.source, state)
    symbols = ["AAPL", "MSFT", "NVDA", "JPM"]
    bars = source.fetch(symbols, SESSION.open, SESSION.close)
    assert sorted(set(bars["symbol"])) == ["AAPL", "MSFT", "NVDA"]
    assert source.unfetched == ["JPM"]
    assert len(provider_env.requests) == 3
    # The day's calls are the installation's: another process asks for nothing more today.
    again = make_source(settings.source, state)
    assert again.fetch(["JPM"], SESSION.open, SESSION.close).empty
    assert again.unfetched == ["JPM"] and len(provider_env.requests) == 3


def test_alpha_vantage_waits_out_a_minute_note_and_stops_at_a_day_note(
    provider_env: FakeProviders, monkeypatch
) -> None:
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", "alphavantage")
    source = make_source(load_settings().source)
    provider_env.script(AV_MINUTE_NOTE)
    assert len(source.fetch(["AAPL"], SESSION.open, SESSION.close)) == 390
    provider_env.script(AV_DAY_INFORMATION)
    assert source.fetch(["MSFT", "NVDA"], SESSION.open, SESSION.close).empty
    assert source.unfetched == ["MSFT", "NVDA"]
    assert source.budget.remaining_today() == 0


def test_a_missing_key_fails_at_start_naming_the_variable(monkeypatch) -> None:
    from stockpipe.settings import ConfigError

    for kind in ("finnhub", "alphavantage"):
        monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", kind)
        with pytest.raises(ConfigError, match=rf"STOCKPIPE_SOURCE__{kind.upper()}_API_KEY"):
            load_settings()


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
