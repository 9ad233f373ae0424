"""Finnhub's live mode end to end: a replayed session of trades over a local websocket ->
minute bars -> the real broker -> the drain -> the warehouse, equal to an independent
aggregation of the same trades; through a dropped connection too."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pandas as pd
import pytest

from stockpipe.drain import run_drain
from stockpipe.live.ingest import follow_trades
from stockpipe.settings import Settings, load_settings
from stockpipe.sources.minute_bars import MINUTE_MS, Trade
from stockpipe.warehouse import Warehouse
from tests.fake_providers import FakeFinnhubSocket
from tests.support import set_up_warehouse
from tests.unit.test_minute_bars import independent_bars

pytestmark = pytest.mark.integration
KEY = "live-key-0c41"
T0 = 1_764_167_400_000  # 2025-11-26 14:30:00 UTC
MINUTES = 4
SYMBOLS = ["AAPL", "MSFT", "NVDA"]


def replayed_trades(seed: int = 3) -> list[tuple[str, float, float, int]]:
    """Trades of three symbols over four minutes, in time order (a random walk each)."""
    rng = random.Random(seed)
    prices = {s: 100.0 + 50 * i for i, s in enumerate(SYMBOLS)}
    trades = []
    for ts in sorted(rng.randrange(T0, T0 + MINUTES * MINUTE_MS) for _ in range(600)):
        symbol = rng.choice(SYMBOLS)
        prices[symbol] = round(prices[symbol] * (1 + rng.gauss(0, 0.001)), 2)
        trades.append((symbol, prices[symbol], float(rng.randrange(1, 500)), ts))
    return trades


@pytest.fixture
def live_env(env_settings: Settings, monkeypatch) -> Settings:
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", "finnhub")
    monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_API_KEY", KEY)
    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", ",".join(SYMBOLS))
    settings = load_settings()
    set_up_warehouse(settings)
    return settings


def run_live(settings: Settings, socket: FakeFinnhubSocket, monkeypatch) -> pd.DataFrame:
    monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_WS_URL", socket.url)
    settings = load_settings()
    until = pd.Timestamp(T0 + MINUTES * MINUTE_MS, unit="ms", tz="UTC").to_pydatetime()
    report = follow_trades(settings, until, clock=socket.clock, sleep=lambda _: None)
    assert report.late_trades == 0 and report.rejected == 0
    assert run_drain(settings).inserted == report.bars_published
    with Warehouse.connect(settings) as warehouse:
        landed = warehouse.query_frame(
            "select symbol, ts, open, high, low, close, volume from RAW.STOCK_PRICES "
            "where bar_interval = '1m' and source = 'finnhub' order by ts, symbol"
        )
    landed.columns = [c.lower() for c in landed.columns]
    landed["ts"] = pd.to_datetime(landed["ts"]).dt.tz_localize("UTC")
    return landed


def replay(
    settings: Settings, trades: list, monkeypatch, **options: int
) -> tuple[pd.DataFrame, FakeFinnhubSocket]:
    """The trades over a local Finnhub websocket (``options``: the socket's), live ingest,
    a drain: the bars landed in the warehouse, and the socket."""
    socket = FakeFinnhubSocket(KEY, trades, end_ms=T0 + MINUTES * MINUTE_MS, **options).start()
    try:
        return run_live(settings, socket, monkeypatch), socket
    finally:
        socket.stop()


@pytest.fixture
def trades() -> Iterator[list[tuple[str, float, float, int]]]:
    yield replayed_trades()


def test_live_bars_equal_an_independent_aggregation_of_the_trades(
    live_env: Settings, trades, monkeypatch
) -> None:
    landed, socket = replay(live_env, trades, monkeypatch)
    expected = independent_bars([Trade(s, p, v, t) for s, p, v, t in trades])
    assert len(landed) == MINUTES * len(SYMBOLS) == len(expected)
    pd.testing.assert_frame_equal(landed, expected, check_dtype=False)
    # Subscribed to the watchlist (again after the replay's end closed the connection).
    assert sorted(set(socket.subscriptions)) == SYMBOLS


def test_fractional_volumes_make_exact_bars_not_rejected_ones(
    live_env: Settings, trades, monkeypatch
) -> None:
    """Finnhub reports fractional-share prints (and crypto volumes are all fractional): the
    minute's summed volume is fractional, and the bar still lands, exact (contract v2)."""
    trades = [(s, p, v + 0.37 if i % 3 == 0 else v, t) for i, (s, p, v, t) in enumerate(trades)]
    landed, _ = replay(live_env, trades, monkeypatch)
    expected = independent_bars([Trade(s, p, v, t) for s, p, v, t in trades])
    assert len(landed) == MINUTES * len(SYMBOLS)
    assert (landed["volume"] % 1 != 0).any()
    pd.testing.assert_frame_equal(landed, expected, check_dtype=False)


def test_a_dropped_websocket_is_reconnected_and_loses_or_repeats_nothing(
    live_env: Settings, trades, monkeypatch
) -> None:
    landed, socket = replay(live_env, trades, monkeypatch, drop_after=40)
    assert socket.connections == 3  # the first, after the drop, after the replay's end
    expected = independent_bars([Trade(s, p, v, t) for s, p, v, t in trades])
    pd.testing.assert_frame_equal(landed, expected, check_dtype=False)


def test_a_wrong_key_is_refused_naming_the_setting(live_env: Settings, trades, monkeypatch) -> None:
    socket = FakeFinnhubSocket("another-key", trades, end_ms=T0 + MINUTE_MS).start()
    try:
        monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_WS_URL", socket.url)
        until = pd.Timestamp(T0 + MINUTE_MS, unit="ms", tz="UTC").to_pydatetime()
        with pytest.raises(RuntimeError, match=r"HTTP 401.*STOCKPIPE_SOURCE__FINNHUB_API_KEY") as e:
            follow_trades(load_settings(), until, clock=socket.clock, sleep=lambda _: None)
        assert KEY not in str(e.value)
    finally:
        socket.stop()


def test_follow_needs_the_finnhub_source(env_settings: Settings, capsys) -> None:
    from stockpipe.cli import main

    assert main(["ingest", "--follow"]) == 2
    assert "--follow takes live trades from Finnhub" in capsys.readouterr().err.replace("\n", "")


def test_the_subscription_follows_the_watchlist(env_settings: Settings, monkeypatch) -> None:
    import json

    from stockpipe.live.ingest import _follow_watchlist

    class Socket:
        sent: list[dict] = []

        def send(self, text: str) -> None:
            self.sent.append(json.loads(text))

    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", "AAPL,MSFT")
    ws, subscribed = Socket(), set()
    _follow_watchlist(ws, subscribed, env_settings, load_settings)
    assert ws.sent == [
        {"type": "subscribe", "symbol": "AAPL"},
        {"type": "subscribe", "symbol": "MSFT"},
    ]
    ws.sent.clear()
    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", "MSFT,NVDA")  # edited while following
    settings = _follow_watchlist(ws, subscribed, env_settings, load_settings)
    assert ws.sent == [
        {"type": "subscribe", "symbol": "NVDA"},
        {"type": "unsubscribe", "symbol": "AAPL"},
    ]
    assert subscribed == {"MSFT", "NVDA"} and settings.source.watchlist == ["MSFT", "NVDA"]
    ws.sent.clear()
    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", "not a ticker")  # a bad edit
    _follow_watchlist(ws, subscribed, settings, load_settings)
    assert ws.sent == [] and subscribed == {"MSFT", "NVDA"}  # the last good list stays
