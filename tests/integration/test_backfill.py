"""Backfill on the real broker: a year of daily bars from each source, published once, drained
and built into the marts; the CLI's progress and summary."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stockpipe import market_calendar as mc
from stockpipe.backfill import backfill
from stockpipe.cli import main
from stockpipe.drain import drain_prices
from stockpipe.retry import RetryPolicy
from stockpipe.settings import Settings
from stockpipe.sources.replay import ReplaySource
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.sources.yahoo import YahooFinanceSource
from stockpipe.warehouse import Warehouse
from tests.support import build_marts, read_topic, set_up_warehouse

pytestmark = pytest.mark.integration
SYMBOLS = ["AAPL", "MSFT"]
FIRST, LAST = date(2024, 11, 1), date(2025, 11, 28)
NOW = datetime(2025, 12, 1, 12, tzinfo=UTC)


class RateLimitedYahoo:
    """``yfinance.download`` for daily bars as yfinance 1.7 returns them (columns
    (Price, Ticker), tz-naive ``Date`` index since ``ignore_tz`` defaults to True for daily
    intervals), answering the first request with Yahoo's rate-limit error."""

    def __init__(self, market: SimulatedMarket):
        self.market = market
        self.requests: list[dict] = []

    def __call__(self, **kwargs) -> pd.DataFrame:
        self.requests.append(kwargs)
        if len(self.requests) == 1:
            raise RuntimeError("Too Many Requests. Rate limited. Try after a while.")
        assert kwargs["interval"] == "1d"
        start, end = pd.Timestamp(kwargs["start"]), pd.Timestamp(kwargs["end"])
        first = mc.session_opens(start.date(), (end - pd.Timedelta(days=1)).date())
        bars = self.market.daily_bars(kwargs["tickers"], first.index[0], first.index[-1])
        bars["Date"] = bars["ts"].dt.tz_convert("America/New_York").dt.normalize()
        bars["Date"] = bars["Date"].dt.tz_localize(None)
        wide = bars.pivot(index="Date", columns="symbol")
        columns = {"open": "Open", "high": "High", "low": "Low", "close": "Close"}
        frame = pd.DataFrame(index=wide.index)
        for ticker in kwargs["tickers"]:
            for ours, theirs in columns.items():
                frame[(theirs, ticker)] = wide[(ours, ticker)]
            frame[("Adj Close", ticker)] = wide[("close", ticker)] * 0.98
            frame[("Volume", ticker)] = wide[("volume", ticker)].astype(float)
        frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["Price", "Ticker"])
        return frame.sort_index(axis=1)


def replay_file(tmp_path: Path) -> Path:
    """A year of daily bars as a CSV a user would export: one row per symbol and date."""
    bars = SimulatedMarket(seed=3).daily_bars(SYMBOLS, FIRST, LAST)
    bars["timestamp"] = bars["ts"].dt.tz_convert("America/New_York").dt.strftime("%Y-%m-%d")
    path = tmp_path / "daily.csv"
    bars.drop(columns="ts").to_csv(path, index=False)
    return path


@pytest.mark.parametrize("kind", ["simulated", "replay", "yfinance"])
def test_a_year_of_daily_bars_fills_the_trend_figures_once(
    env_settings: Settings, tmp_path: Path, kind: str
) -> None:
    if kind == "simulated":
        source = SimulatedMarket(seed=3)
    elif kind == "replay":
        source = ReplaySource(replay_file(tmp_path))
    else:
        yahoo = RateLimitedYahoo(SimulatedMarket(seed=3))
        source = YahooFinanceSource(download=yahoo, retry=RetryPolicy(sleep=lambda _: None))
    sessions = len(mc.sessions_between(FIRST, LAST))

    first = backfill(env_settings, FIRST, LAST, "1d", SYMBOLS, source=source, now=NOW)
    assert (first.published, first.unchanged, sum(first.rejected.values())) == (
        2 * sessions,
        0,
        0,
    )
    again = backfill(env_settings, FIRST, LAST, "1d", SYMBOLS, source=source, now=NOW)
    assert (again.published, again.unchanged) == (0, 2 * sessions)
    if kind == "yfinance":
        # The rate-limited request was retried, and days were asked for by date.
        assert len(yahoo.requests) == 3
        assert yahoo.requests[1]["start"] == FIRST and yahoo.requests[1]["interval"] == "1d"

    topic = env_settings.kafka.prices_topic
    messages = [json.loads(m.value()) for m in read_topic(env_settings, topic)]
    assert len(messages) == 2 * sessions
    assert {m["interval"] for m in messages} == {"1d"}
    assert {m["source"] for m in messages} == {source.name}
    # A daily bar starts at its session's open.
    opens = {s.open for s in mc.sessions_between(FIRST, LAST)}
    assert {datetime.fromisoformat(m["ts"]) for m in messages} == opens

    set_up_warehouse(env_settings)
    with Warehouse.connect(env_settings, "load") as warehouse:
        drain_prices(env_settings, warehouse)
    with Warehouse.connect(env_settings, "transform") as warehouse:
        build_marts(warehouse)
        last = warehouse.query_frame(
            "select symbol, session_date, close, sma_50, rsi_14, volatility_30, high_52w, "
            "figures_from from MARTS.DAILY_TRENDS where session_date = %s order by symbol",
            (LAST,),
        )
        count = warehouse.query("select count(*) from MARTS.DAILY_TRENDS")[0][0]
    assert count == 2 * sessions
    assert last["symbol"].tolist() == SYMBOLS
    assert last[["sma_50", "rsi_14", "volatility_30", "high_52w"]].notna().all().all()
    assert (last["figures_from"] == "1d").all()
    expected = SimulatedMarket(seed=3).daily_bars(SYMBOLS, LAST, LAST)
    np.testing.assert_allclose(last["close"], expected["close"], rtol=1e-9)


