"""A simulated market: deterministic for a seed, realistic 1-minute bars on real NYSE sessions.

Each symbol gets a stable profile (price level, annual volatility, volume level) from the
seed and its ticker. Session closes follow a daily geometric random walk over every NYSE
session in the calendar; inside a session the price follows a Brownian bridge from the
open (previous close plus an overnight gap) to that session's close, so minute bars and
daily bars agree (a daily bar is exactly the aggregate of its session's minute bars).
Volume is U-shaped over the session (busy at the open and the close).
Bars satisfy high >= max(open, close) and low <= min(open, close) by construction.

Everything is computed, not slept: a whole session for ten symbols takes milliseconds, so
the demo "fast-forwards" a day by fetching it in slices.

As a real provider, the market lists some tickers and no others: :data:`LISTED` and the
watchlist it is made with. A ticker it does not list gets no bars and is named in
``missing``, as yfinance names an unknown one, instead of a made-up history.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from stockpipe import market_calendar
from stockpipe.quote_spec import BAR_FIELDS
from stockpipe.sources import HistoryLimit, Interval, empty_bars

TRADING_DAYS_PER_YEAR = 252
MINUTES_PER_SESSION = 390
# Each symbol's profile price is its close on this session; the walk runs both ways from it,
# so prices stay plausible over the calendar's decades instead of drifting from its start.
ANCHOR_SESSION = pd.Timestamp("2024-01-02")


# What the simulated market lists besides the watchlist: the Dow Jones Industrial Average's
# components and other large, long-listed US names.
# fmt: off
LISTED = frozenset((
    "AAPL", "AMGN", "AMZN", "AXP", "BA", "CAT", "CRM", "CSCO", "CVX", "DIS", "GS", "HD", "HON",
    "IBM", "JNJ", "JPM", "KO", "MCD", "MMM", "MRK", "MSFT", "NKE", "NVDA", "PG", "SHW", "TRV",
    "UNH", "V", "VZ", "WMT", "ADBE", "AMD", "AVGO", "BAC", "BRK.B", "COST", "GOOG", "GOOGL",
    "INTC", "LLY", "MA", "META", "NFLX", "ORCL", "PEP", "PFE", "QCOM", "T", "TSLA", "TXN",
    "WFC", "XOM", "SPY", "QQQ", "DIA", "^GSPC", "^DJI", "^IXIC",
))
# fmt: on


@dataclass(frozen=True)
class SymbolProfile:
    start_price: float
    annual_volatility: float
    volume_per_minute: float


def _stable_int(*parts: object) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode())


class SimulatedMarket:
    """Deterministic simulated quotes. The same seed gives the same bars, on any machine."""

    name = "simulated"

    def __init__(self, seed: int = 42, listed: Sequence[str] | None = None):
        """
        Args:
            seed: the market's seed: the same seed gives the same bars.
            listed: the tickers it serves (the source adds the watchlist to
                :data:`LISTED`); None serves any ticker (tests and benchmarks).
        """
        self.seed = seed
        self.listed = frozenset(listed) if listed is not None else None
        self.missing: list[str] = []
        self._sessions = market_calendar.nyse().sessions
        self._session_index = {label.date(): i for i, label in enumerate(self._sessions)}

    def profile(self, symbol: str) -> SymbolProfile:
        rng = np.random.default_rng([self.seed, _stable_int("profile", symbol)])
        return SymbolProfile(
            start_price=float(np.exp(rng.uniform(np.log(15.0), np.log(600.0)))),
            annual_volatility=float(rng.uniform(0.15, 0.65)),
            volume_per_minute=float(np.exp(rng.uniform(np.log(5_000), np.log(400_000)))),
        )

    @lru_cache(maxsize=4096)  # noqa: B019 - one market object lives for a run; bounded
    def _daily_path(self, symbol: str) -> tuple[np.ndarray, np.ndarray]:
        """(open, close) of every session in the calendar for ``symbol``."""
        profile = self.profile(symbol)
        rng = np.random.default_rng([self.seed, _stable_int("daily", symbol)])
        n = len(self._sessions)
        daily_sigma = profile.annual_volatility / np.sqrt(TRADING_DAYS_PER_YEAR)
        log_returns = rng.normal(0.0002, daily_sigma, n)
        path = np.cumsum(log_returns)
        anchor = self._sessions.get_indexer([ANCHOR_SESSION])[0]
        closes = profile.start_price * np.exp(path - path[anchor])
        gaps = rng.normal(0.0, 0.25 * daily_sigma, n)
        previous = np.concatenate([[profile.start_price], closes[:-1]])
        opens = previous * np.exp(gaps)
        return opens, closes

    def _session_arrays(
        self, symbol: str, index: int, n: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(open, high, low, close, volume) of the ``n`` minutes of session number ``index``."""
        profile = self.profile(symbol)
        opens_daily, closes_daily = self._daily_path(symbol)
        day_open, day_close = opens_daily[index], closes_daily[index]

        rng = np.random.default_rng([self.seed, _stable_int("intraday", symbol), index])
        minute_sigma = profile.annual_volatility / np.sqrt(
            TRADING_DAYS_PER_YEAR * MINUTES_PER_SESSION
        )
        walk = np.cumsum(rng.normal(0.0, minute_sigma, n))
        steps = np.arange(1, n + 1) / n
        # Brownian bridge: pinned to the session's open and close.
        log_path = walk - steps * walk[-1] + steps * np.log(day_close / day_open)
        closes = day_open * np.exp(log_path)
        opens = np.concatenate([[day_open], closes[:-1]])
        wick = np.abs(rng.normal(0.0, 0.6 * minute_sigma, (2, n)))
        highs = np.maximum(opens, closes) * np.exp(wick[0])
        lows = np.minimum(opens, closes) * np.exp(-wick[1])

        position = np.linspace(-1.0, 1.0, n)
        u_shape = 0.55 + 2.0 * position**2
        noise = rng.lognormal(0.0, 0.35, n)
        volume = np.maximum(0, np.round(profile.volume_per_minute * u_shape * noise)).astype(
            np.int64
        )

        opens, closes = np.round(opens, 4), np.round(closes, 4)
        # Rounding must not break high >= max(open, close) >= min(open, close) >= low.
        highs = np.maximum(np.round(highs, 4), np.maximum(opens, closes))
        lows = np.minimum(np.round(lows, 4), np.minimum(opens, closes))
        return opens, highs, lows, closes, volume

    def session_bars(self, symbol: str, session: market_calendar.Session) -> pd.DataFrame:
        """Every 1-minute bar of ``symbol`` in ``session``."""
        minutes = session.minutes
        opens, highs, lows, closes, volume = self._session_arrays(
            symbol, self._session_index[session.day], len(minutes)
        )
        return pd.DataFrame(
            {
                "symbol": symbol,
                "ts": minutes,
                "open": opens,
                "high": highs,
                "low": lows,
                "close": closes,
                "volume": volume,
            },
            columns=list(BAR_FIELDS),
        )

    def daily_bars(self, symbols: Sequence[str], first: date, last: date) -> pd.DataFrame:
        """One bar per symbol and session from ``first`` to ``last``: exactly the aggregate of
        that session's minute bars (first open, max high, min low, last close, summed
        volume), with ``ts`` at the session's open."""
        schedule = market_calendar.nyse().schedule.loc[
            pd.Timestamp(first) : pd.Timestamp(last), ["open", "close"]
        ]
        if schedule.empty or not symbols:
            return empty_bars()
        minutes = ((schedule["close"] - schedule["open"]) // pd.Timedelta(minutes=1)).to_numpy()
        indexes = [self._session_index[label.date()] for label in schedule.index]
        rows = []
        for symbol in symbols:
            for index, n in zip(indexes, minutes, strict=True):
                o, h, lo, c, v = self._session_arrays(symbol, index, int(n))
                rows.append((o[0], h.max(), lo.min(), c[-1], v.sum()))
        values = np.array(rows, dtype=float).reshape(-1, 5)
        return pd.DataFrame(
            {
                "symbol": np.repeat(list(symbols), len(schedule)),
                "ts": np.tile(schedule["open"].to_numpy(), len(symbols)),
                "open": values[:, 0],
                "high": values[:, 1],
                "low": values[:, 2],
                "close": values[:, 3],
                "volume": values[:, 4].astype(np.int64),
            },
            columns=list(BAR_FIELDS),
        )

    def history_limit(self, interval: Interval) -> HistoryLimit:
        # Any session of the calendar, computed: no provider limits; windows bounded only
        # to keep each fetch's memory small.
        return HistoryLimit(days_per_request=7 if interval == "1m" else 366)

    def fetch(
        self, symbols: Sequence[str], start: datetime, end: datetime, interval: Interval = "1m"
    ) -> pd.DataFrame:
        """Bars with ``start <= ts < end`` for ``symbols`` over every session in the range;
        none for a ticker the market does not list (named in ``missing``)."""
        if self.listed is not None:
            self.missing = [s for s in symbols if s not in self.listed]
            symbols = [s for s in symbols if s in self.listed]
        lo, hi = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
        if hi <= lo:
            return empty_bars()
        if interval == "1d":
            bars = self.daily_bars(symbols, lo.date(), hi.date())
            return bars[(bars["ts"] >= lo) & (bars["ts"] < hi)].reset_index(drop=True)
        sessions = market_calendar.sessions_between(lo.date(), hi.date())
        frames = []
        for session in sessions:
            if session.close <= lo or session.open >= hi:
                continue
            for symbol in symbols:
                bars = self.session_bars(symbol, session)
                frames.append(bars[(bars["ts"] >= lo) & (bars["ts"] < hi)])
        if not frames:
            return empty_bars()
        return pd.concat(frames, ignore_index=True)
