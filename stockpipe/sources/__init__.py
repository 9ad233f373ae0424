"""Quote sources behind one interface.

A source returns bars of one interval as a DataFrame with :data:`BAR_FIELDS` (``ts`` is
the bar's start, tz-aware UTC): 1-minute bars, or daily bars whose ``ts`` is their
session's open (so a daily bar and its session's first minute bar differ only in the
interval, and both fall on the session's New York date). A source does not validate bars
against the message contract: that is the ingest step's job, so that every source's bad
rows are counted and reported the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, get_args

import numpy as np
import pandas as pd

from stockpipe.quote_spec import BAR_FIELDS
from stockpipe.settings import SourceSettings

# The intervals the sources serve (the contract takes more: quote_spec.INTERVALS).
Interval = Literal["1m", "1d"]
SOURCE_INTERVALS: tuple[Interval, ...] = get_args(Interval)


class QuoteSource(Protocol):
    """Anything that can hand over the bars of some symbols in a time range."""

    name: str

    def fetch(
        self, symbols: Sequence[str], start: datetime, end: datetime, interval: Interval = "1m"
    ) -> pd.DataFrame:
        """Bars of ``interval`` with ``start <= ts < end`` for ``symbols``, columns
        :data:`BAR_FIELDS`."""
        ...

    def history_limit(self, interval: Interval) -> HistoryLimit:
        """How far back, and how much per request, the source serves ``interval`` bars."""
        ...


@dataclass(frozen=True)
class HistoryLimit:
    """What a provider serves of one interval.

    Attributes:
        max_age_days: bars older than this many days are not served (None: no limit).
        days_per_request: the longest window one request may ask for (None: no limit).
    """

    max_age_days: int | None = None
    days_per_request: int | None = None


def daily_bar_ts(days: pd.Series | pd.DatetimeIndex) -> pd.Series:
    """The ``ts`` of daily bars for the given dates: their session's open (UTC).

    A date that is not an NYSE session maps to NaT (the contract then rejects that bar).
    """
    from stockpipe import market_calendar

    # Midnight datetime64 values, looked up by position: a date object per bar costs
    # seconds on millions of bars.
    midnights = pd.DatetimeIndex(pd.to_datetime(days)).tz_localize(None).normalize()
    if midnights.empty or midnights.isna().all():
        return pd.Series(pd.NaT, index=range(len(midnights)), dtype="datetime64[ns, UTC]")
    opens = market_calendar.session_opens(midnights.min().date(), midnights.max().date())
    sessions = pd.DatetimeIndex(pd.to_datetime(opens.index))
    where = sessions.get_indexer(midnights)
    ts = np.full(len(midnights), np.datetime64("NaT"), dtype="datetime64[ns]")
    ts[where >= 0] = opens.to_numpy(dtype="datetime64[ns]")[where[where >= 0]]
    return pd.Series(ts, dtype="datetime64[ns]").dt.tz_localize("UTC")


def empty_bars() -> pd.DataFrame:
    frame = pd.DataFrame({column: [] for column in BAR_FIELDS})
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def make_source(settings: SourceSettings, state_dir: Path | None = None) -> QuoteSource:
    """The source the settings name (``STOCKPIPE_SOURCE__KIND``).

    Args:
        state_dir: where a keyed provider keeps the calls it spent today (shared by the
            installation's processes: ``<home>/sources``); None keeps them in memory.
    """
    if settings.kind == "simulated":
        from stockpipe.sources.simulated import LISTED, SimulatedMarket

        return SimulatedMarket(seed=settings.seed, listed=LISTED | set(settings.watchlist))
    if settings.kind == "replay":
        from stockpipe.sources.replay import ReplaySource

        assert settings.replay_path is not None  # the settings validator guarantees it
        return ReplaySource(settings.replay_path)
    from stockpipe.retry import RetryPolicy

    retry = RetryPolicy(
        settings.max_retries, settings.backoff_base_seconds, settings.backoff_max_seconds
    )
    if settings.kind in ("finnhub", "alphavantage"):
        from stockpipe.sources.budget import CallBudget

        key = api_key(settings, settings.kind)
        if settings.kind == "finnhub":
            from stockpipe.sources.finnhub import FinnhubSource

            return FinnhubSource(
                key,
                settings.finnhub_url,
                CallBudget(settings.finnhub_calls_per_minute),
                timeout_seconds=settings.request_timeout_seconds,
                retry=retry,
            )
        from stockpipe.sources.alphavantage import AlphaVantageSource

        budget = CallBudget(
            settings.alphavantage_calls_per_minute,
            settings.alphavantage_calls_per_day,
            state=state_dir / "alphavantage-calls.json" if state_dir else None,
        )
        return AlphaVantageSource(
            key,
            settings.alphavantage_url,
            budget,
            timeout_seconds=settings.request_timeout_seconds,
            retry=retry,
        )
    from stockpipe.sources.yahoo import YahooFinanceSource

    return YahooFinanceSource(chunk_size=settings.yfinance_chunk_size, retry=retry)


def api_key(settings: SourceSettings, provider: str) -> str:
    """The provider's API key: the setting, or the Prefect Secret block it names.

    Raises:
        ConfigError: the block cannot be read (the settings validator already made sure one
            of the two is set).
    """
    from stockpipe.settings import ConfigError

    key = getattr(settings, f"{provider}_api_key")
    if key is not None and key.get_secret_value():
        return key.get_secret_value()
    block = getattr(settings, f"{provider}_api_key_block")
    try:
        from prefect.blocks.system import Secret

        return str(Secret.load(block).get())
    except Exception as exc:
        raise ConfigError(
            f"STOCKPIPE_SOURCE__{provider.upper()}_API_KEY_BLOCK={block}: the Prefect Secret "
            f"block cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None
