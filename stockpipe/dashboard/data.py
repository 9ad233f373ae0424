"""What the dashboard and the report read: marts only, never RAW.

On the embedded warehouse they read the marts' snapshot (a drain may hold the DuckDB file;
:mod:`stockpipe.trends.snapshot`); on Snowflake, the marts as the READER role. The same SQL
runs on both.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import pandas as pd

from stockpipe.settings import Settings
from stockpipe.trends.marts import top_movers
from stockpipe.trends.snapshot import SnapshotReader


class MartsReader(Protocol):
    def query_frame(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame: ...

    def version(self) -> str:
        """Changes when the marts may have changed (the cache key of every read)."""
        ...

    def close(self) -> None: ...


class NoMartsYet(RuntimeError):
    """Nothing to show yet: no trend build has run. The message says what to run."""


class WarehouseMartsReader:
    """The marts on Snowflake as the READER role; results cached for ``cache_seconds``
    (callers key their caches on :meth:`version`)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._session: Any = None

    def _open(self) -> Any:
        if self._session is None:
            from stockpipe.warehouse import open_session
            from stockpipe.warehouse.setup import require_setup

            session = open_session(self.settings, "read")
            require_setup(session)
            self._session = session
        return self._session

    def version(self) -> str:
        ttl = max(1, self.settings.dashboard.cache_seconds)
        return str(int(time.time() // ttl))

    def query_frame(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        try:
            return self._open().query_frame(sql, params)
        except Exception:
            # A session idle past Snowflake's timeout is gone: one fresh try.
            self.close()
            return self._open().query_frame(sql, params)

    def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                self._session.close()
            self._session = None


class EmbeddedMartsReader(SnapshotReader):
    """The embedded warehouse's marts snapshot; a missing one is :class:`NoMartsYet`."""

    def version(self) -> str:
        try:
            return super().version()
        except FileNotFoundError as exc:
            raise NoMartsYet(
                "No data yet: no trend build has run. Run 'stockpipe demo', or the pipeline "
                "('stockpipe backfill', 'stockpipe drain', 'stockpipe trends')."
            ) from exc


def open_reader(settings: Settings) -> MartsReader:
    """The reader for the configured warehouse."""
    if settings.warehouse.backend == "embedded":
        return EmbeddedMartsReader(settings.marts_snapshot_dir)
    return WarehouseMartsReader(settings)


def symbols(reader: MartsReader) -> list[str]:
    frame = reader.query_frame("select distinct symbol from MARTS.DAILY_TRENDS order by symbol")
    return frame["symbol"].tolist()


def session_range(reader: MartsReader, symbol: str) -> tuple[date, date] | None:
    """The first and last session the marts hold for ``symbol``."""
    frame = reader.query_frame(
        "select min(session_date) as first, max(session_date) as last "
        "from MARTS.DAILY_TRENDS where symbol = %s",
        (symbol,),
    )
    if frame.empty or pd.isna(frame["first"].iloc[0]):
        return None
    return _date(frame["first"].iloc[0]), _date(frame["last"].iloc[0])


def daily_history(reader: MartsReader, symbol: str, first: date, last: date) -> pd.DataFrame:
    """``symbol``'s daily bars and indicators from ``first`` to ``last``, oldest first."""
    frame = reader.query_frame(
        "select session_date, open, high, low, close, volume, vwap, change_pct, sma_5, sma_20, "
        "sma_50, rsi_14, volatility_30, high_52w, low_52w, pct_from_52w_high, "
        "pct_from_52w_low, figures_from from MARTS.DAILY_TRENDS "
        "where symbol = %s and session_date between %s and %s order by session_date",
        (symbol, first, last),
    )
    frame["session_date"] = pd.to_datetime(frame["session_date"])
    return _numbers(frame, "session_date", "figures_from")


# The watchlist's columns as people read them, in the dashboard and the report alike.
WATCHLIST_LABELS = {
    "last_close": "last",
    "change_on_day_pct": "day chg %",
    "change_vs_open_pct": "vs open %",
    "session_high": "high",
    "session_low": "low",
    "session_volume": "volume",
    "session_vwap": "VWAP",
    "bar_count": "bars",
    "ts": "as of (UTC)",
    "session_date": "session",
}
# Counts: shown whole, never "390.00".
WHOLE_NUMBER_LABELS = ("volume", "bars")


def watchlist(reader: MartsReader) -> pd.DataFrame:
    """The latest quote per symbol with its session's figures."""
    frame = reader.query_frame(
        "select symbol, ts, session_date, last_close, change_on_day_pct, change_vs_open_pct, "
        "session_high, session_low, session_volume, session_vwap, bar_count "
        "from MARTS.LATEST_QUOTE order by symbol"
    )
    frame["session_date"] = pd.to_datetime(frame["session_date"]).dt.date
    return _numbers(frame, "symbol", "ts", "session_date")


def movers(reader: MartsReader, limit: int = 10) -> pd.DataFrame:
    frame = top_movers(reader, limit)  # type: ignore[arg-type] - any reader of the marts
    return _numbers(frame, "symbol", "session_date", "direction")


def intraday(reader: MartsReader, symbol: str) -> pd.DataFrame:
    """``symbol``'s minute bars of its latest session in MINUTE_BARS, with MA5/MA20."""
    frame = reader.query_frame(
        "select ts, open, high, low, close, volume, ma5, ma20 from MARTS.MINUTE_BARS "
        "where symbol = %s and session_date = "
        "(select max(session_date) from MARTS.MINUTE_BARS where symbol = %s) order by ts",
        (symbol, symbol),
    )
    return _numbers(frame, "ts")


@dataclass(frozen=True)
class Freshness:
    latest_bar: datetime | None
    latest_session: date | None
    symbols: int


def freshness(reader: MartsReader) -> Freshness:
    """The newest bar and session in the marts."""
    frame = reader.query_frame(
        "select max(ts) as latest_bar, max(session_date) as latest_session, "
        "count(*) as symbols from MARTS.LATEST_QUOTE"
    )
    row = frame.iloc[0]
    latest_bar = None if pd.isna(row["latest_bar"]) else pd.Timestamp(row["latest_bar"])
    if latest_bar is not None and latest_bar.tzinfo is None:
        latest_bar = latest_bar.tz_localize("UTC")
    return Freshness(
        latest_bar=latest_bar.to_pydatetime() if latest_bar is not None else None,
        latest_session=None if pd.isna(row["latest_session"]) else _date(row["latest_session"]),
        symbols=int(row["symbols"]),
    )


def _numbers(frame: pd.DataFrame, *keep: str) -> pd.DataFrame:
    """Every column but ``keep`` as floats with NaN for NULL: Snowflake's connector hands
    over NUMBER as Decimal and an all-NULL column (a window not yet full) as None."""
    for column in frame.columns:
        if column not in keep:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def _date(value: Any) -> date:
    return pd.Timestamp(value).date()


@dataclass(frozen=True)
class RefreshPlan:
    """How the page's trend views refresh at a moment: every ``seconds`` while NYSE trades
    (None: not at all, the marts only change with a session), and the sentence saying so."""

    seconds: int | None
    caption: str


def refresh_plan(refresh_seconds: int, now: datetime) -> RefreshPlan:
    """The trend views refresh while the market is open (``now`` on NYSE's calendar: early
    closes and holidays included), and not when no new bar can arrive."""
    from stockpipe import market_calendar

    if market_calendar.is_market_open(now):
        return RefreshPlan(
            refresh_seconds, f"Refreshing every {refresh_seconds} s while the market is open."
        )
    return RefreshPlan(None, "The market is closed: reload the page for new data.")
