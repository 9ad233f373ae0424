"""Ingest flow: a window of 1-minute bars fetched, checked and published to Kafka (the
library's ingest stage, as the CLI runs it), or live trades as minute bars."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from flows.market_hours import MarketHours, skip_outside_market_hours
from stockpipe import ingest, market_calendar, metrics
from stockpipe.live import ingest as live_ingest
from stockpipe.settings import load_settings


@task(retries=3, retry_delay_seconds=[5, 20, 60], retry_jitter_factor=0.5, cache_policy=NO_CACHE)
def publish_window(symbols: list[str], start: datetime, end: datetime) -> ingest.IngestReport:
    """The ingest stage (fetch, check, publish): retried whole, as a retry publishes only
    what the broker has not acknowledged yet (bars already published are skipped)."""
    return ingest.ingest_window(load_settings(), start, end, symbols=symbols)


@flow(name="ingest-quotes")
def ingest_quotes(
    start: datetime | None = None,
    end: datetime | None = None,
    symbols: list[str] | None = None,
    market_hours: MarketHours = "ignore",
) -> dict | State:
    """Publish the bars of ``[start, end)`` for the watchlist.

    Args:
        start: first bar (UTC); default the open of the latest session.
        end: bars before this instant (UTC); default now.
        symbols: tickers; default the configured watchlist.
        market_hours: "in_session" on schedules: runs outside the NYSE session are skipped.
    """
    if (skipped := skip_outside_market_hours(market_hours)) is not None:
        return skipped
    settings = load_settings()
    with metrics.pushed_at_end("ingest-quotes", settings.metrics.pushgateway_url):
        end = end or datetime.now(UTC)
        start = start or market_calendar.latest_session(end).open
        symbols = symbols or settings.source.watchlist

        report = publish_window(symbols, start, end)
        get_run_logger().info(report.summary())
        return {
            "source": report.source,
            "fetched": report.fetched,
            "published": report.published,
            "unchanged": report.unchanged,
            "rejected": report.rejected,
            "without_bars": list(report.without_bars),
            "unfetched": list(report.unfetched),
        }


@flow(name="ingest-live-trades")
def ingest_live_trades(market_hours: MarketHours = "ignore") -> dict | State:
    """Finnhub's trades over its websocket as 1-minute bars, published as each minute (and
    its grace) ends, until the session closes (STOCKPIPE_SOURCE__KIND=finnhub).

    Args:
        market_hours: "in_session" on its schedule (started at the open): a run on a
            holiday or after the close is skipped.
    """
    if (skipped := skip_outside_market_hours(market_hours)) is not None:
        return skipped
    settings = load_settings()
    logger = get_run_logger()
    progress: dict[str, UUID] = {}
    until = live_ingest.session_close_after(datetime.now(UTC))
    opened = datetime.now(UTC)

    def on_publish(report: live_ingest.FollowReport) -> None:
        logger.info(report.summary())
        done = min(100.0, 100.0 * (datetime.now(UTC) - opened) / (until - opened))
        if "id" not in progress:
            progress["id"] = create_progress_artifact(
                done, key="live-ingest-progress", description=f"the session until {until:%H:%M} UTC"
            )
        else:
            update_progress_artifact(progress["id"], done)

    with metrics.pushed_at_end("ingest-live-trades", settings.metrics.pushgateway_url):
        report = live_ingest.follow_trades(settings, until, on_publish=on_publish)
        logger.info(report.summary())
    return {
        "trades": report.trades,
        "bars_published": report.bars_published,
        "late_trades": report.late_trades,
        "reconnects": report.reconnects,
    }
