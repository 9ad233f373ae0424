"""The live path offline, composed once (``stockpipe demo --live``): the previous session's
daily bars (for the change on the day), a simulated exchange behind Finnhub's websocket
protocol, live ingest from it in a thread, and the live tier in the calling thread (store,
views, alerts, the dashboard's snapshot) until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stockpipe import market_calendar
from stockpipe.ingest import IngestReport, ingest_window
from stockpipe.live.exchange import SimulatedExchange
from stockpipe.live.ingest import FollowReport, follow_trades
from stockpipe.live.store import LiveStore, LiveTierReport
from stockpipe.quote_spec import EXCHANGE_TZ
from stockpipe.settings import Settings
from stockpipe.sources.simulated import SimulatedMarket

log = logging.getLogger(__name__)
# The exchange trades until stopped: live ingest's deadline is this far ahead (seconds).
_A_YEAR = 365 * 24 * 3600


@dataclass
class LiveDemoReport:
    """What the demo did: the history it published, the live tier's run, live ingest's
    run (None if it never returned) and the error that stopped live ingest, if one did."""

    previous_close: IngestReport
    tier: LiveTierReport
    trades: FollowReport | None = None
    ingest_error: Exception | None = None


def run_live_demo(
    settings: Settings, on_refresh: Callable[[LiveTierReport], None] | None = None
) -> LiveDemoReport:
    """Run the live path until interrupted; progress is logged (``stockpipe.live.demo``).

    Args:
        settings: the installation's settings (the broker must be up).
        on_refresh: called after each refresh of the live marts (the live tier's progress).

    Returns:
        the report; an interrupt is in ``report.tier.drain.interrupted`` (the live tier
        stops cleanly on it), for the caller to re-raise.
    """
    watchlist = settings.source.watchlist
    market = SimulatedMarket(listed=watchlist)
    # The previous close, for the change on the day: the daily bars of the last session
    # before today's date in New York (the date the exchange's trades carry).
    closed = market_calendar.previous_session(datetime.now(EXCHANGE_TZ).date())
    history = ingest_window(
        settings, closed.open, closed.close, watchlist, source=market, interval="1d"
    )
    log.info("previous close: session %s (%d daily bars)", closed.day, history.published)
    exchange = SimulatedExchange(market).start()
    trading = exchange.trading_settings(settings)
    log.info("exchange: %s (Finnhub's trades protocol), %d symbols", exchange.url, len(watchlist))
    stopping = threading.Event()
    ingested: dict = {}

    def ingest() -> None:
        try:
            ingested["report"] = follow_trades(
                trading,
                datetime.now(UTC) + timedelta(seconds=_A_YEAR / 2),
                # Stopping moves its clock past the deadline: the open bars are published.
                clock=lambda: time.time() + (_A_YEAR if stopping.is_set() else 0),
                reload_settings=lambda: trading,
            )
        except Exception as exc:  # reported with the demo's result
            ingested["error"] = exc

    ingesting = threading.Thread(target=ingest, name="live-ingest", daemon=True)
    ingesting.start()
    try:
        live = LiveStore(settings, on_refresh=on_refresh)
        log.info(
            "live tier: following %s into %s (group %s); the dashboard reads %s",
            settings.kafka.prices_topic,
            live.store.warehouse_dir,
            live.store.kafka.consumer_group,
            live.snapshot,
        )
        tier = live.run()
    finally:
        stopping.set()
        ingesting.join(30)
        exchange.stop()
    return LiveDemoReport(history, tier, ingested.get("report"), ingested.get("error"))
