"""Quotes from Finnhub's REST API (finnhub-python): one candle request per symbol and window.

``/stock/candle`` answers ``{"s": "ok", "t": [...], "o": [...], ...}`` (bar starts in Unix
seconds) or ``{"s": "no_data"}`` (an unknown symbol, a closed market). A 429 (the plan's
calls a minute) and network errors are retried with backoff and jitter; the calls are also
paced to the plan's budget so that a watchlist larger than it waits instead of being
refused. A 401/403 (a bad key, a plan without candle access) stops the fetch with the
provider's message. The key never appears in a message or log line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from stockpipe import metrics
from stockpipe.retry import RetryPolicy
from stockpipe.sources import HistoryLimit, Interval, empty_bars
from stockpipe.sources.budget import CallBudget
from stockpipe.sources.providers import (
    ProviderRefused,
    ProviderUnavailable,
    bars_frame,
    scrubbed,
    unavailable,
)

log = logging.getLogger(__name__)

RESOLUTIONS = {"1m": "1", "1d": "D"}
# Minute candles a month per request keeps a response to ~8,000 bars a symbol.
HISTORY_LIMITS = {
    "1m": HistoryLimit(days_per_request=30),
    "1d": HistoryLimit(days_per_request=3650),
}


class FinnhubSource:
    """1-minute and daily candles from Finnhub.

    Args:
        api_key: the account's key (a secret: never logged).
        url: the REST API's base (``STOCKPIPE_SOURCE__FINNHUB_URL``; tests: a local server).
        budget: the plan's calls a minute.
        retry: how a 429, a 5xx or a network error is retried.
    """

    name = "finnhub"

    def __init__(
        self,
        api_key: str,
        url: str,
        budget: CallBudget,
        timeout_seconds: float = 30.0,
        retry: RetryPolicy | None = None,
    ):
        import finnhub

        self._key = api_key
        self._client = finnhub.Client(api_key=api_key)
        self._client.API_URL = url.rstrip("/")
        self._client.DEFAULT_TIMEOUT = timeout_seconds
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self.missing: list[str] = []

    def history_limit(self, interval: Interval) -> HistoryLimit:
        return HISTORY_LIMITS[interval]

    def fetch(
        self, symbols: Sequence[str], start: datetime, end: datetime, interval: Interval = "1m"
    ) -> pd.DataFrame:
        frames = []
        self.missing = []
        for symbol in dict.fromkeys(s.upper() for s in symbols):
            payload = self.retry.call(
                lambda symbol=symbol: self._candles(symbol, start, end, interval),
                (ProviderUnavailable,),
                f"Finnhub candles of {symbol}",
            )
            bars = _bars(symbol, payload, interval, start, end)
            if bars.empty:
                self.missing.append(symbol)
            frames.append(bars)
        if self.missing:
            log.warning("Finnhub returned no bars for: %s", ", ".join(self.missing))
        return pd.concat(frames, ignore_index=True) if frames else empty_bars()

    def _candles(self, symbol: str, start: datetime, end: datetime, interval: Interval) -> dict:
        import requests
        from finnhub.exceptions import FinnhubAPIException, FinnhubRequestException

        self.budget.acquire()
        try:
            # ``to`` is inclusive: the last second of the window.
            return self._client.stock_candles(
                symbol, RESOLUTIONS[interval], int(start.timestamp()), int(end.timestamp()) - 1
            )
        except FinnhubAPIException as exc:
            message = scrubbed(str(exc), self._key)
            if exc.status_code == 429 or exc.status_code >= 500:
                metrics.FETCH_ERRORS.labels(self.name, f"http_{exc.status_code}").inc()
                raise ProviderUnavailable(message) from None
            metrics.FETCH_ERRORS.labels(self.name, f"http_{exc.status_code}").inc()
            raise ProviderRefused(
                f"Finnhub refused the candles of {symbol}: {message} (a 401 is a wrong "
                "STOCKPIPE_SOURCE__FINNHUB_API_KEY; a 403 a plan without candle access)"
            ) from None
        except (requests.RequestException, FinnhubRequestException) as exc:
            metrics.FETCH_ERRORS.labels(self.name, "network").inc()
            raise unavailable("Finnhub", exc, self._key) from None


def _bars(
    symbol: str, payload: dict, interval: Interval, start: datetime, end: datetime
) -> pd.DataFrame:
    """Bars from one candle response (``no_data``: none)."""
    if not isinstance(payload, dict) or payload.get("s") != "ok":
        return empty_bars()
    starts = pd.DatetimeIndex(
        pd.to_datetime(pd.Series(payload.get("t") or [], dtype="int64"), unit="s", utc=True)
    )
    if interval == "1d":  # a daily candle's t falls on its session's date in UTC
        starts = starts.tz_localize(None).normalize()
    return bars_frame(
        symbol,
        starts,
        payload.get("o"),
        payload.get("h"),
        payload.get("l"),
        payload.get("c"),
        payload.get("v"),
        interval,
        start,
        end,
    )
