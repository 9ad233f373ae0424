"""Every trend figure in MARTS against an independent computation written from the
textbook definitions with pandas/numpy (and TA-Lib for RSI), to 1e-9 relative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stockpipe import market_calendar as mc
from stockpipe.drain.loader import delete_bars, load_batch
from stockpipe.settings import load_settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.warehouse import Warehouse
from tests.support import build_marts, raw_rows_from_bars
from tests.support.marts import FETCHED, load, load_and_build, three_bars_a_session
from tests.support.references import expected_daily, expected_trends

RTOL = 1e-9


def assert_same(actual: pd.Series, expected: pd.Series, name: str) -> None:
    a = pd.to_numeric(actual, errors="coerce").to_numpy(dtype=float)
    e = pd.to_numeric(expected, errors="coerce").to_numpy(dtype=float)
    assert np.array_equal(np.isnan(a), np.isnan(e)), f"{name}: NULLs differ"
    ok = ~np.isnan(e)
    np.testing.assert_allclose(a[ok], e[ok], rtol=RTOL, atol=0, err_msg=name)


def test_daily_indicators_over_years_match_the_definitions(warehouse: Warehouse) -> None:
    symbols = ["AAA", "BBB", "CCC"]
    bars = three_bars_a_session(symbols, "2022-01-03", "2025-06-30")
    load_and_build(warehouse, bars)
    actual = warehouse.query_frame("select * from MARTS.DAILY_TRENDS order by symbol, session_date")
    expected = expected_trends(expected_daily(bars)).sort_values(["symbol", "session_date"])
    assert len(actual) == len(expected) == 3 * len(mc.sessions_between("2022-01-03", "2025-06-30"))
    assert (
        actual["session_date"].astype(str).to_numpy()
        == expected["session_date"].astype(str).to_numpy()
    ).all()
    for column in (
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "bar_count",
        "change_pct",
        "sma_5",
        "sma_20",
        "sma_50",
        "volatility_30",
        "high_52w",
        "low_52w",
        "pct_from_52w_high",
        "pct_from_52w_low",
        "rsi_14",
    ):
        assert_same(actual[column], expected[column], column)
    assert_same(actual["rsi_14"], expected["rsi_wilder"], "rsi_14 vs written-out Wilder")
    # Windows count sessions: the 50th session of a symbol is the first with an SMA 50.
    first = actual[actual["symbol"] == "AAA"].reset_index(drop=True)
    assert first["sma_50"].iloc[:49].isna().all() and pd.notna(first["sma_50"].iloc[49])
    assert first["rsi_14"].iloc[:14].isna().all() and pd.notna(first["rsi_14"].iloc[14])


def test_minute_bars_across_a_holiday_and_an_early_close(warehouse: Warehouse) -> None:
    symbols = ["AAPL", "MSFT", "XOM"]
    week = mc.sessions_between("2025-11-20", "2025-11-28")  # Thanksgiving, then a half day
    bars = SimulatedMarket(seed=5).fetch(symbols, week[0].open, week[-1].close)
    load_and_build(warehouse, bars)

    daily = warehouse.query_frame("select * from MARTS.DAILY_TRENDS order by symbol, session_date")
    expected = expected_daily(bars).sort_values(["symbol", "session_date"])
    assert sorted(set(daily["session_date"].astype(str))) == [
        "2025-11-20",
        "2025-11-21",
        "2025-11-24",
        "2025-11-25",
        "2025-11-26",
        "2025-11-28",
    ]
    half_day = daily[daily["session_date"].astype(str) == "2025-11-28"]
    assert set(half_day["bar_count"]) == {210}
    for column in ("open", "high", "low", "close", "volume", "vwap", "bar_count"):
        assert_same(daily[column], expected[column], column)

    minute = warehouse.query_frame(
        "select symbol, ts, ma5, ma20 from MARTS.MINUTE_BARS order by symbol, ts"
    )
    ref = bars.sort_values(["symbol", "ts"]).reset_index(drop=True)
    ref["ma5"] = ref.groupby("symbol")["close"].transform(lambda c: c.rolling(5).mean())
    ref["ma20"] = ref.groupby("symbol")["close"].transform(lambda c: c.rolling(20).mean())
    assert len(minute) == len(ref)
    assert_same(minute["ma5"], ref["ma5"], "ma5")
    assert_same(minute["ma20"], ref["ma20"], "ma20")

    latest = warehouse.query_frame("select * from MARTS.LATEST_QUOTE order by symbol")
    last_bars = ref.groupby("symbol").tail(1).sort_values("symbol")
    assert_same(latest["last_close"], last_bars["close"], "last_close")
    assert_same(latest["ma5"], last_bars["ma5"], "latest ma5")


def test_top_movers_and_top_daily_closes(warehouse: Warehouse) -> None:
    symbols = ["AAA", "BBB", "CCC", "DDD"]
    bars = three_bars_a_session(symbols, "2025-09-02", "2025-11-26", seed=11)
    load_and_build(warehouse, bars)
    daily = expected_trends(expected_daily(bars))

    movers = warehouse.query_frame("select * from MARTS.TOP_MOVERS order by move_rank")
    last = daily[daily["session_date"] == daily["session_date"].max()].copy()
    last = last.reindex(last["change_pct"].abs().sort_values(ascending=False).index)
    assert movers["symbol"].tolist() == last["symbol"].tolist()
    assert_same(movers["change_pct"], last["change_pct"], "change_pct")
    assert set(movers["direction"]) <= {"up", "down"}
    assert ((movers["change_pct"] >= 0) == (movers["direction"] == "up")).all()

    top = warehouse.query_frame("select * from MARTS.TOP_DAILY_CLOSES order by symbol, close_rank")
    expected_top = (
        daily.sort_values(["symbol", "close"], ascending=[True, False]).groupby("symbol").head(5)
    )
    assert len(top) == 4 * 5
    assert_same(top["close"], expected_top["close"], "top closes")
    assert (
        top["session_date"].astype(str).to_numpy()
        == expected_top["session_date"].astype(str).to_numpy()
    ).all()


def daily_bars(warehouse: Warehouse) -> pd.DataFrame:
    return warehouse.query_frame(
        "select symbol, session_date, refreshed_at, close, bar_count from MARTS.DAILY_BARS "
        "order by symbol, session_date"
    )


def assert_daily_bars_match(warehouse: Warehouse, bars: pd.DataFrame) -> None:
    actual = daily_bars(warehouse)
    expected = expected_daily(bars).sort_values(["symbol", "session_date"])
    assert len(actual) == len(expected)
    for column in ("close", "bar_count"):
        assert_same(actual[column], expected[column], column)


def test_incremental_build_rebuilds_only_the_sessions_the_load_log_names(
    warehouse: Warehouse,
) -> None:
    market = SimulatedMarket(seed=8)
    days = mc.sessions_between("2025-11-17", "2025-11-21")
    past = market.fetch(["AAPL", "MSFT"], days[0].open, days[-2].close)
    load_and_build(warehouse, past)
    before = daily_bars(warehouse)
    assert len(before) == 2 * 4

    # Intraday: the newest session's first hour arrives for one symbol.
    today = market.fetch(["AAPL"], days[-1].open, days[-1].minutes[60])
    load(warehouse, today)
    build_marts(warehouse)
    after = daily_bars(warehouse)
    old = after.merge(before, on=["symbol", "session_date"], suffixes=("", "_before"))
    assert len(old) == 8 and (old["refreshed_at"] == old["refreshed_at_before"]).all()
    new = after[after["session_date"].astype(str) == "2025-11-21"]
    assert new["symbol"].tolist() == ["AAPL"] and new["bar_count"].tolist() == [60]
    assert_daily_bars_match(warehouse, pd.concat([past, today]))
    # Nothing new: dbt is not even started.
    assert build_marts(warehouse).up_to_date

    # Minute moving averages across the rebuilt session's start equal a full computation.
    minute = warehouse.query_frame(
        "select symbol, ts, ma20 from MARTS.MINUTE_BARS order by symbol, ts"
    )
    ref = pd.concat([past, today]).sort_values(["symbol", "ts"]).reset_index(drop=True)
    ref["ma20"] = ref.groupby("symbol")["close"].transform(lambda c: c.rolling(20).mean())
    assert_same(minute["ma20"], ref["ma20"], "ma20 after an incremental build")


def test_a_commit_delayed_beyond_any_look_back_is_built_next_time(warehouse: Warehouse) -> None:
    market = SimulatedMarket(seed=9)
    days = mc.sessions_between("2025-11-17", "2025-11-19")
    first = market.fetch(["AAPL"], days[0].open, days[-1].close)
    load_and_build(warehouse, first)
    # A batch whose commit was retried for days: its rows carry a loaded_at older than
    # everything the last build took in, and an old session.
    late = market.fetch(["MSFT"], days[0].open, days[0].close)
    load(warehouse, late, loaded_at=datetime.now(UTC) - timedelta(days=3))
    build_marts(warehouse)
    assert_daily_bars_match(warehouse, pd.concat([first, late]))


def test_a_commit_landing_while_a_build_runs_is_built_next_time(warehouse: Warehouse) -> None:
    market = SimulatedMarket(seed=10)
    days = mc.sessions_between("2025-11-17", "2025-11-18")
    first = market.fetch(["AAPL", "MSFT"], days[0].open, days[0].close)
    during = market.fetch(["AAPL", "MSFT"], days[1].open, days[1].close)
    load(warehouse, first)
    landed = []

    def commit_once_the_log_is_read(node) -> None:
        # The build has taken its snapshot of the load log: a drain commits now.
        if node.name == "pending_loads" and not landed:
            drain_session = warehouse.sibling()
            try:
                load(drain_session, during)
            finally:
                drain_session.close()
            landed.append(node.name)

    build_marts(warehouse, progress=commit_once_the_log_is_read)
    assert landed == ["pending_loads"]
    # The commit is still pending after the build that could not see all of it ...
    assert not build_marts(warehouse).up_to_date
    # ... and the next build took it in, and nothing is left for the one after.
    assert_daily_bars_match(warehouse, pd.concat([first, during]))
    assert build_marts(warehouse).up_to_date


def test_the_dbt_unit_tests_pass_and_no_build_runs_them(warehouse: Warehouse) -> None:
    import yaml

    from stockpipe.trends import run_unit_tests

    declared = {
        test["name"]
        for path in (Path(__file__).parents[2] / "sql" / "models").rglob("*.yml")
        for test in (yaml.safe_load(path.read_text()) or {}).get("unit_tests", [])
    }
    assert {"rsi_14_starts_on_the_15th_session_of_each_symbol"} < declared
    day = mc.session("2025-11-18")
    load(warehouse, SimulatedMarket(seed=14).fetch(["AAPL"], day.open, day.close))
    # Their inputs are fixed: builds, full or not, do not spend time on them (dbt's advice).
    for build in (build_marts(warehouse), build_marts(warehouse, full=True)):
        assert not [n for n in build.nodes if n.kind == "unit_test"]
    units = run_unit_tests(warehouse, load_settings())
    assert {n.name: n.status for n in units.nodes} == dict.fromkeys(declared, "pass")
    assert units.summary().startswith(f"dbt unit tests: {len(declared)}/{len(declared)} passed")


def test_a_failed_build_keeps_the_load_log_for_the_next(warehouse: Warehouse) -> None:
    from stockpipe.trends import TrendBuildFailed

    market = SimulatedMarket(seed=13)
    day = mc.session("2025-11-18")
    bars = market.fetch(["AAPL"], day.open, day.close)
    load(warehouse, bars)
    # A 5-minute bar in RAW breaks the source's test: the full build fails ...
    warehouse.execute(
        "insert into RAW.STOCK_PRICES select * replace ('5m' as bar_interval) "
        "from RAW.STOCK_PRICES limit 1"
    )
    with pytest.raises(TrendBuildFailed, match="accepted_values_raw_stock_prices_bar_interval"):
        build_marts(warehouse, full=True)
    # ... and the commit it could not take in is still pending: the next build takes it in.
    warehouse.execute("delete from RAW.STOCK_PRICES where bar_interval = '5m'")
    assert not build_marts(warehouse).up_to_date
    assert_daily_bars_match(warehouse, bars)
    assert build_marts(warehouse).up_to_date


def test_deleted_bars_leave_the_marts_at_the_next_build(warehouse: Warehouse) -> None:
    market = SimulatedMarket(seed=12)
    days = mc.sessions_between("2025-11-17", "2025-11-19")
    bars = market.fetch(["AAPL", "MSFT"], days[0].open, days[-1].close)
    load_and_build(warehouse, bars)

    def naive(ts) -> datetime:
        return pd.Timestamp(ts).to_pydatetime().replace(tzinfo=None)

    # The last hour of one session, and all of another, for one symbol.
    assert delete_bars(warehouse, "AAPL", naive(days[1].minutes[-60]), naive(days[1].close)) == 60
    assert delete_bars(warehouse, "AAPL", naive(days[2].open), naive(days[2].close)) == 390
    build_marts(warehouse)
    kept = bars[~((bars["symbol"] == "AAPL") & (bars["ts"] >= days[1].minutes[-60]))]
    assert_daily_bars_match(warehouse, kept)
    sessions = daily_bars(warehouse)
    assert sorted(sessions[sessions["symbol"] == "AAPL"]["session_date"].astype(str)) == [
        "2025-11-17",
        "2025-11-18",
    ]


def test_a_removed_symbol_leaves_raw_and_the_marts(warehouse: Warehouse) -> None:
    from stockpipe.cli import main

    days = mc.sessions_between("2025-11-17", "2025-11-19")
    bars = SimulatedMarket(seed=15).fetch(["AAPL", "ZZZZ"], days[0].open, days[-1].close)
    load_and_build(warehouse, bars)
    warehouse.close()  # the command opens the warehouse file itself

    assert main(["warehouse", "remove", "--symbols", "zzzz"]) == 0
    assert main(["trends"]) == 0
    with Warehouse.connect(load_settings(), "read") as reader:
        for table in ("RAW.STOCK_PRICES", "MARTS.MINUTE_BARS", "MARTS.DAILY_BARS"):
            symbols = reader.query(f"select distinct symbol from {table}")
            assert symbols == [("AAPL",)], table
        assert reader.query("select symbol from MARTS.LATEST_QUOTE") == [("AAPL",)]


def test_a_sessions_daily_bar_wins_over_its_minute_bars_and_fills_sessions_without(
    warehouse: Warehouse,
) -> None:
    market = SimulatedMarket(seed=14)
    days = mc.sessions_between("2025-11-17", "2025-11-19")
    # Minute bars for the last two sessions; daily bars (a backfill) for the first two,
    # whose figures differ from the minute bars' aggregate as a provider's official daily
    # bar does (closing auction, every venue's volume).
    minutes = market.fetch(["AAPL"], days[1].open, days[2].close)
    daily = market.fetch(["AAPL"], days[0].open, days[1].close, "1d")
    daily["close"] = daily["close"] * 1.001
    daily["high"] = daily[["high", "close"]].max(axis=1)
    daily["volume"] += 12_345
    # MSFT is known from daily bars only.
    msft = market.fetch(["MSFT"], days[0].open, days[2].close, "1d")
    load(warehouse, minutes)
    daily_rows = raw_rows_from_bars(
        pd.concat([daily, msft]), FETCHED, first_offset=len(minutes), interval="1d"
    )
    load_batch(warehouse, daily_rows, {("prices", 0): len(minutes) + len(daily_rows)}, None)
    build_marts(warehouse)

    everything = warehouse.query_frame("select * from MARTS.DAILY_BARS")
    got = everything[everything["symbol"] == "AAPL"].set_index("session_date")
    got.index = got.index.astype(str)
    only_daily, both, only_minutes = (got.loc[str(d.day)] for d in days)
    d0, d1 = daily.iloc[0], daily.iloc[1]
    assert only_daily["figures_from"] == "1d" and only_daily["bar_count"] == 0
    assert only_daily["close"] == pytest.approx(d0["close"]) and pd.isna(only_daily["vwap"])
    assert both["figures_from"] == "1d" and both["bar_count"] == 390
    assert both["close"] == pytest.approx(d1["close"]) and both["volume"] == d1["volume"]
    session_minutes = minutes[minutes["ts"] < days[1].close]
    typical = (session_minutes["high"] + session_minutes["low"] + session_minutes["close"]) / 3
    vwap = (typical * session_minutes["volume"]).sum() / session_minutes["volume"].sum()
    assert both["vwap"] == pytest.approx(vwap, rel=RTOL)
    assert only_minutes["figures_from"] == "1m" and only_minutes["bar_count"] == 390
    assert (everything.loc[everything["symbol"] == "MSFT", "figures_from"] == "1d").all()
    # The next session's change is measured from the daily bar's close.
    trends = warehouse.query_frame(
        "select session_date, change_pct from MARTS.DAILY_TRENDS where symbol = 'AAPL' "
        "order by session_date"
    )
    assert trends["change_pct"].iloc[1] == pytest.approx(
        (d1["close"] / d0["close"] - 1) * 100, rel=RTOL
    )
    # A symbol whose latest session has no minute bars still has its watchlist row.
    latest = warehouse.query_frame(
        "select symbol, last_close, bar_count, ma5 from MARTS.LATEST_QUOTE order by symbol"
    ).set_index("symbol")
    assert latest.loc["AAPL", "bar_count"] == 390
    assert latest.loc["MSFT", "bar_count"] == 0 and pd.isna(latest.loc["MSFT", "ma5"])
    assert latest.loc["MSFT", "last_close"] == pytest.approx(msft["close"].iloc[-1])