def test_the_cli_shows_progress_and_a_second_run_publishes_nothing(
    env_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["backfill", "--from", "2025-06-02", "--to", "2025-11-28", "--symbols", "AAPL", "MSFT"]
    assert main([*args, "--interval", "1d"]) == 0
    out, errors = capsys.readouterr()
    sessions = len(mc.sessions_between("2025-06-02", "2025-11-28"))
    assert f"published {2 * sessions}, already published 0" in out
    assert "backfill 1d: window 1/1 (2025-06-02..2025-11-28)" in errors
    assert "next: 'stockpipe drain'" in out

    assert main([*args, "--interval", "1d"]) == 0
    assert f"published 0, already published {2 * sessions}" in capsys.readouterr().out

    # Minute bars of the same sessions are other bars: published, in week-long windows.
    assert (
        main(
            [
                "backfill",
                "--symbols",
                "AAPL",
                "MSFT",
                "--from",
                "2025-11-24",
                "--to",
                "2025-11-28",
                "--interval",
                "1m",
            ]
        )
        == 0
    )
    out, errors = capsys.readouterr()
    assert "published 2760" in out  # (3 full sessions + the half day) x 2 symbols
    assert "window 1/1" in errors

    assert main(["backfill", "--from", "2025-11-28", "--to", "2025-11-01"]) == 2  # usage
    errors = capsys.readouterr().err
    assert "error: --from 2025-11-28 is after --to 2025-11-01" in errors
    assert "ValueError" not in errors


def test_a_range_without_a_session_says_so_once(env_settings: Settings) -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stockpipe.cli",
            "backfill",
            "--from",
            "2025-11-29",
            "--to",
            "2025-11-30",
        ],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("no NYSE session from 2025-11-29 to 2025-11-30") == 1, done.stderr


def test_a_backfill_killed_after_its_first_window_then_run_again_loads_every_bar_once(
    env_settings: Settings,
) -> None:
    """kill -9 once the first of three weekly windows is reported published (the second may
    be in flight): the same command again publishes what is missing, and after a drain the
    warehouse holds every minute of the range once."""
    import os
    import signal
    import subprocess
    import sys

    command = [
        sys.executable,
        "-m",
        "stockpipe.cli",
        "backfill",
        "--interval",
        "1m",
        "--from",
        "2025-11-03",
        "--to",
        "2025-11-21",
        "--symbols",
        *SYMBOLS,
    ]
    first = subprocess.Popen(
        command, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert first.stderr is not None
    seen = []
    for line in first.stderr:
        seen.append(line)
        if "window 1/3" in line:
            first.send_signal(signal.SIGKILL)
            break
    first.wait(60)
    assert first.returncode == -signal.SIGKILL, "".join(seen)

    again = subprocess.run(
        command, env=os.environ.copy(), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    sessions = mc.sessions_between("2025-11-03", "2025-11-21")
    total = sum(len(s.minutes) for s in sessions) * len(SYMBOLS)
    first_window = sum(len(s.minutes) for s in sessions[:5]) * len(SYMBOLS)
    published, unchanged = (
        int(n)
        for n in re.search(r"published (\d+), already published (\d+)", again.stdout).groups()
    )
    assert unchanged >= first_window and published + unchanged == total, again.stdout

    set_up_warehouse(env_settings)
    with Warehouse.connect(env_settings) as warehouse:
        drain_prices(env_settings, warehouse)
        rows, keys = warehouse.query(
            "select count(*), count(distinct (symbol, ts)) from RAW.STOCK_PRICES "
            "where bar_interval = '1m'"
        )[0]
    assert rows == keys == total
