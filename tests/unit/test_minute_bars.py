"""1-minute bars from trades: equal to an independent aggregation of the same trades."""

from __future__ import annotations

import random

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from stockpipe.ingest import check_bars
from stockpipe.sources.minute_bars import MINUTE_MS, MinuteBars, Trade
from tests.support.references import independent_bars

T0 = 1_764_167_400_000  # 2025-11-26 14:30:00 UTC, a session's first minute


trades_strategy = st.lists(
    st.tuples(
        st.sampled_from(["AAPL", "MSFT", "NVDA"]),
        st.floats(10, 500, allow_nan=False).map(lambda p: round(p, 2)),
        st.integers(1, 10_000),
        st.integers(0, 5 * MINUTE_MS - 1),  # when it happened, within five minutes
        st.integers(0, 1_500),  # how late it arrives: inside the 2 s grace
    ),
    min_size=1,
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(trades_strategy, st.randoms(use_true_random=False))
def test_bars_equal_an_independent_aggregation_of_the_trades(raw, rng: random.Random) -> None:
    trades = [Trade(s, p, v, T0 + at) for s, p, v, at, _ in raw]
    arrivals = sorted(
        zip([T0 + at + delay for _, _, _, at, delay in raw], range(len(raw)), trades, strict=True)
    )
    bars = MinuteBars(grace_ms=2_000)
    emitted = []
    for arrived, _, trade in arrivals:  # the clock is the arrival time
        emitted.append(bars.close_due(arrived))
        assert bars.add(trade)
    emitted.append(bars.close_all())
    got = pd.concat(emitted, ignore_index=True)
    in_arrival_order = [trade for _, _, trade in arrivals]
    expected = independent_bars(in_arrival_order)
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
    )
    assert not bars.late
    assert check_bars(got, "finnhub").rejected_total == 0  # every bar passes the contract


def test_a_trade_after_its_minutes_grace_is_counted_late_and_left_out() -> None:
    bars = MinuteBars(grace_ms=2_000)
    assert bars.add(Trade("AAPL", 100.0, 10, T0 + 1_000))
    first = bars.close_due(T0 + MINUTE_MS + 2_000)  # the minute is over, and its grace
    assert len(first) == 1 and first["volume"].iloc[0] == 10
    assert not bars.add(Trade("AAPL", 250.0, 99, T0 + 59_000))  # for the closed minute
    assert not bars.add(Trade("MSFT", 50.0, 5, T0 + 30_000))  # a symbol with no bar then
    assert bars.late == {"AAPL": 1, "MSFT": 1}
    assert bars.close_all().empty  # neither was folded into anything


def test_a_minute_waits_for_its_grace() -> None:
    bars = MinuteBars(grace_ms=2_000)
    bars.add(Trade("AAPL", 100.0, 10, T0 + 59_999))
    assert bars.close_due(T0 + MINUTE_MS + 1_999).empty
    assert bars.add(Trade("AAPL", 101.0, 5, T0 + 59_000))  # late, inside the grace
    bar = bars.close_due(T0 + MINUTE_MS + 2_000).iloc[0]
    assert (bar.open, bar.close, bar.volume) == (101.0, 100.0, 15)  # ordered by trade time
