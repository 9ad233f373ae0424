"""Quotes from Yahoo Finance through yfinance: one batched ``yf.download`` per chunk.

Yahoo rate-limits hard, so the watchlist is fetched in chunks (one request batch each, not
one call per ticker), and a chunk that fails as a whole (rate limit, network) is retried
with exponential backoff and jitter. A ticker that Yahoo does not know is reported and
skipped; it does not fail the chunk.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pandas as pd

from stockpipe import metrics
from stockpipe.quote_spec import BAR_FIELDS, EXCHANGE_TZ
from stockpipe.retry import RetryPolicy
from stockpipe.sources import HistoryLimit, Interval, daily_bar_ts, empty_bars
from stockpipe.sources.providers import network_problem

log = logging.getLogger(__name__)

YF_PRICE_COLUMNS = {
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Volume": "volume",
}
# Yahoo serves 1-minute bars of the last 30 days only, at most 8 days per request; daily
# bars back to each listing (a decade per request keeps each response small).
HISTORY_LIMITS: dict[str, HistoryLimit] = {
    "1m": HistoryLimit(max_age_days=30, days_per_request=7),
    "1d": HistoryLimit(days_per_request=3650),
}
_TRANSIENT_MARKERS = ("rate limit", "too many requests", "timed out", "timeout", "connection")


class YahooUnavailable(RuntimeError):
    """Yahoo refused or failed a whole request (rate limit, network); worth retrying."""


class _ErrorCapture(logging.Handler):
    """yfinance logs per-ticker failures instead of raising; we read them to classify."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _default_download() -> Callable[..., pd.DataFrame]:
    import yfinance

    return yfinance.download


class YahooFinanceSource:
    """1-minute and daily bars from Yahoo Finance.

    Args:
        download: the ``yfinance.download`` function (tests pass a fake of the same shape).
    """

    name = "yfinance"

    def __init__(
        self,
        chunk_size: int = 50,
        retry: RetryPolicy | None = None,
        download: Callable[..., pd.DataFrame] | None = None,
    ):
        self.chunk_size = chunk_size
        self.retry = retry or RetryPolicy()
        self._download = download or _default_download()
        self.missing: list[str] = []

    def history_limit(self, interval: Interval) -> HistoryLimit:
        return HISTORY_LIMITS[interval]

    def fetch(
        self, symbols: Sequence[str], start: datetime, end: datetime, interval: Interval = "1m"
    ) -> pd.DataFrame:
        frames = []
        self.missing = []
        symbols = list(dict.fromkeys(s.upper() for s in symbols))
        for i in range(0, len(symbols), self.chunk_size):
            chunk = symbols[i : i + self.chunk_size]
            raw = self.retry.call(
                lambda chunk=chunk: self._download_chunk(chunk, start, end, interval),
                (YahooUnavailable,),
                f"yfinance download of {len(chunk)} tickers",
            )
            bars = bars_from_download(raw, chunk, interval)
            if interval == "1d":
                # Asked by date; keep the sessions that open inside the window.
                in_window = (bars["ts"] >= start) & (bars["ts"] < end) | bars["ts"].isna()
                bars = bars[in_window].reset_index(drop=True)
            returned = set(bars["symbol"].unique())
            self.missing += [s for s in chunk if s not in returned]
            frames.append(bars)
        if self.missing:
            log.warning("yfinance returned no bars for: %s", ", ".join(self.missing))
        return pd.concat(frames, ignore_index=True) if frames else empty_bars()

    def _download_chunk(
        self, chunk: list[str], start: datetime, end: datetime, interval: Interval
    ) -> pd.DataFrame:
        if interval == "1d":
            # Daily bars are asked for by New York date (the end date is exclusive).
            start = start.astimezone(EXCHANGE_TZ).date()
            end = end.astimezone(EXCHANGE_TZ).date() + timedelta(days=1)
        capture = _ErrorCapture()
        yf_logger = logging.getLogger("yfinance")
        yf_logger.addHandler(capture)
        # yfinance's own lines (a failed download logs several per ticker) and the pandas
        # deprecation warnings it triggers are for the log, not the terminal: what went
        # wrong is said once, by the error raised below.
        propagates, yf_logger.propagate = yf_logger.propagate, False
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                frame = self._download(
                    tickers=chunk,
                    start=start,
                    end=end,
                    interval=interval,
                    group_by="column",
                    auto_adjust=False,
                    actions=False,
                    prepost=False,
                    progress=False,
                    threads=True,
                    multi_level_index=True,
                )
            for warning in caught:
                log.debug("yfinance: %s", warning.message)
        except Exception as exc:  # yfinance raises bare requests/curl errors
            if _is_transient(str(exc)) or isinstance(exc, (ConnectionError, TimeoutError)):
                metrics.FETCH_ERRORS.labels(self.name, "network").inc()
                raise _unreachable(f"{type(exc).__name__}: {exc}") from exc
            metrics.FETCH_ERRORS.labels(self.name, type(exc).__name__).inc()
            raise
        finally:
            yf_logger.removeHandler(capture)
            yf_logger.propagate = propagates
        errors = " | ".join(capture.messages)
        for message in capture.messages:
            log.debug("yfinance: %s", message)
        if (frame is None or frame.dropna(how="all").empty) and _is_transient(errors):
            metrics.FETCH_ERRORS.labels(self.name, "rate_limit_or_network").inc()
            raise _unreachable(errors or "empty response")
        return frame if frame is not None else pd.DataFrame()


