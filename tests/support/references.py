"""Independent references: what the pipeline computes, written again from the textbook
definitions with pandas/numpy (and TA-Lib for RSI), for tests to compare against."""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from stockpipe.sources.minute_bars import MINUTE_MS, Trade


def independent_bars(trades: list[Trade]) -> pd.DataFrame:
    """pandas' view of the same trades: group by symbol and minute; open/close by time,
    then by arrival for equal times."""
    frame = pd.DataFrame(
        [(t.symbol, t.price, t.volume, t.ts_ms, i) for i, t in enumerate(trades)],
        columns=["symbol", "price", "volume", "ts_ms", "arrival"],
    )
    frame["minute"] = frame["ts_ms"] - frame["ts_ms"] % MINUTE_MS
    frame = frame.sort_values(["ts_ms", "arrival"])
    bars = frame.groupby(["minute", "symbol"], sort=True).agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("volume", "sum"),
    )
    bars = bars.reset_index()
    bars["ts"] = pd.to_datetime(bars["minute"], unit="ms", utc=True)
    return bars[["symbol", "ts", "open", "high", "low", "close", "volume"]]


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
