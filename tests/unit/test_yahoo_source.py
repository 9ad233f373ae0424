"""yfinance source: mapping of yfinance's frames and retry logic, faked at the
``yfinance.download`` boundary with frames shaped like yfinance 1.7 returns them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from stockpipe.ingest import check_bars
from stockpipe.retry import RetryPolicy
from stockpipe.sources.yahoo import YahooFinanceSource, YahooUnavailable, bars_from_download

START = datetime(2025, 11, 26, 14, 30, tzinfo=UTC)
END = datetime(2025, 11, 26, 14, 35, tzinfo=UTC)


def yf_frame(tickers: list[str], minutes: int = 5, gaps: dict[str, list[int]] | None = None):
    """A frame as ``yf.download(..., group_by='column', auto_adjust=False)`` returns it."""
    index = pd.date_range("2025-11-26 09:30", periods=minutes, freq="min", tz="America/New_York")
    index.name = "Datetime"
    columns = {}
    for n, ticker in enumerate(tickers):
        base = 100.0 + 10 * n + np.arange(minutes) * 0.1
        values = {
            "Adj Close": base + 0.05,
            "Close": base + 0.05,
            "High": base + 0.2,
            "Low": base - 0.2,
            "Open": base,
            "Volume": np.full(minutes, 1000.0),
        }
        for field, series in values.items():
            series = series.copy()
            for gap in (gaps or {}).get(ticker, []):
                series[gap] = np.nan
            columns[(field, ticker)] = series
    frame = pd.DataFrame(columns, index=index)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["Price", "Ticker"])
    return frame.sort_index(axis=1, level=0)


class FakeDownload:
    """Records calls; serves scripted outcomes (frames, exceptions, or logged rate limits)."""

    def __init__(self, outcomes: list) -> None:
        self.outcomes = outcomes
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        tickers = kwargs["tickers"]
        if outcome == "rate-limited":
            # What yfinance does: log per-ticker errors, return an all-NaN frame.
            logging.getLogger("yfinance").error(
                "%s: YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')",
                tickers,
            )
            return yf_frame(tickers) * np.nan
        if isinstance(outcome, Exception):
            raise outcome
        return yf_frame(tickers)


def source(download: FakeDownload, chunk_size: int = 50) -> YahooFinanceSource:
    return YahooFinanceSource(
        chunk_size=chunk_size,
        retry=RetryPolicy(max_retries=3, sleep=lambda s: None),
        download=download,
    )


def test_mapping_to_bars_drops_nan_rows_and_converts_to_utc() -> None:
    frame = yf_frame(["AAPL", "MSFT"], gaps={"MSFT": [1, 3]})
    bars = bars_from_download(frame, ["AAPL", "MSFT"])
    assert list(bars.columns) == ["symbol", "ts", "open", "high", "low", "close", "volume"]
    assert (bars["symbol"] == "AAPL").sum() == 5
    assert (bars["symbol"] == "MSFT").sum() == 3
    assert bars["ts"].iloc[0] == pd.Timestamp("2025-11-26 14:30", tz="UTC")
    assert check_bars(bars, "yfinance").rejected_total == 0


def test_one_batched_download_per_chunk() -> None:
    fake = FakeDownload([])
    tickers = [f"T{i}" for i in range(120)]
    bars = source(fake, chunk_size=50).fetch(tickers, START, END)
    assert [len(c["tickers"]) for c in fake.calls] == [50, 50, 20]
    assert all(c["interval"] == "1m" and c["progress"] is False for c in fake.calls)
    assert bars["symbol"].nunique() == 120


def test_rate_limit_is_retried_with_backoff() -> None:
    fake = FakeDownload(["rate-limited", "rate-limited", "ok"])
    sleeps: list[float] = []
    src = YahooFinanceSource(
        retry=RetryPolicy(max_retries=3, base_seconds=1.0, max_seconds=8.0, sleep=sleeps.append),
        download=fake,
    )
    bars = src.fetch(["AAPL"], START, END)
    assert len(fake.calls) == 3
    assert len(sleeps) == 2 and all(0 <= s <= 2.0 for s in sleeps)
    assert len(bars) == 5


def test_network_errors_are_retried_then_surface() -> None:
    fake = FakeDownload([ConnectionError("connection reset")] * 4)
    with pytest.raises(YahooUnavailable, match="connection reset"):
        source(fake).fetch(["AAPL"], START, END)
    assert len(fake.calls) == 4  # first try + 3 retries


def test_non_transient_errors_are_not_retried() -> None:
    fake = FakeDownload([KeyError("Ticker")])
    with pytest.raises(KeyError):
        source(fake).fetch(["AAPL"], START, END)
    assert len(fake.calls) == 1


def test_unknown_ticker_is_reported_not_fatal() -> None:
    def download(**kwargs):
        frame = yf_frame(kwargs["tickers"])
        frame.loc[:, (slice(None), "DELISTED")] = np.nan
        logging.getLogger("yfinance").error("['DELISTED']: possibly delisted; no price data found")
        return frame

    src = YahooFinanceSource(download=download, retry=RetryPolicy(sleep=lambda s: None))
    bars = src.fetch(["AAPL", "DELISTED"], START, END)
    assert set(bars["symbol"]) == {"AAPL"}
    assert src.missing == ["DELISTED"]
