"""Demo flow: one exchange session through the whole pipeline, after a year of daily history.

The one-time warehouse set-up (the demo plays the admin too), then the runtime flows as a
schedule would run them: backfill -> ingest (the previous session, then the session in
slices) -> drain -> trends (with dbt's docs and the static report) -> validation. Each step
says what it did on the ``flows.demo`` logger (``stockpipe demo`` prints those lines); the
returned :class:`DemoReport` holds what the demo shows at its end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

import pandas as pd
from prefect import flow

from flows.backfill import backfill_history
from flows.drain import drain_to_warehouse
from flows.ingest import ingest_quotes
from flows.trends import build_trends
from flows.validate import validate_session
from stockpipe import market_calendar, trends
from stockpipe.settings import load_settings
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse

log = logging.getLogger(__name__)
# The daily history before the session: enough for SMA 50, RSI and the 52-week range.
HISTORY_DAYS = 365


@dataclass
class DemoReport:
    """What the demo shows at its end.

    Attributes:
        session: the demo's session.
        published: bars published by this run (history and minutes; 0 on a re-run).
        latest: MARTS.LATEST_QUOTE; daily: the latest daily trends per symbol.
        row_counts: rows per table of the warehouse.
        location: where the warehouse is.
        validation: the validation flow's message; validated: whether it passed.
    """

    session: date
    published: int
    latest: pd.DataFrame
    daily: pd.DataFrame
    row_counts: dict[str, int]
    location: str
    validation: str
    validated: bool


def ingest_windows(session: market_calendar.Session, slices: int) -> list[tuple]:
    """The previous session's minute bars in one go (so the day's change has a previous
    close), then ``session`` in ``slices`` windows, each (start, end, label)."""
    previous = market_calendar.previous_session(session.day)
    windows = [(previous.open, previous.close, f"previous session {previous.day}")]
    minutes = session.minutes
    slices = max(1, min(slices, len(minutes)))
    edges = [minutes[round(i * len(minutes) / slices)].to_pydatetime() for i in range(slices)]
    for i, (start, end) in enumerate(pairwise([*edges, session.close]), start=1):
        windows.append((start, end, f"session {session.day} slice {i}/{slices}"))
    return windows


@flow(name="demo-session")
def demo_session(session: date, slices: int = 4) -> DemoReport:
    """One session through the pipeline on the configured source (the simulated one by
    default), into the configured warehouse.

    Args:
        session: the exchange session to play.
        slices: ingest runs the session is split into (as a schedule's runs would be).
    """
    settings = load_settings()
    day = market_calendar.session(session)

    with Warehouse.connect(settings, "setup") as warehouse:
        applied = setup_warehouse(warehouse, settings)
    log.info(
        f"warehouse set-up: {len(applied)} SQL files applied" if applied else "warehouse set up"
    )

    previous = market_calendar.previous_session(day.day)
    history_end = market_calendar.previous_session(previous.day).day
    history_start = history_end - timedelta(days=HISTORY_DAYS)
    history = backfill_history(first=history_start, last=history_end, interval="1d")
    log.info(
        f"backfill daily bars {history_start}..{history_end}: published "
        f"{history['published']}, already published {history['unchanged']}"
    )

    published = history["published"]
    for start, end, label in ingest_windows(day, slices):
        result = ingest_quotes(start=start, end=end, symbols=settings.source.watchlist)
        published += result["published"]
        log.info(
            f"ingest {label} ({start:%H:%M}-{end:%H:%M} UTC): published {result['published']} "
            f"bars, already published {result['unchanged']}, "
            f"rejected {sum(result['rejected'].values())}"
        )

    drained = drain_to_warehouse(until_empty=True)
    log.info(
        f"drain: {drained['messages']} messages -> {drained['inserted']} new bars, "
        f"{drained['replaced']} updated, "
        f"{sum(drained['dead_lettered'].values())} dead-lettered"
    )
    build_trends(docs=True, report=True)
    validated = validate_session(session=day.day, return_state=True)

    with Warehouse.connect(settings) as warehouse:
        return DemoReport(
            session=day.day,
            published=published,
            latest=trends.latest_quotes(warehouse),
            daily=trends.latest_trends(warehouse),
            row_counts=trends.row_counts(warehouse),
            location=str(warehouse.location),
            validation=str(validated.message),
            validated=validated.is_completed(),
        )
