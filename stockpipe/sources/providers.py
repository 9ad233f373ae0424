"""What the keyed HTTP providers (Finnhub, Alpha Vantage) share: their errors, keeping
the key out of every message, and bars from per-symbol frames.

Both put the API key in the query string, so the text of a network error (which quotes
the URL) holds it: every message that leaves a source goes through :func:`scrubbed`.
"""

from __future__ import annotations

import logging
from datetime import datetime

import pandas as pd

from stockpipe.sources import BAR_COLUMNS, Interval, daily_bar_ts, empty_bars

log = logging.getLogger(__name__)
HIDDEN = "***"


class ProviderUnavailable(RuntimeError):
    """The provider failed a request in a way worth retrying (rate limit, network, 5xx)."""


class ProviderRefused(RuntimeError):
    """The provider refused a request for good (bad key, a plan without access)."""


def scrubbed(text: str, secret: str) -> str:
    """``text`` with ``secret`` replaced (an API key quoted in a URL, say)."""
    return text.replace(secret, HIDDEN) if secret else text


def bars_frame(
    symbol: str,
    starts: pd.DatetimeIndex,
    open_: object,
    high: object,
    low: object,
    close: object,
    volume: object,
    interval: Interval,
    start: datetime,
    end: datetime,
) -> pd.DataFrame:
    """One symbol's bars as :data:`BAR_COLUMNS`, inside ``[start, end)``.

    Args:
        starts: each minute bar's start (tz-aware), or each daily bar's session date
            (naive midnight; the ``ts`` becomes the session's open).
    """
    if not len(starts):
        return empty_bars()
    ts = pd.DatetimeIndex(daily_bar_ts(starts)) if interval == "1d" else starts.tz_convert("UTC")
    frame = pd.DataFrame(
        {
            "symbol": symbol,
            "ts": ts,
            "open": pd.to_numeric(pd.Series(open_), errors="coerce").to_numpy(),
            "high": pd.to_numeric(pd.Series(high), errors="coerce").to_numpy(),
            "low": pd.to_numeric(pd.Series(low), errors="coerce").to_numpy(),
            "close": pd.to_numeric(pd.Series(close), errors="coerce").to_numpy(),
            "volume": pd.to_numeric(pd.Series(volume), errors="coerce").to_numpy(),
        }
    )
    # A date that is not a session keeps NaT: the contract rejects it, counted, not lost.
    inside = frame["ts"].isna() | ((frame["ts"] >= start) & (frame["ts"] < end))
    return frame[inside].reset_index(drop=True)[list(BAR_COLUMNS)]
