"""Backfill planning and the sources' daily bars, without a broker."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from stockpipe import market_calendar as mc
from stockpipe.backfill import plan_backfill
from stockpipe.ingest import check_bars
from stockpipe.retry import RetryPolicy
from stockpipe.sources.replay import ReplayFileError, ReplaySource
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.sources.yahoo import YahooFinanceSource, bars_from_download

NOW = datetime(2025, 12, 1, 18, tzinfo=UTC)  # a Monday, the session in progress


def recorded_yahoo() -> tuple[YahooFinanceSource, list[dict]]:
    requests: list[dict] = []

    def download(**kwargs) -> pd.DataFrame:
        requests.append(kwargs)
        return pd.DataFrame()

    return YahooFinanceSource(download=download, retry=RetryPolicy(sleep=lambda _: None)), requests


def test_minute_history_from_yahoo_is_cut_to_what_it_serves() -> None:
    source, requests = recorded_yahoo()
    plan = plan_backfill(source, "1m", date(2025, 9, 1), date(2025, 12, 31), now=NOW)
    # The last 30 days only, closed sessions only, at most 7 days a request.
    assert plan.windows[0].first == date(2025, 11, 3)
    assert plan.windows[-1].last == date(2025, 11, 28)
    assert any("last 30 days only" in note for note in plan.notes)
    assert any("not closed yet" in note for note in plan.notes)
    assert plan.sessions == len(mc.sessions_between("2025-11-03", "2025-11-28"))
    for window in plan.windows:
        assert window.end - window.start <= timedelta(days=7)
        source.fetch(["AAPL"], window.start, window.end, "1m")
    assert all(r["interval"] == "1m" for r in requests)
    assert [r["start"] for r in requests] == [w.start for w in plan.windows]


def test_daily_history_is_asked_by_date_a_decade_at_a_time() -> None:
    source, requests = recorded_yahoo()
    plan = plan_backfill(source, "1d", date(2000, 1, 1), date(2025, 11, 28), now=NOW)
    assert [(w.first.year, w.last.year) for w in plan.windows] == [
        (2000, 2009),
        (2009, 2019),
        (2019, 2025),
    ]
    window = plan.windows[-1]
    source.fetch(["AAPL"], window.start, window.end, "1d")
    # Yahoo's end date is exclusive: the last session's date + 1.
    assert (requests[0]["start"], requests[0]["end"]) == (window.first, date(2025, 11, 29))


def test_a_range_without_sessions_or_backwards_is_said_plainly() -> None:
    source = SimulatedMarket()
    assert plan_backfill(source, "1d", date(2025, 12, 25), date(2025, 12, 25)).notes == [
        "no NYSE session from 2025-12-25 to 2025-12-25"
    ]
    with pytest.raises(ValueError, match="--from 2025-12-02 is after --to 2025-12-01"):
        plan_backfill(source, "1d", date(2025, 12, 2), date(2025, 12, 1))
    with pytest.raises(ValueError, match="outside the NYSE calendar"):
        plan_backfill(source, "1d", date(1985, 1, 2), date(1986, 1, 2))


def test_a_simulated_daily_bar_is_the_aggregate_of_its_minute_bars() -> None:
    market = SimulatedMarket(seed=11)
    for day in ("2025-11-26", "2025-11-28"):  # a full day and a half day
        session = mc.session(day)
        minutes = market.session_bars("NVDA", session)
        daily = market.fetch(["NVDA"], session.open, session.close, "1d")
        assert daily["ts"].tolist() == [pd.Timestamp(session.open)]
        bar = daily.iloc[0]
        assert bar["open"] == minutes["open"].iloc[0]
        assert bar["high"] == minutes["high"].max() and bar["low"] == minutes["low"].min()
        assert bar["close"] == minutes["close"].iloc[-1]
        assert bar["volume"] == minutes["volume"].sum()


def test_yahoo_daily_rows_start_at_their_sessions_open() -> None:
    index = pd.DatetimeIndex(["2025-11-26", "2025-11-28", "2025-11-29"], name="Date")
    frame = pd.DataFrame(
        {
            ("Adj Close", "AAPL"): [1.0, 1.0, 1.0],
            ("Close", "AAPL"): [10.5, 10.6, 10.7],
            ("High", "AAPL"): [11.0, 11.0, 11.0],
            ("Low", "AAPL"): [9.0, 9.0, 9.0],
            ("Open", "AAPL"): [10.0, 10.0, 10.0],
            ("Volume", "AAPL"): [5e6, 2e6, 1e6],
        },
        index=index,
    )
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["Price", "Ticker"])
    bars = bars_from_download(frame, ["AAPL"], "1d")
    assert bars["ts"].iloc[0] == pd.Timestamp("2025-11-26 14:30", tz="UTC")
    assert bars["ts"].iloc[1] == pd.Timestamp("2025-11-28 14:30", tz="UTC")
    # A Saturday is no session: the contract rejects that row, counted, not dropped silently.
    check = check_bars(bars, "yfinance", interval="1d")
    assert len(check.quotes) == 2 and check.rejected_total == 1
    assert {q.interval for q in check.quotes} == {"1d"}


def test_a_replay_file_of_dates_is_daily_bars(tmp_path: Path) -> None:
    path = tmp_path / "daily.csv"
    path.write_text(
        "symbol,timestamp,open,high,low,close,volume\n"
        "aapl,2025-11-26,10,11,9,10.5,100\n"
        "aapl,2025-11-28,10,11,9,10.5,100\n"
    )
    source = ReplaySource(path)
    start, end = datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC)
    daily = source.fetch(["AAPL"], start, end, "1d")
    assert daily["ts"].tolist() == [
        pd.Timestamp(mc.session("2025-11-26").open),
        pd.Timestamp(mc.session("2025-11-28").open),
    ]
    assert source.fetch(["AAPL"], start, end, "1m").empty


def test_a_replay_files_interval_column_decides_and_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "symbol,timestamp,interval,open,high,low,close,volume\n"
        "AAPL,2025-11-26T14:30:00Z,1m,10,11,9,10.5,100\n"
        "AAPL,2025-11-26T09:30:00-05:00,1d,10,11,9,10.5,100\n"
    )
    source = ReplaySource(path)
    start, end = datetime(2025, 11, 26, tzinfo=UTC), datetime(2025, 11, 27, tzinfo=UTC)
    assert len(source.fetch(["AAPL"], start, end, "1m")) == 1
    assert len(source.fetch(["AAPL"], start, end, "1d")) == 1
    path.write_text(path.read_text().replace(",1d,", ",1w,"))
    with pytest.raises(ReplayFileError, match=r"'interval' has '1w' at line 3"):
        ReplaySource(path).load()
    path.write_text(
        "symbol,timestamp,open,high,low,close,volume\nAAPL,2025-11-27,10,11,9,10.5,100\n"
    )
    with pytest.raises(ReplayFileError, match=r"line 2 is dated '2025-11-27', not an NYSE"):
        ReplaySource(path).load()
