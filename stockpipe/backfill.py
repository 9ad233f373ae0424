"""Backfill: publish a range of history (daily or 1-minute bars) to the prices topic.

The range is cut into windows of closed sessions, each no longer than the source serves in
one request (yfinance: 7 days of 1-minute bars, from the last 30 days only). Each window is
one ingest step (fetch -> contract check -> publish the new or changed bars), so retries,
rate-limit handling, rejected-bar reports and the "already published" memory are ingest's
own, and re-running a backfill publishes nothing new. The drain then loads the bars and the
trends build turns daily bars into the daily marts (see ``sql/models/marts/daily_bars.sql``
for which figures win when a session has both daily and minute bars).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from stockpipe import market_calendar
from stockpipe.contracts import describe_reasons
from stockpipe.ingest import ingest_window
from stockpipe.settings import Settings
from stockpipe.sources import Interval, QuoteSource, make_source
from stockpipe.streaming.producer import QuoteProducer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackfillWindow:
    """Bars with ``start <= ts < end``: the sessions ``first``..``last``."""

    first: date
    last: date
    start: datetime
    end: datetime
    sessions: int


@dataclass
class BackfillPlan:
    """The windows to fetch, and why the range asked for was narrowed, if it was."""

    interval: Interval
    windows: list[BackfillWindow]
    notes: list[str] = field(default_factory=list)

    @property
    def sessions(self) -> int:
        return sum(w.sessions for w in self.windows)


@dataclass
class BackfillReport:
    interval: Interval
    source: str
    first: date | None
    last: date | None
    sessions: int = 0
    windows: int = 0
    fetched: int = 0
    published: int = 0
    unchanged: int = 0
    rejected: Counter = field(default_factory=Counter)
    missing: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        span = f"{self.first}..{self.last}" if self.first else "no closed session in range"
        text = (
            f"backfill {self.interval} from {self.source} {span} ({self.sessions} sessions, "
            f"{self.windows} windows): fetched {self.fetched}, published {self.published}, "
            f"already published {self.unchanged}, rejected {sum(self.rejected.values())}"
        )
        text += describe_reasons(dict(self.rejected))
        if self.missing:
            text += f"; no bars from the source for {', '.join(sorted(self.missing))}"
        return text


def plan_backfill(
    source: QuoteSource,
    interval: Interval,
    first: date,
    last: date,
    now: datetime | None = None,
) -> BackfillPlan:
    """Cut ``first``..``last`` into windows of closed sessions the source can serve.

    Sessions that have not closed by ``now`` are left to the live schedule (a daily bar of
    an open session is not final). Sessions older than the source serves are left out with
    a note.

    Raises:
        ValueError: ``first`` is after ``last``, or a date lies outside the calendar.
    """
    if first > last:
        raise ValueError(f"--from {first} is after --to {last}")
    now = now or datetime.now(UTC)
    sessions = market_calendar.schedule(first, last)
    plan = BackfillPlan(interval=interval, windows=[])
    if sessions.empty:
        plan.notes.append(f"no NYSE session from {first} to {last}")
        return plan
    closed = sessions[sessions["close"] <= now]
    if len(closed) < len(sessions):
        plan.notes.append(
            f"{len(sessions) - len(closed)} session(s) not closed yet left to the live schedule"
        )
    limit = source.history_limit(interval)
    if limit.max_age_days is not None:
        oldest = now - timedelta(days=limit.max_age_days)
        served = closed[closed["open"] >= oldest]
        if len(served) < len(closed):
            plan.notes.append(
                f"{source.name} serves {interval} bars of the last {limit.max_age_days} days "
                f"only: {len(closed) - len(served)} older session(s) skipped"
            )
        closed = served
    span = timedelta(days=limit.days_per_request) if limit.days_per_request else None
    window: list[tuple[date, datetime, datetime]] = []
    for label, opened, closes in zip(
        closed.index,
        closed["open"].dt.to_pydatetime(),
        closed["close"].dt.to_pydatetime(),
        strict=True,
    ):
        if window and span is not None and closes - window[0][1] > span:
            plan.windows.append(_window(window))
            window = []
        window.append((label.date(), opened, closes))
    if window:
        plan.windows.append(_window(window))
    return plan


def _window(sessions: list[tuple[date, datetime, datetime]]) -> BackfillWindow:
    return BackfillWindow(
        first=sessions[0][0],
        last=sessions[-1][0],
        start=sessions[0][1],
        end=sessions[-1][2],
        sessions=len(sessions),
    )


def backfill(
    settings: Settings,
    first: date,
    last: date,
    interval: Interval = "1d",
    symbols: list[str] | None = None,
    source: QuoteSource | None = None,
    on_window: Callable[[BackfillPlan, BackfillWindow, BackfillReport], None] | None = None,
    now: datetime | None = None,
) -> BackfillReport:
    """Publish the ``interval`` bars of ``symbols`` for the closed sessions ``first``..``last``.

    Args:
        symbols: tickers; default the configured watchlist.
        source: default the configured source (``STOCKPIPE_SOURCE__KIND``).
        on_window: called after each window is published, with the totals so far (progress).
        now: the instant that decides which sessions have closed (tests).

    Returns:
        What was fetched, published, already published and rejected, over every window.

    Raises:
        PublishError: a window's messages were not acknowledged (the windows before it stay
            published and remembered; re-running continues from there).
    """
    source = source or make_source(settings.source, settings.home_dir / "sources")
    # One producer for every window; made first, it checks the broker answers before the
    # source is asked for anything.
    producer = QuoteProducer(settings.kafka)
    symbols = symbols or settings.source.watchlist
    plan = plan_backfill(source, interval, first, last, now)
    report = BackfillReport(
        interval=interval,
        source=source.name,
        first=plan.windows[0].first if plan.windows else None,
        last=plan.windows[-1].last if plan.windows else None,
        sessions=plan.sessions,
        notes=list(plan.notes),
    )
    for note in plan.notes:  # the caller shows them (the CLI's "note:" lines, the flow's log)
        log.info("backfill: %s", note)
    seen: set[str] = set()
    for window in plan.windows:
        done = ingest_window(
            settings, window.start, window.end, symbols, source, interval, producer
        )
        report.windows += 1
        report.fetched += done.fetched
        report.published += done.published
        report.unchanged += done.unchanged
        report.rejected.update(done.rejected)
        seen |= done.symbols_with_bars
        report.missing = set(symbols) - seen
        if on_window is not None:
            on_window(plan, window, report)
    return report
