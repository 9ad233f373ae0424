"""Every trend figure in MARTS against an independent computation written from the
textbook definitions with pandas/numpy (and TA-Lib for RSI), to 1e-9 relative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import talib

from stockpipe import market_calendar as mc
from stockpipe.drain.loader import load_batch
from stockpipe.settings import load_settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.trends import refresh_daily_bars
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.support import raw_rows_from_bars

RTOL = 1e-9
FETCHED = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def warehouse():
    with Warehouse.connect(load_settings(), "setup") as wh:
        setup_warehouse(wh, load_settings())
        yield wh


def load(warehouse: Warehouse, bars: pd.DataFrame, loaded_at: datetime | None = None) -> None:
    """Load bars into RAW as the drain would, then refresh the daily marts."""
    rows = raw_rows_from_bars(bars, FETCHED, loaded_at=loaded_at)
    load_batch(warehouse, rows, {("prices", 0): len(bars)}, None)
    refresh_daily_bars(warehouse)


def three_bars_a_session(symbols: list[str], start: str, end: str, seed: int = 3) -> pd.DataFrame:
    """A multi-year series: per session, bars at the open, mid-session and the last minute."""
    rng = np.random.default_rng(seed)
    frames = []
    for symbol in symbols:
        price = rng.uniform(20, 400)
        for session in mc.sessions_between(start, end):
            minutes = session.minutes
            for ts in (minutes[0], minutes[len(minutes) // 2], minutes[-1]):
                open_ = price
                price = price * np.exp(rng.normal(0, 0.012))
                high = max(open_, price) * (1 + abs(rng.normal(0, 0.002)))
                low = min(open_, price) * (1 - abs(rng.normal(0, 0.002)))
                frames.append((symbol, ts, open_, high, low, price, int(rng.integers(0, 50_000))))
    return pd.DataFrame(frames, columns=["symbol", "ts", "open", "high", "low", "close", "volume"])


def expected_daily(bars: pd.DataFrame) -> pd.DataFrame:
    """Daily bars per NYSE session (New York date), from the definitions."""
    bars = bars.sort_values(["symbol", "ts"]).copy()
    bars["session_date"] = bars["ts"].dt.tz_convert("America/New_York").dt.date
    bars["tpv"] = (bars["high"] + bars["low"] + bars["close"]) / 3 * bars["volume"]
    g = bars.groupby(["symbol", "session_date"])
    daily = pd.DataFrame(
        {
            "open": g["open"].first(),
            "high": g["high"].max(),
            "low": g["low"].min(),
            "close": g["close"].last(),
            "volume": g["volume"].sum(),
            "bar_count": g.size(),
            "vwap": g["tpv"].sum() / g["volume"].sum().replace(0, np.nan),
        }
    ).reset_index()
    return daily


def wilder_rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    """RSI with Wilder's smoothing, written out (a second reference beside TA-Lib)."""
    out = np.full(len(close), np.nan)
    change = np.diff(close)
    if len(change) < period:
        return out
    gains, losses = np.maximum(change, 0), np.maximum(-change, 0)
    avg_gain, avg_loss = gains[:period].mean(), losses[:period].mean()
    for t in range(period, len(close)):
        if t > period:
            avg_gain = (avg_gain * (period - 1) + gains[t - 1]) / period
            avg_loss = (avg_loss * (period - 1) + losses[t - 1]) / period
        total = avg_gain + avg_loss
        out[t] = 0.0 if total == 0 else 100 * avg_gain / total
    return out


def expected_trends(daily: pd.DataFrame) -> pd.DataFrame:
    frames = []
    for _, d in daily.groupby("symbol"):
        d = d.sort_values("session_date").copy()
        close = d["close"]
        d["change_pct"] = (close / close.shift(1) - 1) * 100
        for n in (5, 20, 50):
            d[f"sma_{n}"] = close.rolling(n).mean()
        d["volatility_30"] = np.log(close / close.shift(1)).rolling(30).std(ddof=1) * np.sqrt(252)
        d["high_52w"] = d["high"].rolling(252).max()
        d["low_52w"] = d["low"].rolling(252).min()
        d["pct_from_52w_high"] = (close / d["high_52w"] - 1) * 100
        d["pct_from_52w_low"] = (close / d["low_52w"] - 1) * 100
        d["rsi_14"] = talib.RSI(close.to_numpy(dtype=float), timeperiod=14)
        d["rsi_wilder"] = wilder_rsi(close.to_numpy(dtype=float))
        frames.append(d)
    return pd.concat(frames, ignore_index=True)


