"""Live ingest: Finnhub's trades over its websocket -> 1-minute bars -> the prices topic.

``stockpipe ingest --follow`` (and the long-running deployment) subscribe to the
watchlist's trades, fold them into minute bars (:class:`~stockpipe.sources.minute_bars.
MinuteBars`: by the trades' own timestamps, a grace for late ones), and publish each bar
once its minute and grace are over, through the same contract check and publish step as
every other ingest (so a bar published before a reconnect is not published again). The
connection is re-made with backoff when it drops; the subscription follows the watchlist
(re-read every minute). It runs until the session closes (then flushes the last bars), or
until it is stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd

from stockpipe import metrics
from stockpipe.ingest import check_bars, publish_quotes, published_bars
from stockpipe.quote_spec import EXCHANGE_TZ
from stockpipe.retry import backoff_delays
from stockpipe.runtime import Terminated
from stockpipe.settings import Settings, load_settings
from stockpipe.sources import api_key
from stockpipe.sources.minute_bars import MinuteBars, Trade
from stockpipe.sources.providers import scrubbed
from stockpipe.streaming.producer import PublishError, QuoteProducer

log = logging.getLogger(__name__)
WATCHLIST_EVERY_SECONDS = 60.0


@dataclass
class FollowReport:
    trades: int = 0
    bars_published: int = 0
    bars_unchanged: int = 0
    rejected: int = 0
    late_trades: int = 0
    reconnects: int = 0
    symbols: list[str] = field(default_factory=list)
    stopped_because: str = ""
    # Per published bar, seconds (of ``clock``) from the end of its minute's grace to its
    # acknowledgement by the broker.
    bar_delays: list[float] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"finnhub live: {self.trades:,} trades -> {self.bars_published:,} bars published "
            f"({self.bars_unchanged} already published, {self.rejected} rejected), "
            f"{self.late_trades} trades too late for their bar, {self.reconnects} reconnects, "
            f"{len(self.symbols)} symbols; stopped: {self.stopped_because}"
        )


def follow_trades(
    settings: Settings,
    until: datetime,
    clock: Callable[[], float] = time.time,
    reload_settings: Callable[[], Settings] = load_settings,
    on_publish: Callable[[FollowReport], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FollowReport:
    """Ingest trades as bars until ``until`` (the session's close), or a signal.

    Args:
        clock: seconds since 1970 (tests replay a session with a clock of their own).
        reload_settings: where the watchlist is re-read from every minute.
        on_publish: called after each publish with the running report (progress).

    Returns:
        what was published; a signal (KeyboardInterrupt) is re-raised after the open bars
        are published.
    """
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
    from websockets.sync.client import connect

    producer = QuoteProducer(settings.kafka)  # one for the session; raises KafkaUnreachable
    key = api_key(settings.source, "finnhub")
    grace_ms = int(settings.source.live_grace_seconds * 1000)
    bars = MinuteBars(grace_ms=grace_ms, published_through=_published_through(settings, clock()))
    report = FollowReport()
    delays: Iterator[float] = iter(())
    deadline = until.timestamp() + settings.source.live_grace_seconds
    forming_every = settings.source.live_forming_seconds
    forming_sent = [0.0]

    def publish_forming() -> None:
        """The forming minute's bars to the forming topic (never the prices topic): the
        last traded price for the live tier within a second, not a final bar."""
        if not forming_every or clock() - forming_sent[0] < forming_every:
            return
        forming_sent[0] = clock()
        forming = bars.forming()
        if forming.empty:
            return
        check = check_bars(forming, "finnhub", fetched_at=datetime.now(UTC))
        try:
            producer.publish_raw(
                ((key, value, None) for key, value in check.messages()),
                topic=settings.kafka.forming_topic,
            )
        except PublishError as exc:  # the final bars are the record; this is a preview
            log.warning("forming bars not published (%s); final bars go on", exc)

    def publish(due) -> None:
        if due.empty:
            return
        check = check_bars(due, "finnhub")
        done = publish_quotes(settings, check, producer)
        acknowledged = clock()
        started = (due["ts"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        closed = started + 60 + grace_ms / 1000
        for delay in (acknowledged - closed).clip(lower=0):
            report.bar_delays.append(float(delay))
            metrics.LIVE_BAR_DELAY.observe(float(delay))
        report.bars_published += done.published
        report.bars_unchanged += done.skipped_unchanged
        report.rejected += check.rejected_total
        late = sum(bars.late.values())
        metrics.LIVE_LATE_TRADES.inc(late - report.late_trades)
        report.late_trades = late
        if on_publish is not None:
            on_publish(report)

    try:
        while clock() < deadline:
            url = f"{settings.source.finnhub_ws_url}?token={key}"
            try:
                with connect(url, open_timeout=settings.source.request_timeout_seconds) as ws:
                    delays = iter(())  # connected: the next drop starts the backoff again
                    subscribed: set[str] = set()
                    watchlist_read = 0.0
                    while clock() < deadline:
                        if clock() - watchlist_read >= WATCHLIST_EVERY_SECONDS:
                            watchlist_read = clock()
                            settings = _follow_watchlist(ws, subscribed, settings, reload_settings)
                            report.symbols = sorted(subscribed)
                        try:
                            message = ws.recv(timeout=0.25)
                        except TimeoutError:
                            message = None
                        if message is not None:
                            report.trades += _take(message, bars, subscribed)
                        # Live, the wall clock leads the trades; a replayed session runs
                        # faster than it, on the trades' own time.
                        publish(bars.close_due(max(int(clock() * 1000), bars.newest_ms)))
                        publish_forming()
            except (ConnectionClosed, InvalidHandshake, OSError) as exc:
                if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
                    raise RuntimeError(
                        f"Finnhub refused the websocket (HTTP {exc.response.status_code}): "
                        "check STOCKPIPE_SOURCE__FINNHUB_API_KEY"
                    ) from None
                report.reconnects += 1
                delay = next(delays, None)
                if delay is None:
                    delays = iter(backoff_delays(10, 1.0, 30.0))
                    delay = next(delays)
                log.warning(
                    "Finnhub websocket: %s; reconnecting in %.1fs",
                    scrubbed(f"{type(exc).__name__}: {exc}", key),
                    delay,
                )
                sleep(delay)
        report.stopped_because = "the session closed"
    except KeyboardInterrupt as exc:
        report.stopped_because = "SIGTERM" if isinstance(exc, Terminated) else "interrupted"
        raise
    finally:
        publish(bars.close_all())
    return report


def _published_through(settings: Settings, now: float) -> dict[str, int]:
    """Per symbol, the newest minute (ms) already published in the session of ``now``: a
    run stopped mid-minute published that minute's bar as it stood."""
    session = datetime.fromtimestamp(now, EXCHANGE_TZ).date()
    state = published_bars(settings)
    try:
        newest = state.newest_of_session("1m", session)
    finally:
        state.close()
    return {symbol: int(ts.timestamp() * 1000) for symbol, ts in newest.items()}


def _follow_watchlist(ws, subscribed: set[str], settings: Settings, reload_settings) -> Settings:
    """Subscribe to symbols added to the watchlist, unsubscribe from those removed."""
    try:
        settings = reload_settings()
    except Exception as exc:  # a bad edit of the settings: keep the last good watchlist
        log.warning("watchlist not re-read (%s); keeping %s", exc, sorted(subscribed))
    wanted = set(settings.source.watchlist)
    for symbol in sorted(wanted - subscribed):
        ws.send(json.dumps({"type": "subscribe", "symbol": symbol}))
    for symbol in sorted(subscribed - wanted):
        ws.send(json.dumps({"type": "unsubscribe", "symbol": symbol}))
    subscribed.clear()
    subscribed.update(wanted)
    return settings


def _take(message: str | bytes, bars: MinuteBars, subscribed: set[str]) -> int:
    """Fold a websocket message's trades into ``bars``; returns how many it held."""
    try:
        payload = json.loads(message)
    except ValueError:
        log.warning("Finnhub websocket: not JSON: %r", str(message)[:200])
        return 0
    kind = payload.get("type")
    if kind == "error":
        log.warning("Finnhub websocket error: %s", payload.get("msg"))
        return 0
    if kind != "trade":
        return 0  # "ping" and others
    taken = 0
    for item in payload.get("data") or []:
        try:
            symbol, price, volume = str(item["s"]).upper(), float(item["p"]), float(item["v"])
            trade = Trade(symbol, price, volume, int(item["t"]))
        except (KeyError, TypeError, ValueError):
            log.warning("Finnhub websocket: a trade without s/p/v/t: %r", item)
            continue
        if trade.symbol in subscribed:  # not a symbol just unsubscribed
            bars.add(trade)
            taken += 1
    return taken


def session_close_after(moment: datetime | None = None) -> datetime:
    """When a follow started at ``moment`` stops: the close of the session open then, or
    of the next session when started outside one."""
    from stockpipe import market_calendar

    moment = moment or datetime.now(UTC)
    day = moment.date()
    upcoming = market_calendar.sessions_between(day, day + timedelta(days=10))
    return next(s.close for s in upcoming if s.close > moment)
