"""Trend alerts on the real broker: each condition once per symbol and session."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from stockpipe import alerts
from stockpipe import market_calendar as mc
from stockpipe.settings import Settings
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.support import read_topic
from tests.support.marts import load, load_and_build, three_bars_a_session
from tests.support.references import expected_daily, expected_trends

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
    assert first.sent == found and again.sent == again.waiting == []
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


def test_alerts_kafka_cannot_take_go_out_with_the_next_run_once_across_processes(
    env_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A build while Kafka is down says how many alerts wait and why; the next
    `stockpipe trends` (another process, nothing new to build) sends them; a full rebuild
    after that sends none again."""
    import os
    import subprocess
    import sys

    from stockpipe.cli import main
    from stockpipe.local_stack.processes import free_port

    monkeypatch.setenv("STOCKPIPE_TRENDS__ALERT_DAY_CHANGE_PCT", "0.5")
    bars = three_bars_a_session(["AAA", "BBB"], "2025-01-02", "2025-11-26", seed=21)
    with Warehouse.connect(env_settings, "setup") as warehouse:
        setup_warehouse(warehouse, env_settings)
        load(warehouse, bars)
    up = os.environ["STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS"]
    monkeypatch.setenv("STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS", f"localhost:{free_port()}")  # down
    assert main(["trends"]) == 0  # the marts are built all the same
    captured = capsys.readouterr()
    assert "alerts: 0 sent" in captured.out
    waiting = re.search(
        r"note: (\d+) alert\(s\) wait for the next 'stockpipe trends'", captured.err
    )
    assert waiting and int(waiting.group(1)) > 0, captured.err

    monkeypatch.setenv("STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS", up)
    stockpipe = [sys.executable, "-m", "stockpipe.cli", "trends"]
    caught_up = subprocess.run(stockpipe, capture_output=True, text=True, timeout=300)
    assert caught_up.returncode == 0, caught_up.stderr
    assert f"alerts: {waiting.group(1)} sent" in caught_up.stdout
    assert "trend marts up to date" in caught_up.stdout  # nothing new: only the alerts
    full = subprocess.run([*stockpipe, "--full"], capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stderr
    assert "alerts: 0 sent" in full.stdout
    published = alert_messages(env_settings)
    assert len(published) == int(waiting.group(1))
    assert len({m["key"] for m in published}) == len(published)
