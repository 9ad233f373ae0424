"""The Streamlit dashboard through Streamlit's AppTest: each view on a warehouse with data,
and on one with none."""

from __future__ import annotations

import base64
import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from stockpipe.dashboard import APP
from stockpipe.settings import Settings
from tests.dashboard.conftest import SESSION, SYMBOLS


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    # Streamlit's caches live as long as the process; each test has its own warehouse.
    st.cache_data.clear()
    st.cache_resource.clear()


def run_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def values(array: object) -> np.ndarray:
    """A trace's data as numbers: Plotly 6+ sends numeric arrays base64-encoded."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, dtype=float)


def charts(at: AppTest) -> list[go.Figure]:
    return [pio.from_json(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_an_empty_warehouse_says_there_is_no_data_yet() -> None:
    at = run_app()
    assert "No data yet" in at.info[0].value
    assert "stockpipe demo" in at.info[0].value
    assert not at.get("plotly_chart")


def test_built_but_empty_marts_say_there_is_no_data_yet() -> None:
    from stockpipe.settings import load_settings
    from stockpipe.warehouse import Warehouse
    from tests.support import build_marts, set_up_warehouse

    settings = load_settings()
    set_up_warehouse(settings)
    with Warehouse.connect(settings, "transform") as warehouse:
        build_marts(warehouse, full=True)  # every mart exists, with no row
    at = run_app()
    assert "No data yet" in at.info[0].value
    assert not at.get("plotly_chart")


def test_a_configuration_error_is_one_line_naming_the_setting(monkeypatch) -> None:
    monkeypatch.setenv("STOCKPIPE_DASHBOARD__HISTORY_DAYS", "1")  # at least 7
    at = run_app()
    (error,) = at.error
    assert error.value.startswith("configuration error:")
    assert "STOCKPIPE_DASHBOARD__HISTORY_DAYS" in error.value
    assert not at.get("plotly_chart")


def test_a_symbol_shows_its_year_with_averages_rsi_and_range(history_settings: Settings) -> None:
    at = run_app()
    assert at.selectbox[0].options == SYMBOLS
    assert at.selectbox[0].value == "AAPL"
    figures = charts(at)
    titles = [f.layout.title.text for f in figures]
    assert titles[:2] == ["AAPL: daily bars, SMA 5/20/50", "AAPL: RSI(14), Wilder"]
    assert any(t.startswith("AAPL: 52-week range") for t in titles)
    assert any(t == f"AAPL: 1-minute bars {SESSION.day}" for t in titles)
    assert "Top movers: change on the day, %" in titles
    price = figures[0]
    names = [trace.name for trace in price.data]
    assert names[:4] == ["AAPL", "SMA 5", "SMA 20", "SMA 50"]
    candles = price.data[0]
    assert len(candles.x) >= 250  # a year of sessions
    sma_50 = values(price.data[3].y)
    # The history starts one session before the year shown: SMA 50 from its 50th session.
    assert np.isnan(sma_50[:48]).all() and np.isfinite(sma_50[48:]).all()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"AAPL close {SESSION.day}"] != "-"
    assert 0 < float(metrics["RSI(14)"]) < 100
    # The watchlist has every symbol, with its change on the day.
    table = at.dataframe[0].value
    assert table["symbol"].tolist() == SYMBOLS
    assert table["day chg %"].notna().all()


def test_picking_a_symbol_and_a_range_redraws(history_settings: Settings) -> None:
    at = run_app()
    at.selectbox[0].select("NVDA").run()
    assert not at.exception
    at.date_input[0].set_value((SESSION.day.replace(month=9, day=1), SESSION.day)).run()
    assert not at.exception
    price = charts(at)[0]
    assert price.layout.title.text == "NVDA: daily bars, SMA 5/20/50"
    assert str(price.data[0].x[0]).startswith("2025-09-02")


def test_freshness_and_the_last_validation_are_shown(history_settings: Settings) -> None:
    record = history_settings.validation_record
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(
        json.dumps(
            {
                "session": str(SESSION.day),
                "success": False,
                "passed": 13,
                "checked": 15,
                "failed": ["raw_stock_prices: expect_column_values_to_not_be_null(CLOSE)"],
            }
        )
    )
    at = run_app()
    assert f"session {SESSION.day}" in at.caption[0].value
    assert "Latest bar 2025-11-26 20:59 UTC" in at.caption[0].value
    assert "failed: raw_stock_prices" in at.error[0].value


def test_the_sidebar_says_how_the_page_refreshes_at_its_moment(
    history_settings: Settings,
) -> None:
    """Whatever the hour the test runs at: the page's plan is the one for its moment (the
    plan at each moment is tested on its own: tests/unit/test_dashboard_refresh.py)."""
    from datetime import UTC, datetime

    from stockpipe.dashboard.data import refresh_plan

    before = refresh_plan(history_settings.dashboard.refresh_seconds, datetime.now(UTC))
    at = run_app()
    after = refresh_plan(history_settings.dashboard.refresh_seconds, datetime.now(UTC))
    shown = [c.value for c in at.sidebar.caption]
    assert before.caption in shown or after.caption in shown, shown


def test_a_watchlist_symbol_without_data_is_named(history_settings: Settings, monkeypatch) -> None:
    """A symbol added to the watchlist that no ingest has fetched yet: the page names it and
    says what brings its data, and shows the others as before."""
    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", ",".join([*SYMBOLS, "NEWCO"]))
    at = run_app()
    captions = " ".join(c.value for c in at.caption)
    assert "No data yet for NEWCO: the next ingest fetches them" in captions
    assert sorted(at.sidebar.selectbox[0].options) == sorted(SYMBOLS)
