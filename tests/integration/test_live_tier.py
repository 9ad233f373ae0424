"""The live tier on the real broker: the live store follows the prices topic, its dbt views
are read after each commit into the dashboard's snapshot, alerts go out as bars arrive, and
the warehouse of record stays free for every other command while it runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stockpipe import market_calendar as mc
from stockpipe.drain import run_drain
from stockpipe.ingest import ingest_window
from stockpipe.live.snapshot import read_snapshot, snapshot_dir
from stockpipe.settings import Settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.trends.build import build_marts
from stockpipe.warehouse import Warehouse
from tests.support import read_topic, set_up_warehouse
from tests.support.live import Running

pytestmark = pytest.mark.integration
SYMBOLS = ["AAPL", "MSFT", "NVDA"]
PREVIOUS, SESSION = mc.session("2025-11-25"), mc.session("2025-11-26")


def ingest(settings: Settings, start, end) -> int:
    market = SimulatedMarket(seed=5)
    return ingest_window(settings, start, end, SYMBOLS, source=market).published


def expected_quotes(first_minutes: int) -> pd.DataFrame:
    """An independent reading of the session so far, with pandas."""
    market = SimulatedMarket(seed=5)
    previous = market.fetch(SYMBOLS, PREVIOUS.open, PREVIOUS.close)
    bars = market.fetch(SYMBOLS, SESSION.open, SESSION.minutes[first_minutes])
    rows = []
    for symbol, own in bars.groupby("symbol"):
        own = own.sort_values("ts")
        both = pd.concat([previous[previous["symbol"] == symbol], own]).sort_values("ts")
        typical = (own["high"] + own["low"] + own["close"]) / 3
        previous_close = previous[previous["symbol"] == symbol].sort_values("ts")["close"].iloc[-1]
        rows.append(
            {
                "symbol": symbol,
                "last_close": own["close"].iloc[-1],
                "ma20": both["close"].iloc[-20:].mean(),
                "session_vwap": (typical * own["volume"]).sum() / own["volume"].sum(),
                "change_on_day_pct": (own["close"].iloc[-1] / previous_close - 1) * 100,
                "bar_count": len(own),
            }
        )
    return pd.DataFrame(rows)


def test_the_live_store_follows_the_topic_and_leaves_the_warehouse_free(
    env_settings: Settings,
) -> None:
    set_up_warehouse(env_settings)
    ingest(env_settings, PREVIOUS.open, PREVIOUS.close)
    ingest(env_settings, SESSION.open, SESSION.minutes[60])

    running = Running(env_settings)
    try:
        running.showing(len(SYMBOLS) * 60)
        _, frames = read_snapshot(snapshot_dir(env_settings))
        quotes = frames["latest_quote"].sort_values("symbol").reset_index(drop=True)
        expected = expected_quotes(60)
        for column in ("last_close", "ma20", "session_vwap", "change_on_day_pct"):
            np.testing.assert_allclose(quotes[column], expected[column], rtol=1e-9, err_msg=column)
        assert list(quotes["bar_count"]) == list(expected["bar_count"])

        # While the live tier runs, the warehouse of record takes a drain and a trend build.
        assert run_drain(env_settings).inserted == len(SYMBOLS) * (390 + 60)
        with Warehouse.connect(env_settings, "transform") as warehouse:
            assert build_marts(warehouse, env_settings).ok

        # New bars reach the snapshot after the next commit.
        ingest(env_settings, SESSION.minutes[60], SESSION.minutes[90])
        running.showing(len(SYMBOLS) * 90)
    finally:
        report = running.stop()
    _, frames = read_snapshot(snapshot_dir(env_settings))
    quotes = frames["latest_quote"].sort_values("symbol").reset_index(drop=True)
    np.testing.assert_allclose(quotes["last_close"], expected_quotes(90)["last_close"])
    assert report.drain.inserted == len(SYMBOLS) * (390 + 90)
    assert report.drain.stopped_because == "stopped"

    # Each ma20 crossing of the session went out once, as its bar arrived; a restart
    # carries on where the store left off and announces only what arrives after it.
    ingest(env_settings, SESSION.minutes[90], SESSION.minutes[120])
    restarted = Running(env_settings)
    try:
        restarted.showing(len(SYMBOLS) * 120)
    finally:
        again = restarted.stop()
    assert again.drain.inserted == len(SYMBOLS) * 30
    _, frames = read_snapshot(snapshot_dir(env_settings))
    crossings = frames["ma_crossings"]
    assert len(crossings) > 0
    messages = read_topic(env_settings, env_settings.kafka.alerts_topic)
    rules = [json.loads(m.value())["rule"] for m in messages]
    assert sum(r.startswith("price_ma20_cross_") for r in rules) == len(crossings)
    assert len({m.key() for m in messages}) == len(messages)  # each alert once
