"""Quote sources behind one interface.

A source returns 1-minute bars as a DataFrame with :data:`BAR_COLUMNS` (``ts`` is the bar's
start, tz-aware UTC). It does not validate them against the message contract: that is the
ingest step's job, so that every source's bad rows are counted and reported the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import pandas as pd

from stockpipe.settings import SourceSettings

BAR_COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume")


class QuoteSource(Protocol):
    """Anything that can hand over the bars of some symbols in a time range."""

    name: str

    def fetch(self, symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        """Bars with ``start <= ts < end`` for ``symbols``, columns :data:`BAR_COLUMNS`."""
        ...


def empty_bars() -> pd.DataFrame:
    frame = pd.DataFrame({column: [] for column in BAR_COLUMNS})
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def make_source(settings: SourceSettings) -> QuoteSource:
    """The source the settings name (``STOCKPIPE_SOURCE__KIND``)."""
    if settings.kind == "simulated":
        from stockpipe.sources.simulated import SimulatedMarket

        return SimulatedMarket(seed=settings.seed)
    if settings.kind == "replay":
        from stockpipe.sources.replay import ReplaySource

        assert settings.replay_path is not None  # the settings validator guarantees it
        return ReplaySource(settings.replay_path)
    from stockpipe.sources.yahoo import YahooFinanceSource

    return YahooFinanceSource(
        chunk_size=settings.yfinance_chunk_size,
        max_retries=settings.max_retries,
        backoff_base_seconds=settings.backoff_base_seconds,
        backoff_max_seconds=settings.backoff_max_seconds,
    )