def _unreachable(text: str) -> YahooUnavailable:
    """One readable line for a failed download: what the network said, else yfinance's text."""
    problem = network_problem(text)
    return YahooUnavailable(f"cannot reach Yahoo Finance: {problem}" if problem else text)


def _is_transient(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _TRANSIENT_MARKERS) or bool(network_problem(message))


def bars_from_download(
    frame: pd.DataFrame, tickers: Sequence[str], interval: Interval = "1m"
) -> pd.DataFrame:
    """Map yfinance's (Price, Ticker) multi-index frame to :data:`BAR_FIELDS` rows.

    Rows where any price or the volume is NaN (minutes a ticker did not trade, filled in by
    yfinance's reindexing across tickers) are dropped. Daily rows are indexed by their
    session's date (midnight New York); their ``ts`` becomes the session's open (NaT for a
    date that is not a session, which the contract then rejects).
    """
    if frame is None or frame.empty:
        return empty_bars()
    columns = frame.columns
    if not isinstance(columns, pd.MultiIndex):
        if len(tickers) != 1:
            raise ValueError("yfinance returned a flat frame for several tickers")
        columns = pd.MultiIndex.from_product([columns, [tickers[0]]], names=["Price", "Ticker"])
        frame = frame.set_axis(columns, axis=1)
    price_level = 0 if set(YF_PRICE_COLUMNS) & set(columns.get_level_values(0)) else 1
    ticker_level = 1 - price_level
    frames = []
    for ticker in columns.get_level_values(ticker_level).unique():
        sub = frame.xs(ticker, axis=1, level=ticker_level)
        missing = [c for c in YF_PRICE_COLUMNS if c not in sub.columns]
        if missing:
            raise ValueError(f"yfinance frame for {ticker} lacks {', '.join(missing)}")
        sub = sub[list(YF_PRICE_COLUMNS)].rename(columns=YF_PRICE_COLUMNS).dropna(how="any")
        if sub.empty:
            continue
        index = pd.DatetimeIndex(sub.index)
        if interval == "1d":
            days = (
                index.tz_localize(None)
                if index.tz is None
                else index.tz_convert(EXCHANGE_TZ).tz_localize(None)
            )
            ts = pd.DatetimeIndex(daily_bar_ts(days.normalize()))
        else:
            ts = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
        bars = sub.reset_index(drop=True)
        bars.insert(0, "ts", ts)
        bars.insert(0, "symbol", str(ticker).upper())
        frames.append(bars)
    if not frames:
        return empty_bars()
    return pd.concat(frames, ignore_index=True)[list(BAR_FIELDS)]
