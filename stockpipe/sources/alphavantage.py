"""Quotes from Alpha Vantage: ``TIME_SERIES_INTRADAY`` (1-minute, a month a call) and
``TIME_SERIES_DAILY``.

Spoken to over HTTP directly rather than through the alpha-vantage package: its 3.0 calls
``requests.get`` without a timeout (a stalled connection would hang a scheduled run) and
takes its endpoint from a class attribute. The API is one GET with the function, symbol,
interval, month and key.

The free plan allows 5 calls a minute and 25 a day. Calls are paced to the minute's budget
and counted against the day's (:class:`~stockpipe.sources.budget.CallBudget`, shared by the
installation's processes); when the day's budget is spent the remaining symbols are not
asked for, and :attr:`AlphaVantageSource.unfetched` says which. The provider's own answers
are read the same way: a rate-limit ``Note``/``Information`` about the minute is waited
out and retried, one about the day stops the run's requests; an ``Error Message`` (an
unknown symbol) leaves that symbol out. Intraday timestamps are New York wall-clock bar
starts (regular hours: 09:30 .. 15:59).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from stockpipe import metrics
from stockpipe.quote_spec import EXCHANGE_TZ
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

# Intraday history goes back to 2000, a month a call; daily in one call.
HISTORY_LIMITS = {
    "1m": HistoryLimit(days_per_request=31),
    "1d": HistoryLimit(days_per_request=None),
}
_FIELDS = {"1. open": "open", "2. high": "high", "3. low": "low", "4. close": "close"}


class DailyBudgetSpent(RuntimeError):
    """The provider says the key's calls for the day are used up."""