def assert_same(actual: pd.Series, expected: pd.Series, name: str) -> None:
    a = pd.to_numeric(actual, errors="coerce").to_numpy(dtype=float)
    e = pd.to_numeric(expected, errors="coerce").to_numpy(dtype=float)
    assert np.array_equal(np.isnan(a), np.isnan(e)), f"{name}: NULLs differ"
    ok = ~np.isnan(e)
    np.testing.assert_allclose(a[ok], e[ok], rtol=RTOL, atol=0, err_msg=name)


def test_daily_indicators_over_years_match_the_definitions(warehouse: Warehouse) -> None:
    symbols = ["AAA", "BBB", "CCC"]
    bars = three_bars_a_session(symbols, "2022-01-03", "2025-06-30")
    load(warehouse, bars)
    actual = warehouse.query_frame("select * from MARTS.DAILY_TRENDS order by symbol, session_date")
    expected = expected_trends(expected_daily(bars)).sort_values(["symbol", "session_date"])
    assert len(actual) == len(expected) == 3 * len(mc.sessions_between("2022-01-03", "2025-06-30"))
    assert (
        actual["session_date"].astype(str).to_numpy()
        == expected["session_date"].astype(str).to_numpy()
    ).all()
    for column in (
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "bar_count",
        "change_pct",
        "sma_5",
        "sma_20",
        "sma_50",
        "volatility_30",
        "high_52w",
        "low_52w",
        "pct_from_52w_high",
        "pct_from_52w_low",
        "rsi_14",
    ):
        assert_same(actual[column], expected[column], column)
    assert_same(actual["rsi_14"], expected["rsi_wilder"], "rsi_14 vs written-out Wilder")
    # Windows count sessions: the 50th session of a symbol is the first with an SMA 50.
    first = actual[actual["symbol"] == "AAA"].reset_index(drop=True)
    assert first["sma_50"].iloc[:49].isna().all() and pd.notna(first["sma_50"].iloc[49])
    assert first["rsi_14"].iloc[:14].isna().all() and pd.notna(first["rsi_14"].iloc[14])


def test_minute_bars_across_a_holiday_and_an_early_close(warehouse: Warehouse) -> None:
    symbols = ["AAPL", "MSFT", "XOM"]
    week = mc.sessions_between("2025-11-20", "2025-11-28")  # Thanksgiving, then a half day
    bars = SimulatedMarket(seed=5).fetch(symbols, week[0].open, week[-1].close)
    load(warehouse, bars)

    daily = warehouse.query_frame("select * from MARTS.DAILY_OHLCV order by symbol, session_date")
    expected = expected_daily(bars).sort_values(["symbol", "session_date"])
    assert sorted(set(daily["session_date"].astype(str))) == [
        "2025-11-20",
        "2025-11-21",
        "2025-11-24",
        "2025-11-25",
        "2025-11-26",
        "2025-11-28",
    ]
    half_day = daily[daily["session_date"].astype(str) == "2025-11-28"]
    assert set(half_day["bar_count"]) == {210}
    for column in ("open", "high", "low", "close", "volume", "vwap", "bar_count"):
        assert_same(daily[column], expected[column], column)

    minute = warehouse.query_frame(
        "select symbol, ts, ma5, ma20 from MARTS.MINUTE_MOVING_AVERAGES order by symbol, ts"
    )
    ref = bars.sort_values(["symbol", "ts"]).reset_index(drop=True)
    ref["ma5"] = ref.groupby("symbol")["close"].transform(lambda c: c.rolling(5).mean())
    ref["ma20"] = ref.groupby("symbol")["close"].transform(lambda c: c.rolling(20).mean())
    assert len(minute) == len(ref)
    assert_same(minute["ma5"], ref["ma5"], "ma5")
    assert_same(minute["ma20"], ref["ma20"], "ma20")

    latest = warehouse.query_frame("select * from MARTS.LATEST_QUOTE order by symbol")
    last_bars = ref.groupby("symbol").tail(1).sort_values("symbol")
    assert_same(latest["last_close"], last_bars["close"], "last_close")
    assert_same(latest["ma5"], last_bars["ma5"], "latest ma5")


