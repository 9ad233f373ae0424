"""Finnhub and Alpha Vantage as sources against local servers in their formats: retries,
refusals, network errors, the day's budget, the keys kept out of every message. No broker
and no warehouse: what a source does with its provider's answers. (Moved from
tests/integration/test_providers.py, whose fixture started the broker for nothing.)"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from stockpipe import market_calendar as mc
from stockpipe.settings import load_settings
from stockpipe.sources import make_source
from stockpipe.sources.providers import ProviderRefused
from tests.fake_providers import (
    AV_DAY_INFORMATION,
    AV_MINUTE_NOTE,
    FINNHUB_NO_ACCESS,
    FINNHUB_RATE_LIMIT,
    FakeProviders,
    served_providers,
)

SESSION = mc.session("2025-11-26")


@pytest.fixture
def provider_env(monkeypatch) -> Iterator[FakeProviders]:
    """Both providers' settings point at the fakes; retries wait no time."""
    with served_providers(monkeypatch, ["AAPL", "MSFT"]) as fake:
        yield fake


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
