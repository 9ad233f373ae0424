"""Finnhub's live mode end to end: a replayed session of trades over a local websocket ->
minute bars -> the real broker -> the drain -> the warehouse, equal to an independent
aggregation of the same trades; through a dropped connection too."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import pandas as pd
import pytest

from stockpipe.drain import run_drain
from stockpipe.live.ingest import follow_trades
from stockpipe.settings import Settings, load_settings
from stockpipe.sources.minute_bars import MINUTE_MS, Trade
from stockpipe.warehouse import Warehouse
from tests.fake_providers import FakeFinnhubSocket
from tests.support import read_topic, set_up_warehouse
from tests.support.references import independent_bars

pytestmark = pytest.mark.integration
KEY = "live-key-0c41"
T0 = 1_764_167_400_000  # 2025-11-26 14:30:00 UTC
MINUTES = 4
SYMBOLS = ["AAPL", "MSFT", "NVDA"]


def replayed_trades(seed: int = 3) -> list[tuple[str, float, float, int]]:
    """Trades of three symbols over four minutes, in time order (a random walk each)."""
    rng = random.Random(seed)
    prices = {s: 100.0 + 50 * i for i, s in enumerate(SYMBOLS)}
    trades = []
    for ts in sorted(rng.randrange(T0, T0 + MINUTES * MINUTE_MS) for _ in range(600)):
        symbol = rng.choice(SYMBOLS)
        prices[symbol] = round(prices[symbol] * (1 + rng.gauss(0, 0.001)), 2)
        trades.append((symbol, prices[symbol], float(rng.randrange(1, 500)), ts))
    return trades


@pytest.fixture
def live_env(env_settings: Settings, monkeypatch) -> Settings:
    monkeypatch.setenv("STOCKPIPE_SOURCE__KIND", "finnhub")
    monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_API_KEY", KEY)
    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", ",".join(SYMBOLS))
    settings = load_settings()
    set_up_warehouse(settings)
    return settings


def run_live(settings: Settings, socket: FakeFinnhubSocket, monkeypatch) -> pd.DataFrame:
    monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_WS_URL", socket.url)
    settings = load_settings()
    until = pd.Timestamp(T0 + MINUTES * MINUTE_MS, unit="ms", tz="UTC").to_pydatetime()
    report = follow_trades(settings, until, clock=socket.clock, sleep=lambda _: None)
    assert report.late_trades == 0 and report.rejected == 0
    return drained_bars(settings, report.bars_published)


def drained_bars(settings: Settings, published: int) -> pd.DataFrame:
    """A drain of what live ingest published (all of it, once), then Finnhub's minute bars
    in the warehouse, in time then symbol order."""
    assert run_drain(settings).inserted == published
    with Warehouse.connect(settings) as warehouse:
        landed = warehouse.query_frame(
            "select symbol, ts, open, high, low, close, volume from RAW.STOCK_PRICES "
            "where bar_interval = '1m' and source = 'finnhub' order by ts, symbol"
        )
    landed.columns = [c.lower() for c in landed.columns]
    landed["ts"] = pd.to_datetime(landed["ts"]).dt.tz_localize("UTC")
    return landed


def replay(
    settings: Settings, trades: list, monkeypatch, **options: int
) -> tuple[pd.DataFrame, FakeFinnhubSocket]:
    """The trades over a local Finnhub websocket (``options``: the socket's), live ingest,
    a drain: the bars landed in the warehouse, and the socket."""
    socket = FakeFinnhubSocket(KEY, trades, end_ms=T0 + MINUTES * MINUTE_MS, **options).start()
    try:
        return run_live(settings, socket, monkeypatch), socket
    finally:
        socket.stop()


@pytest.fixture
def trades() -> Iterator[list[tuple[str, float, float, int]]]:
    yield replayed_trades()


def test_live_bars_equal_an_independent_aggregation_of_the_trades(
    live_env: Settings, trades, monkeypatch
) -> None:
    landed, socket = replay(live_env, trades, monkeypatch)
    expected = independent_bars([Trade(s, p, v, t) for s, p, v, t in trades])
    assert len(landed) == MINUTES * len(SYMBOLS) == len(expected)
    pd.testing.assert_frame_equal(landed, expected, check_dtype=False)
    # Subscribed to the watchlist (again after the replay's end closed the connection).
    assert sorted(set(socket.subscriptions)) == SYMBOLS


def test_fractional_volumes_make_exact_bars_not_rejected_ones(
    live_env: Settings, trades, monkeypatch
) -> None:
    """Finnhub reports fractional-share prints (and crypto volumes are all fractional): the
    minute's summed volume is fractional, and the bar still lands, exact (contract v2)."""
    trades = [(s, p, v + 0.37 if i % 3 == 0 else v, t) for i, (s, p, v, t) in enumerate(trades)]
    landed, _ = replay(live_env, trades, monkeypatch)
    expected = independent_bars([Trade(s, p, v, t) for s, p, v, t in trades])
    assert len(landed) == MINUTES * len(SYMBOLS)
    assert (landed["volume"] % 1 != 0).any()
    pd.testing.assert_frame_equal(landed, expected, check_dtype=False)


def test_a_dropped_websocket_is_reconnected_and_loses_or_repeats_nothing(
    live_env: Settings, trades, monkeypatch
) -> None:
    landed, socket = replay(live_env, trades, monkeypatch, drop_after=40)
    assert socket.connections == 3  # the first, after the drop, after the replay's end
    expected = independent_bars([Trade(s, p, v, t) for s, p, v, t in trades])
    pd.testing.assert_frame_equal(landed, expected, check_dtype=False)


def test_a_wrong_key_is_refused_naming_the_setting(live_env: Settings, trades, monkeypatch) -> None:
    socket = FakeFinnhubSocket("another-key", trades, end_ms=T0 + MINUTE_MS).start()
    try:
        monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_WS_URL", socket.url)
        until = pd.Timestamp(T0 + MINUTE_MS, unit="ms", tz="UTC").to_pydatetime()
        with pytest.raises(RuntimeError, match=r"HTTP 401.*STOCKPIPE_SOURCE__FINNHUB_API_KEY") as e:
            follow_trades(load_settings(), until, clock=socket.clock, sleep=lambda _: None)
        assert KEY not in str(e.value)
    finally:
        socket.stop()


def test_follow_needs_the_finnhub_source(env_settings: Settings, capsys) -> None:
    from stockpipe.cli import main

    assert main(["ingest", "--follow"]) == 2
    assert "--follow takes live trades from Finnhub" in capsys.readouterr().err.replace("\n", "")


def test_the_subscription_follows_the_watchlist_edited_while_following(
    live_env: Settings, trades, monkeypatch
) -> None:
    """The watchlist is re-read every minute: a symbol added is subscribed and its bars
    published from then on, a symbol removed is unsubscribed and gets no bar after, and a
    bad edit keeps the last good list (the follow goes on). The replay runs at 15x, so the
    minutes (and the re-reads) pass on a clock of the session's own."""
    # That clock runs on the wall clock: at the default 2 s of grace, a reader 133 ms behind
    # (a busy machine) took a minute's last trades as late (CI41). The grace this test gives
    # is a minute of the session's time, 4 s of the wall's; the bars are the same.
    monkeypatch.setenv("STOCKPIPE_SOURCE__LIVE_GRACE_SECONDS", "60")
    socket = FakeFinnhubSocket(
        KEY, trades, end_ms=T0 + MINUTES * MINUTE_MS, speed=15, awaited={"AAPL", "MSFT"}
    ).start()
    monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_WS_URL", socket.url)
    settings = load_settings()
    edits = iter(["AAPL,MSFT", "MSFT,NVDA"])

    def reload_settings() -> Settings:
        watchlist = next(edits, "not a ticker")  # then a bad edit, every minute after
        monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", watchlist)
        return load_settings()

    until = pd.Timestamp(T0 + MINUTES * MINUTE_MS, unit="ms", tz="UTC").to_pydatetime()
    try:
        report = follow_trades(settings, until, clock=socket.clock, reload_settings=reload_settings)
    finally:
        socket.stop()
    assert report.symbols == ["MSFT", "NVDA"]  # the last good list, after the bad edits
    assert socket.subscriptions[:3] == ["AAPL", "MSFT", "NVDA"]
    assert socket.unsubscriptions == ["AAPL"]
    landed = drained_bars(settings, report.bars_published)
    expected = independent_bars([Trade(s, p, v, t) for s, p, v, t in trades])
    by_symbol = {symbol: frame for symbol, frame in landed.groupby("symbol")}
    # MSFT was followed throughout: every bar exact.
    msft = expected[expected["symbol"] == "MSFT"].reset_index(drop=True)
    pd.testing.assert_frame_equal(by_symbol["MSFT"].reset_index(drop=True), msft, check_dtype=False)
    # AAPL only before NVDA's first bar's minute ends; NVDA's last minute is whole.
    assert by_symbol["AAPL"]["ts"].max() <= by_symbol["NVDA"]["ts"].min()
    nvda = expected[expected["symbol"] == "NVDA"].set_index("ts")
    last = by_symbol["NVDA"].set_index("ts").iloc[-1]
    assert last.name == nvda.index.max()
    assert last["volume"] == nvda.loc[last.name, "volume"]


def test_a_stop_mid_minute_publishes_its_bar_once_and_a_restart_never_again(
    live_env: Settings, trades, monkeypatch
) -> None:
    """SIGTERM in the middle of a minute: the open bars are published as they stand (a live
    feed cannot be fetched again). A restart within that minute takes its remaining trades
    as late, not as a second, different bar that would replace the first; the minutes after
    are whole."""
    from stockpipe.runtime import Terminated

    # Paced at 15x: the replay runs no further ahead of the reader than a batch.
    socket = FakeFinnhubSocket(KEY, trades, end_ms=T0 + MINUTES * MINUTE_MS, speed=15).start()
    monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_WS_URL", socket.url)
    settings = load_settings()
    until = pd.Timestamp(T0 + MINUTES * MINUTE_MS, unit="ms", tz="UTC").to_pydatetime()
    # The signal arrives once the replay has sent half of the second minute's trades.
    second = [i for i, (*_, ts) in enumerate(trades) if T0 + MINUTE_MS <= ts < T0 + 2 * MINUTE_MS]
    signal_after = second[len(second) // 2]
    signalled = []

    def clock() -> float:
        if not signalled and socket.sent > signal_after:
            signalled.append(socket.sent)
            raise Terminated()
        return socket.clock()

    try:
        with pytest.raises(Terminated):
            follow_trades(settings, until, clock=clock, sleep=lambda _: None)
        # The restart unpaced: its bars close on the trades' own time, not on a clock that
        # runs on the wall clock (a busy machine made it close a minute before its last
        # trades were read).
        socket.speed = None
        report = follow_trades(settings, until, clock=socket.clock, sleep=lambda _: None)
    finally:
        socket.stop()
    assert signalled and report.late_trades > 0

    published = [json.loads(m.value()) for m in read_topic(settings, settings.kafka.prices_topic)]
    keys = [(m["symbol"], m["ts"]) for m in published]
    assert len(keys) == len(set(keys)) == MINUTES * len(SYMBOLS)  # one bar a minute, once
    landed = pd.DataFrame(published)
    landed["ts"] = pd.to_datetime(landed["ts"], utc=True)
    landed = landed.set_index(["symbol", "ts"]).sort_index()
    expected = independent_bars([Trade(s, p, v, t) for s, p, v, t in trades])
    expected = expected.set_index(["symbol", "ts"]).sort_index()
    columns = ["open", "high", "low", "close", "volume"]
    cut = pd.Timestamp(T0 + MINUTE_MS, unit="ms", tz="UTC")
    whole = [ts != cut for _, ts in expected.index]
    pd.testing.assert_frame_equal(
        landed.loc[whole, columns], expected.loc[whole, columns], check_dtype=False
    )
    # The stopped minute: what had arrived by the signal, so less volume than the minute's.
    stopped = landed.xs(cut, level="ts")
    assert (stopped["volume"] < expected.xs(cut, level="ts")["volume"]).all()
    assert (stopped["open"] == expected.xs(cut, level="ts")["open"]).all()


def test_a_feed_that_keeps_failing_is_retried_with_backoff_until_the_close(
    live_env: Settings, monkeypatch, caplog
) -> None:
    """Nothing answers at the websocket's address: each failure waits (full jitter, capped at
    30 s, the n-th within 2**n s), the key never appears in the log, and the follow ends at
    the session's close rather than giving up or spinning."""
    from stockpipe.local_stack.processes import free_port

    monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_WS_URL", f"ws://127.0.0.1:{free_port()}")
    now = [T0 / 1000]
    delays: list[float] = []

    def sleep(seconds: float) -> None:  # the session's clock moves only by the waits
        delays.append(seconds)
        now[0] += seconds

    until = pd.Timestamp(T0 + 5 * MINUTE_MS, unit="ms", tz="UTC").to_pydatetime()
    report = follow_trades(load_settings(), until, clock=lambda: now[0], sleep=sleep)
    assert report.stopped_because == "the session closed" and report.trades == 0
    assert report.reconnects == len(delays) > 10
    assert all(0 <= d <= min(30.0, 2**n) for n, d in enumerate(delays[:10]))
    assert sum(delays) >= 5 * 60  # it waited out the session, retrying throughout
    assert "reconnecting in" in caplog.text and KEY not in caplog.text


def test_a_trade_for_a_closed_minute_after_a_reconnect_is_late_not_in_a_later_bar(
    live_env: Settings, trades, monkeypatch
) -> None:
    """The connection drops; after the reconnect the feed delivers a trade of the first
    minute, long closed and published: it is counted late, and no bar takes it in."""
    dropped_after = 40  # messages of 5 trades: the first minute is over by then
    stale = ("AAPL", 999.0, 7.0, T0 + 1_000)
    replayed = [*trades[: dropped_after * 5], stale, *trades[dropped_after * 5 :]]
    socket = FakeFinnhubSocket(
        KEY, replayed, end_ms=T0 + MINUTES * MINUTE_MS, drop_after=dropped_after
    ).start()
    monkeypatch.setenv("STOCKPIPE_SOURCE__FINNHUB_WS_URL", socket.url)
    settings = load_settings()
    until = pd.Timestamp(T0 + MINUTES * MINUTE_MS, unit="ms", tz="UTC").to_pydatetime()
    try:
        report = follow_trades(settings, until, clock=socket.clock, sleep=lambda _: None)
    finally:
        socket.stop()
    assert report.reconnects >= 1 and report.late_trades == 1
    landed = drained_bars(settings, report.bars_published)
    expected = independent_bars([Trade(s, p, v, t) for s, p, v, t in trades])
    pd.testing.assert_frame_equal(landed, expected, check_dtype=False)
