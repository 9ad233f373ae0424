"""The simulated market: deterministic, realistic, valid under the contract."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd

from stockpipe import market_calendar as mc
from stockpipe.ingest import check_bars
from stockpipe.sources.simulated import SimulatedMarket

SYMBOLS = ["AAPL", "MSFT", "XOM"]
FULL_DAY = mc.session("2025-11-26")
HALF_DAY = mc.session("2025-11-28")


def test_same_seed_same_bars_other_seed_other_bars() -> None:
    a = SimulatedMarket(seed=7).fetch(SYMBOLS, FULL_DAY.open, FULL_DAY.close)
    b = SimulatedMarket(seed=7).fetch(SYMBOLS, FULL_DAY.open, FULL_DAY.close)
    c = SimulatedMarket(seed=8).fetch(SYMBOLS, FULL_DAY.open, FULL_DAY.close)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["close"], c["close"])


def test_one_bar_per_minute_of_the_real_session() -> None:
    bars = SimulatedMarket().fetch(SYMBOLS, FULL_DAY.open, HALF_DAY.close)
    per_day = bars.groupby([bars["ts"].dt.tz_convert("America/New_York").dt.date, "symbol"])
    sizes = per_day.size().unstack()
    assert sizes.loc[FULL_DAY.day].tolist() == [390, 390, 390]
    assert sizes.loc[HALF_DAY.day].tolist() == [210, 210, 210]  # early close at 13:00
    assert len(sizes) == 2  # Thanksgiving has no bars


def test_bars_are_valid_ohlc_and_pass_the_contract() -> None:
    bars = SimulatedMarket().fetch(SYMBOLS, FULL_DAY.open, FULL_DAY.close)
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["low"] > 0).all() and (bars["volume"] >= 0).all()
    check = check_bars(bars, "simulated")
    assert check.rejected_total == 0
    assert len(check.quotes) == len(bars)


def test_intraday_volume_is_u_shaped() -> None:
    bars = SimulatedMarket().fetch(SYMBOLS, FULL_DAY.open, FULL_DAY.close)
    minute = bars.groupby("symbol").cumcount()
    open_half_hour = bars.loc[minute < 30, "volume"].mean()
    midday = bars.loc[(minute >= 165) & (minute < 225), "volume"].mean()
    last_half_hour = bars.loc[minute >= 360, "volume"].mean()
    assert open_half_hour > 1.8 * midday
    assert last_half_hour > 1.8 * midday


def test_slices_of_a_session_add_up_to_the_session() -> None:
    market = SimulatedMarket()
    whole = market.fetch(SYMBOLS, FULL_DAY.open, FULL_DAY.close)
    edges = [FULL_DAY.open, FULL_DAY.minutes[100], FULL_DAY.minutes[250], FULL_DAY.close]
    parts = pd.concat([market.fetch(SYMBOLS, lo, hi) for lo, hi in pairwise(edges)])
    key = ["symbol", "ts"]
    pd.testing.assert_frame_equal(
        whole.sort_values(key).reset_index(drop=True),
        parts.sort_values(key).reset_index(drop=True),
    )


def test_sessions_are_continuous_and_prices_plausible() -> None:
    market = SimulatedMarket()
    days = mc.sessions_between("2025-11-03", "2025-11-26")
    closes = []
    for session in days:
        bars = market.session_bars("AAPL", session)
        closes.append(bars["close"].iloc[-1])
        assert 1 < bars["close"].iloc[-1] < 10_000
    daily_returns = np.diff(np.log(closes))
    assert np.abs(daily_returns).max() < 0.25  # no absurd jumps between sessions
