"""Ingest on the real broker: publishes only what is new or changed since the last run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stockpipe import market_calendar as mc
from stockpipe.ingest import ingest_window
from stockpipe.settings import Settings
from stockpipe.sources.replay import ReplaySource
from stockpipe.sources.simulated import SimulatedMarket
from tests.support import read_topic, topic_messages

pytestmark = pytest.mark.integration
SESSION = mc.session("2025-11-26")


def test_refetching_the_day_publishes_only_new_bars(env_settings: Settings) -> None:
    market = SimulatedMarket()
    first = ingest_window(
        env_settings, SESSION.open, SESSION.minutes[10], ["AAPL", "MSFT"], source=market
    )
    assert (first.published, first.unchanged) == (20, 0)
    # The schedule fetches from the open again, a few minutes later.
    second = ingest_window(
        env_settings, SESSION.open, SESSION.minutes[15], ["AAPL", "MSFT"], source=market
    )
    assert (second.published, second.unchanged) == (10, 20)
    published = topic_messages(env_settings)
    assert len(published) == 30
    assert len({(m["symbol"], m["ts"]) for m in published}) == 30


def test_a_changed_latest_bar_is_published_again(env_settings: Settings, tmp_path: Path) -> None:
    bars = SimulatedMarket().fetch(["AAPL"], SESSION.open, SESSION.minutes[5])
    path = tmp_path / "bars.csv"
    bars.to_csv(path, index=False)
    source = ReplaySource(path)
    assert (
        ingest_window(
            env_settings, SESSION.open, SESSION.close, source=source, symbols=["AAPL"]
        ).published
        == 5
    )
    # The newest bar was still forming: its close and volume moved.
    bars.loc[4, "close"] = bars.loc[4, "high"]
    bars.loc[4, "volume"] += 100
    bars.to_csv(path, index=False)
    again = ingest_window(
        env_settings, SESSION.open, SESSION.close, source=ReplaySource(path), symbols=["AAPL"]
    )
    assert (again.published, again.unchanged) == (1, 4)


def test_an_earlier_session_is_published_after_a_later_one(env_settings: Settings) -> None:
    # A backfill: the session before the one already published goes out in full, once.
    market = SimulatedMarket()
    earlier = mc.previous_session(SESSION.day)
    later = ingest_window(env_settings, SESSION.open, SESSION.close, ["AAPL"], source=market)
    assert later.published == 390
    first = ingest_window(env_settings, earlier.open, earlier.close, ["AAPL"], source=market)
    assert (first.published, first.unchanged) == (390, 0)
    again = ingest_window(env_settings, earlier.open, SESSION.close, ["AAPL"], source=market)
    assert (again.published, again.unchanged) == (0, 780)
    published = topic_messages(env_settings)
    assert len({(m["symbol"], m["ts"]) for m in published}) == len(published) == 780


def test_state_written_before_sessions_were_kept_apart_still_counts(
    env_settings: Settings,
) -> None:
    # The file as ingest wrote it before: one entry per symbol, the newest bar published.
    market = SimulatedMarket()
    bars = market.fetch(["AAPL"], SESSION.open, SESSION.minutes[10])
    newest = bars.iloc[-1]
    state = env_settings.home_dir / "ingest" / "published.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    fingerprint = (
        "|".join(str(float(newest[c])) for c in ("open", "high", "low", "close"))
        + f"|{int(newest['volume'])}"
    )
    state.write_text(json.dumps({"AAPL": [newest["ts"].isoformat(), fingerprint]}))
    report = ingest_window(env_settings, SESSION.open, SESSION.minutes[15], ["AAPL"], source=market)
    assert (report.published, report.unchanged) == (5, 10)


def test_the_simulated_source_invents_no_bars_for_a_ticker_it_does_not_list(
    env_settings: Settings,
) -> None:
    from stockpipe.sources import make_source

    source = make_source(env_settings.source)  # lists LISTED and the watchlist
    report = ingest_window(
        env_settings, SESSION.open, SESSION.close, ["AAPL", "ZZZZ"], source=source
    )
    assert report.published == 390
    assert report.without_bars == ("ZZZZ",)
    assert "no bars for ZZZZ" in report.summary()
    assert {m["symbol"] for m in topic_messages(env_settings)} == {"AAPL"}


def test_a_bar_still_forming_is_not_published(env_settings: Settings, tmp_path: Path) -> None:
    import pandas as pd

    now = pd.Timestamp.now(tz="UTC")
    current = now.floor("min")  # this minute's bar has not ended
    bars = pd.DataFrame(
        {
            "symbol": "AAPL",
            "ts": [current - pd.Timedelta(minutes=m) for m in (3, 2, 1, 0)],
            "open": 100.0,
            "high": 101.0,
            "low": 99.0,
            "close": 100.5,
            "volume": 1000,
        }
    )
    path = tmp_path / "bars.csv"
    bars.to_csv(path, index=False)
    report = ingest_window(
        env_settings,
        current - pd.Timedelta(minutes=5),
        current + pd.Timedelta(minutes=5),  # a window reaching into the future
        ["AAPL"],
        source=ReplaySource(path),
    )
    assert report.published == 3
    published = {m["ts"] for m in topic_messages(env_settings)}
    assert current.strftime("%Y-%m-%dT%H:%M:%SZ") not in published


def test_a_bar_the_contract_refuses_is_kept_on_the_dead_letter_topic_with_why(
    env_settings: Settings, tmp_path: Path
) -> None:
    """Nothing a source gave is dropped with only a log line: the refused bar is on the
    dead-letter topic as the source gave it, with the reason, beside the bars published."""
    bars = SimulatedMarket().fetch(["AAPL"], SESSION.open, SESSION.minutes[4])
    bars.loc[2, "low"] = bars.loc[2, "high"] + 1  # high < low
    bars["volume"] = bars["volume"].astype(float)
    bars.loc[3, "volume"] = 1234.5  # fractional: contract version 2 takes it
    path = tmp_path / "bars.csv"
    bars.to_csv(path, index=False)
    report = ingest_window(
        env_settings, SESSION.open, SESSION.close, source=ReplaySource(path), symbols=["AAPL"]
    )
    assert (report.published, report.rejected) == (3, {"high_below_low": 1})
    assert "rejected 1 (high_below_low: 1) -> the dead-letter topic" in report.summary()
    assert [m["volume"] for m in topic_messages(env_settings)][-1] == 1234.5
    (letter,) = read_topic(env_settings, env_settings.kafka.dlq_topic)
    headers = dict(letter.headers())
    assert headers["dlq.reason"] == b"high_below_low"
    assert headers["dlq.source.ingest"] == b"replay"
    assert b"high" in headers["dlq.error.message"]
    assert letter.key() == b"AAPL"
    record = json.loads(letter.value())
    assert record["low"] == bars.loc[2, "low"] and record["ts"].startswith(str(SESSION.day))


def test_ingest_with_some_bars_refused_exits_0_saying_what_was_published_and_refused(
    env_settings: Settings, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Exit 1 is for a fetch the contract refused whole; a partly refused one published the
    rest, and says how many and why (the refused bars are on the dead-letter topic)."""
    from stockpipe.cli import main

    bars = SimulatedMarket().fetch(["AAPL"], SESSION.open, SESSION.minutes[4])
    bars.loc[1, "low"] = bars.loc[1, "high"] + 1  # high < low
    bars.loc[2, "open"] = -1.0  # a price must be positive
    path = tmp_path / "bars.csv"
    bars.to_csv(path, index=False)
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", "replay")
    monkeypatch.setenv("STOCKPIPE_SOURCE__REPLAY_PATH", str(path))
    assert main(["ingest", "--session", str(SESSION.day), "--symbols", "AAPL"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "published 2" in printed
    assert "rejected 2 (high_below_low: 1, out_of_range_open: 1)" in printed
    reasons = sorted(
        dict(m.headers())["dlq.reason"]
        for m in read_topic(env_settings, env_settings.kafka.dlq_topic)
    )
    assert reasons == [b"high_below_low", b"out_of_range_open"]
