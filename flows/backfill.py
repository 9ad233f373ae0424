"""Backfill flow: publish a range of history (daily or 1-minute bars) to Kafka, on demand."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from stockpipe import backfill, market_calendar
from stockpipe.backfill import BackfillPlan, BackfillReport, BackfillWindow
from stockpipe.settings import load_settings
from stockpipe.sources import Interval


@task(retries=2, retry_delay_seconds=[30, 120], retry_jitter_factor=0.5, cache_policy=NO_CACHE)
def publish_history(
    first: date, last: date, interval: Interval, symbols: list[str] | None
) -> BackfillReport:
    """Publish the range window by window; a retry republishes nothing already acknowledged."""
    logger = get_run_logger()
    progress: dict[str, UUID] = {}

    def on_window(plan: BackfillPlan, window: BackfillWindow, report: BackfillReport) -> None:
        done = 100.0 * report.windows / len(plan.windows)
        if "id" not in progress:
            progress["id"] = create_progress_artifact(
                done, key="backfill-progress", description=f"backfill {interval} {first}..{last}"
            )
        else:
            update_progress_artifact(progress["id"], done)
        logger.info(
            "window %d/%d (%s..%s): published %d so far, already published %d",
            report.windows,
            len(plan.windows),
            window.first,
            window.last,
            report.published,
            report.unchanged,
        )

    return backfill.backfill(load_settings(), first, last, interval, symbols, on_window=on_window)


@flow(name="backfill-history")
def backfill_history(
    first: date,
    last: date | None = None,
    interval: Interval = "1d",
    symbols: list[str] | None = None,
) -> dict:
    """Publish the bars of the closed sessions ``first``..``last`` to the prices topic.

    Args:
        first: first session date.
        last: last session date; default the latest closed session.
        interval: "1d" for daily bars (as far back as the source goes), "1m" for minute bars
            (yfinance: the last 30 days).
        symbols: tickers; default the configured watchlist.
    """
    last = last or market_calendar.latest_closed_session().day
    report = publish_history(first, last, interval, symbols)
    logger = get_run_logger()
    for note in report.notes:
        logger.warning(note)
    logger.info(report.summary())
    return {
        "sessions": report.sessions,
        "fetched": report.fetched,
        "published": report.published,
        "unchanged": report.unchanged,
        "rejected": dict(report.rejected),
        "missing": sorted(report.missing),
        "notes": report.notes,
    }