class AlphaVantageSource:
    """1-minute and daily bars from Alpha Vantage.

    Args:
        api_key: the account's key (a secret: never logged).
        url: the API endpoint (``STOCKPIPE_SOURCE__ALPHAVANTAGE_URL``; tests: a local server).
        budget: the plan's calls a minute and a day.
        retry: how a rate-limit note about the minute, a 5xx or a network error is retried.
    """

    name = "alphavantage"

    def __init__(
        self,
        api_key: str,
        url: str,
        budget: CallBudget,
        timeout_seconds: float = 30.0,
        retry: RetryPolicy | None = None,
    ):
        import requests

        self._key = api_key
        self.url = url
        self.budget = budget
        self.timeout_seconds = timeout_seconds
        self.retry = retry or RetryPolicy()
        self._session = requests.Session()
        self.missing: list[str] = []
        self.unfetched: list[str] = []
        # The last response per symbol and request: a backfill's windows share a month.
        self._cache: dict[str, tuple[tuple, pd.DataFrame]] = {}

    def history_limit(self, interval: Interval) -> HistoryLimit:
        return HISTORY_LIMITS[interval]

    def fetch(
        self, symbols: Sequence[str], start: datetime, end: datetime, interval: Interval = "1m"
    ) -> pd.DataFrame:
        frames = []
        self.missing, self.unfetched = [], []
        requests_ = _requests_for(start, end, interval)
        for symbol in dict.fromkeys(s.upper() for s in symbols):
            got = []
            for params in requests_:
                series = self._series(symbol, params)
                if series is None:  # the day's budget is spent
                    break
                got.append(series)
            else:
                bars = _bars(symbol, got, interval, start, end)
                if bars.empty:
                    self.missing.append(symbol)
                frames.append(bars)
                continue
            self.unfetched.append(symbol)
        if self.unfetched:
            log.warning(
                "Alpha Vantage: the day's budget of %s calls is spent; not fetched: %s "
                "(STOCKPIPE_SOURCE__ALPHAVANTAGE_CALLS_PER_DAY; the next run fetches them)",
                self.budget.per_day,
                ", ".join(self.unfetched),
            )
        if self.missing:
            log.warning("Alpha Vantage returned no bars for: %s", ", ".join(self.missing))
        return pd.concat(frames, ignore_index=True) if frames else empty_bars()

    def _series(self, symbol: str, params: dict[str, str]) -> pd.DataFrame | None:
        """One response's time series as a frame (empty for an unknown symbol), or None
        when the day's budget is spent."""
        key = tuple(sorted(params.items()))
        cached = self._cache.get(symbol)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            series = self.retry.call(
                lambda: self._get(symbol, params),
                (ProviderUnavailable,),
                f"Alpha Vantage {params['function']} of {symbol}",
            )
        except DailyBudgetSpent as exc:
            log.warning("Alpha Vantage: %s", exc)
            self.budget.spend_day()
            return None
        self._cache[symbol] = (key, series)
        return series

    def _get(self, symbol: str, params: dict[str, str]) -> pd.DataFrame:
        import requests

        if not self.budget.acquire():
            raise DailyBudgetSpent(f"the day's budget of {self.budget.per_day} calls is spent")
        query = {**params, "symbol": symbol, "datatype": "json", "apikey": self._key}
        try:
            response = self._session.get(self.url, params=query, timeout=self.timeout_seconds)
        except requests.RequestException as exc:
            metrics.FETCH_ERRORS.labels(self.name, "network").inc()
            raise unavailable("Alpha Vantage", exc, self._key) from None
        if response.status_code == 429 or response.status_code >= 500:
            metrics.FETCH_ERRORS.labels(self.name, f"http_{response.status_code}").inc()
            raise ProviderUnavailable(f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            metrics.FETCH_ERRORS.labels(self.name, "invalid_response").inc()
            raise ProviderUnavailable(
                f"not JSON (HTTP {response.status_code}): {response.text[:200]!r}"
            ) from None
        return self._read(symbol, body)

    def _read(self, symbol: str, body: dict) -> pd.DataFrame:
        notice = str(body.get("Note") or body.get("Information") or "")
        if notice:
            text = scrubbed(notice, self._key)
            lowered = text.lower()
            # "... call frequency is 5 calls per minute and 500 calls per day": the minute's
            # (waited out); "... rate limit is 25 requests per day": the day's.
            if "per minute" in lowered or "frequency" in lowered:
                metrics.FETCH_ERRORS.labels(self.name, "rate_limit").inc()
                raise ProviderUnavailable(text)
            if "per day" in lowered:
                metrics.FETCH_ERRORS.labels(self.name, "daily_limit").inc()
                raise DailyBudgetSpent(text)
            raise ProviderRefused(
                f"Alpha Vantage refused {symbol}: {text} "
                "(STOCKPIPE_SOURCE__ALPHAVANTAGE_API_KEY and its plan)"
            )
        if "Error Message" in body:
            message = scrubbed(str(body["Error Message"]), self._key)
            log.info("Alpha Vantage: %s: %s", symbol, message)
            return pd.DataFrame()
        series = next((v for k, v in body.items() if k.startswith("Time Series")), None)
        if not isinstance(series, dict):
            metrics.FETCH_ERRORS.labels(self.name, "invalid_response").inc()
            raise ProviderUnavailable(f"no time series in the answer for {symbol}: {list(body)}")
        return pd.DataFrame.from_dict(series, orient="index")


def _requests_for(start: datetime, end: datetime, interval: Interval) -> list[dict[str, str]]:
    """The query parameters that cover ``[start, end)``: a month each for minute bars."""
    if interval == "1d":
        return [{"function": "TIME_SERIES_DAILY", "outputsize": "full"}]
    first = pd.Timestamp(start).tz_convert(EXCHANGE_TZ).tz_localize(None)
    last = pd.Timestamp(end).tz_convert(EXCHANGE_TZ).tz_localize(None) - pd.Timedelta(seconds=1)
    months = pd.period_range(first.to_period("M"), last.to_period("M"), freq="M")
    return [
        {
            "function": "TIME_SERIES_INTRADAY",
            "interval": "1min",
            "outputsize": "full",
            "extended_hours": "false",
            "adjusted": "false",
            "month": str(month),
        }
        for month in months
    ]


def _bars(
    symbol: str, series: list[pd.DataFrame], interval: Interval, start: datetime, end: datetime
) -> pd.DataFrame:
    present = [part for part in series if not part.empty]
    if not present:
        return empty_bars()
    frame = pd.concat(present)
    frame = frame[~frame.index.duplicated()]
    index = pd.to_datetime(frame.index)
    starts = (
        pd.DatetimeIndex(index).normalize()
        if interval == "1d"
        else pd.DatetimeIndex(index).tz_localize(EXCHANGE_TZ)
    )
    values = frame.rename(columns=_FIELDS)
    volume = values[next(c for c in values.columns if c.endswith("volume"))]
    return bars_frame(
        symbol,
        starts,
        values["open"],
        values["high"],
        values["low"],
        values["close"],
        volume,
        interval,
        start,
        end,
    ).sort_values("ts", ignore_index=True)
