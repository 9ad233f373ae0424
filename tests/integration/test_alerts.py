"""Trend alerts on the real broker: each condition once per symbol and session."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from stockpipe import alerts
from stockpipe import market_calendar as mc
from stockpipe.settings import Settings
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.integration.test_trend_views import (
    expected_daily,
    expected_trends,
    load_and_build,
    three_bars_a_session,
)
from tests.support import read_topic

pytestmark = pytest.mark.integration


def alert_messages(settings: Settings) -> list[dict]:
    return [
        json.loads(m.value()) | {"key": m.key().decode()}
        for m in read_topic(settings, settings.kafka.alerts_topic)
    ]


def session_of_first_cross(bars: pd.DataFrame) -> str:
    trends = expected_trends(expected_daily(bars))
    for _, d in trends.groupby("symbol"):
        above = d["sma_20"] > d["sma_50"]
        cross = above & ~above.shift(1, fill_value=above.iloc[0]) & d["sma_50"].shift(1).notna()
        if cross.any():
            return str(d.loc[cross.idxmax(), "session_date"])
    raise AssertionError("no crossover in the synthetic series")


def test_alerts_fire_once_per_symbol_session_and_rule(env_settings: Settings) -> None:
    bars = three_bars_a_session(["AAA", "BBB", "CCC"], "2025-01-02", "2025-11-26", seed=21)
    cross_day = session_of_first_cross(bars)
    upto = bars[bars["ts"] < pd.Timestamp(mc.session(cross_day).close)]
    with Warehouse.connect(env_settings, "setup") as warehouse:
        setup_warehouse(warehouse, env_settings)
        load_and_build(warehouse, upto)
        found = alerts.find_alerts(warehouse, day_change_pct=0.5)
        rules = {(a.symbol, a.rule) for a in found}
        assert any(rule == "sma_20_50_cross_up" for _, rule in rules), rules
        assert any(rule == "day_move" for _, rule in rules), rules
        first = alerts.publish_new_alerts(env_settings, warehouse, found)
        again = alerts.publish_new_alerts(
            env_settings, warehouse, alerts.find_alerts(warehouse, day_change_pct=0.5)
        )
    assert len(first) == len(found) and again == []
    published = alert_messages(env_settings)
    assert len(published) == len(found)
    assert len({m["key"] for m in published}) == len(published)
    cross = [m for m in published if m["rule"] == "sma_20_50_cross_up"]
    assert cross and all(m["session_date"] == cross_day for m in cross)


def test_stockpipe_trends_sends_the_alerts_the_flow_sends(
    env_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from stockpipe.cli import main

    monkeypatch.setenv("STOCKPIPE_TRENDS__ALERT_DAY_CHANGE_PCT", "0.5")
    bars = three_bars_a_session(["AAA", "BBB", "CCC"], "2025-01-02", "2025-11-26", seed=21)
    with Warehouse.connect(env_settings, "setup") as warehouse:
        setup_warehouse(warehouse, env_settings)
        load_and_build(warehouse, bars)
        # What the trends flow's alert task sends (it calls the same function).
        expected = {
            (a.symbol, str(a.session_date), a.rule)
            for a in alerts.find_alerts(warehouse, day_change_pct=0.5)
        }
    assert expected

    assert main(["trends"]) == 0

    sent = {(m["symbol"], m["session_date"], m["rule"]) for m in alert_messages(env_settings)}
    assert sent == expected
    printed = capsys.readouterr().out
    assert f"alerts: {len(expected)} sent to {env_settings.kafka.alerts_topic}" in printed
    assert main(["trends"]) == 0  # once each: a second build sends none again
    assert len(alert_messages(env_settings)) == len(expected)
    assert f"alerts: 0 sent to {env_settings.kafka.alerts_topic}" in capsys.readouterr().out