def test_top_movers_and_top_daily_closes(warehouse: Warehouse) -> None:
    symbols = ["AAA", "BBB", "CCC", "DDD"]
    bars = three_bars_a_session(symbols, "2025-09-02", "2025-11-26", seed=11)
    load(warehouse, bars)
    daily = expected_trends(expected_daily(bars))

    movers = warehouse.query_frame("select * from MARTS.TOP_MOVERS order by move_rank")
    last = daily[daily["session_date"] == daily["session_date"].max()].copy()
    last = last.reindex(last["change_pct"].abs().sort_values(ascending=False).index)
    assert movers["symbol"].tolist() == last["symbol"].tolist()
    assert_same(movers["change_pct"], last["change_pct"], "change_pct")
    assert set(movers["direction"]) <= {"up", "down"}
    assert ((movers["change_pct"] >= 0) == (movers["direction"] == "up")).all()

    top = warehouse.query_frame("select * from MARTS.TOP_DAILY_CLOSES order by symbol, close_rank")
    expected_top = (
        daily.sort_values(["symbol", "close"], ascending=[True, False]).groupby("symbol").head(5)
    )
    assert len(top) == 4 * 5
    assert_same(top["close"], expected_top["close"], "top closes")
    assert (
        top["session_date"].astype(str).to_numpy()
        == expected_top["session_date"].astype(str).to_numpy()
    ).all()


def test_incremental_refresh_rebuilds_only_the_sessions_that_changed(
    warehouse: Warehouse,
) -> None:
    market = SimulatedMarket(seed=8)
    days = mc.sessions_between("2025-11-17", "2025-11-21")
    now = datetime.now(UTC)
    # Each past session was loaded on its own day; the first refresh is full.
    parts = []
    for age, session in zip((4, 3, 2, 1), days[:-1], strict=True):
        part = market.fetch(["AAPL", "MSFT"], session.open, session.close)
        load(warehouse, part, loaded_at=now - timedelta(days=age))
        parts.append(part)
    bars = pd.concat(parts)
    before = warehouse.query_frame(
        "select symbol, session_date, refreshed_at, close from MARTS.DAILY_BARS"
    )
    assert len(before) == 2 * 4

    # Intraday: the newest session's first hour arrives, and one bar of it is re-fetched.
    today = market.fetch(["AAPL", "MSFT"], days[-1].open, days[-1].minutes[60])
    load_batch(warehouse, raw_rows_from_bars(today, FETCHED), {("prices", 0): 1}, None)
    report = refresh_daily_bars(warehouse)
    assert report.mode == "incremental"
    # The new session, and the one loaded just before the last refresh (the look-back
    # that catches late commits); the three older sessions are left alone.
    assert (report.first_session, report.last_session) == ("2025-11-20", "2025-11-21")
    assert report.rows == 4
    after = warehouse.query_frame(
        "select symbol, session_date, refreshed_at, close, bar_count from MARTS.DAILY_BARS"
    )
    old = after.merge(before, on=["symbol", "session_date"], suffixes=("", "_before"))
    old = old[old["session_date"].astype(str) < "2025-11-20"]
    assert len(old) == 6 and (old["refreshed_at"] == old["refreshed_at_before"]).all()
    new = after[after["session_date"].astype(str) == "2025-11-21"]
    assert set(new["bar_count"]) == {60}
    expected = expected_daily(pd.concat([bars, today])).sort_values(["symbol", "session_date"])
    assert_same(after.sort_values(["symbol", "session_date"])["close"], expected["close"], "close")
    assert refresh_daily_bars(warehouse).mode == "up to date"
