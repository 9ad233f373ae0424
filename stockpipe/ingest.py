"""Ingest: fetch bars -> check them against the message contract -> publish to Kafka.

Invalid bars are never published; they are counted by reason and logged with an example,
so a source that starts sending garbage shows up in the run summary, not in the warehouse.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from stockpipe import metrics
from stockpipe.contracts import (
    SCHEMA_VERSION,
    Quote,
    QuoteRejected,
    describe_reasons,
    validate_quote,
)
from stockpipe.settings import EXCHANGE_TZ, Settings
from stockpipe.sources import Interval, QuoteSource, make_source
from stockpipe.streaming.producer import PublishReport, QuoteProducer

log = logging.getLogger(__name__)
MAX_EXAMPLES = 5


@dataclass
class QuoteCheck:
    """Bars that passed the contract, and why the others did not."""

    quotes: list[Quote] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass
class IngestReport:
    start: datetime
    end: datetime
    source: str
    fetched: int
    published: int
    unchanged: int
    rejected: dict[str, int]
    partitions: dict[int, int]

    def summary(self) -> str:
        text = (
            f"{self.source} {self.start:%Y-%m-%d %H:%M}..{self.end:%H:%M} UTC: fetched "
            f"{self.fetched}, published {self.published}, already published {self.unchanged}, "
            f"rejected {sum(self.rejected.values())}"
        )
        text += describe_reasons(self.rejected)
        return text


def fetch_bars(
    source: QuoteSource,
    symbols: list[str],
    start: datetime,
    end: datetime,
    interval: Interval = "1m",
) -> pd.DataFrame:
    """The source's ``interval`` bars in ``[start, end)``."""
    bars = source.fetch(symbols, start, end, interval)
    metrics.QUOTES_FETCHED.labels(source.name).inc(len(bars))
    log.info("%s returned %d bars for %d symbols", source.name, len(bars), len(symbols))
    return bars


def check_bars(
    bars: pd.DataFrame,
    source: str,
    fetched_at: datetime | None = None,
    interval: Interval = "1m",
) -> QuoteCheck:
    """Turn source rows of ``interval`` bars into contract-valid quotes; count and describe
    the rest."""
    fetched_at = fetched_at or datetime.now(UTC)
    check = QuoteCheck()
    for record in bars.to_dict("records"):
        record |= {
            "interval": interval,
            "source": source,
            "fetched_at": fetched_at,
            "schema_version": SCHEMA_VERSION,
        }
        try:
            check.quotes.append(validate_quote(record))
        except QuoteRejected as exc:
            check.rejected[exc.reason] += 1
            if len(check.examples) < MAX_EXAMPLES:
                check.examples.append(
                    f"{record.get('symbol')!s} {record.get('ts')!s}: {exc.message}"
                )
    for reason, count in check.rejected.items():
        metrics.QUOTES_REJECTED.labels(reason).inc(count)
    if check.rejected:
        log.warning(
            "%d bars rejected by the contract: %s; e.g. %s",
            check.rejected_total,
            dict(check.rejected),
            check.examples[0],
        )
    return check


class PublishedBars:
    """What ingest last published per symbol, interval and session, so a schedule that
    refetches the whole day every minute publishes only the bars that are new or changed
    since, and any other session (an earlier one, a backfill) can still be published.

    Kept per (symbol, interval, New York session date): the newest bar's start and a
    fingerprint of its values (the newest bar may still be forming, so it may change). Bars
    of that session older than it are not republished, even if the source revised them: the
    warehouse keeps the first fetch of those. Stored in SQLite under
    ``STOCKPIPE_HOME/ingest/`` (a backfill of decades of daily bars for hundreds of symbols
    is millions of entries; concurrent runs, such as a backfill beside the minute schedule,
    take turns through its lock). Losing the file only means one fetch is republished in
    full, which the drain absorbs without duplicates.
    """

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=60)
        with self._db:
            self._db.execute(
                "create table if not exists published (symbol text not null, "
                "bar_interval text not null, session text not null, last_ts text not null, "
                "fingerprint text not null, primary key (symbol, bar_interval, session)) "
                "without rowid"
            )
        self._import_json(path.with_suffix(".json"))

    def _import_json(self, legacy: Path) -> None:
        """Take over the JSON file ingest kept before 2026-12 (1-minute bars only)."""
        if not legacy.exists():
            return
        try:
            stored = {k: tuple(v) for k, v in json.loads(legacy.read_text()).items()}
        except (ValueError, TypeError):
            log.warning("ignoring unreadable ingest state %s; republishing once", legacy)
            stored = {}
        rows = []
        for key, (ts, fingerprint) in stored.items():
            # Keyed by the symbol alone at first (it named the newest session), then
            # by symbol|session.
            symbol, _, day = key.partition("|")
            day = day or _session_day(datetime.fromisoformat(ts))
            rows.append((symbol, "1m", day, ts, fingerprint))
        self._upsert(rows)
        legacy.replace(legacy.with_suffix(".json.imported"))

    @staticmethod
    def _fingerprint(quote: Quote) -> str:
        return f"{quote.open}|{quote.high}|{quote.low}|{quote.close}|{quote.volume}"

    def _stored(self, quotes: list[Quote]) -> dict[tuple[str, str, str], tuple[str, str]]:
        """The stored entries for the sessions ``quotes`` fall in."""
        spans: dict[tuple[str, str], list[str]] = {}
        for quote in quotes:
            day = _session_day(quote.ts)
            span = spans.setdefault((quote.symbol, quote.interval), [day, day])
            span[0], span[1] = min(span[0], day), max(span[1], day)
        found = {}
        for (symbol, interval), (first, last) in spans.items():
            rows = self._db.execute(
                "select session, last_ts, fingerprint from published where symbol = ? "
                "and bar_interval = ? and session between ? and ?",
                (symbol, interval, first, last),
            )
            for day, ts, fingerprint in rows:
                found[(symbol, interval, day)] = (ts, fingerprint)
        return found

    def new_or_changed(self, quotes: list[Quote]) -> list[Quote]:
        stored = self._stored(quotes)
        fresh = []
        for quote in quotes:
            ts = quote.ts.isoformat()
            last = stored.get((quote.symbol, quote.interval, _session_day(quote.ts)))
            if (
                last is None
                or ts > last[0]
                or (ts == last[0] and self._fingerprint(quote) != last[1])
            ):
                fresh.append(quote)
        return fresh

    def remember(self, quotes: list[Quote]) -> None:
        """Record ``quotes`` as published (call only after every delivery was confirmed)."""
        newest: dict[tuple[str, str, str], Quote] = {}
        for quote in quotes:
            key = (quote.symbol, quote.interval, _session_day(quote.ts))
            if key not in newest or quote.ts >= newest[key].ts:
                newest[key] = quote
        self._upsert([(*key, q.ts.isoformat(), self._fingerprint(q)) for key, q in newest.items()])

    def _upsert(self, rows: list[tuple[str, str, str, str, str]]) -> None:
        # An entry only moves forward: a bar older than the stored newest one leaves it.
        with self._db:
            self._db.executemany(
                "insert into published values (?, ?, ?, ?, ?) "
                "on conflict (symbol, bar_interval, session) do update set "
                "last_ts = excluded.last_ts, fingerprint = excluded.fingerprint "
                "where excluded.last_ts >= published.last_ts",
                rows,
            )

    def close(self) -> None:
        self._db.close()


def _session_day(ts: datetime) -> str:
    """The New York date of the bar starting at ``ts``: its session."""
    return ts.astimezone(EXCHANGE_TZ).date().isoformat()


def published_bars(settings: Settings) -> PublishedBars:
    return PublishedBars(settings.home_dir / "ingest" / "published.sqlite")


def publish_quotes(settings: Settings, quotes: list[Quote]) -> PublishReport:
    """Publish the new or changed ones of ``quotes`` to the prices topic, and remember them.

    Raises:
        PublishError: when any message was not acknowledged (nothing is remembered then,
            so the next run publishes them again).
    """
    state = published_bars(settings)
    try:
        fresh = state.new_or_changed(quotes)
        report = QuoteProducer(settings.kafka).publish(fresh)
        report.skipped_unchanged = len(quotes) - len(fresh)
        state.remember(fresh)
    finally:
        state.close()
    return report


def ingest_window(
    settings: Settings,
    start: datetime,
    end: datetime,
    symbols: list[str] | None = None,
    source: QuoteSource | None = None,
) -> IngestReport:
    """Fetch, check and publish one window of bars (the CLI's ingest; the flow runs the same
    three steps as tasks)."""
    source = source or make_source(settings.source)
    symbols = symbols or settings.source.watchlist
    bars = fetch_bars(source, symbols, start, end)
    check = check_bars(bars, source.name)
    report = publish_quotes(settings, check.quotes)
    return IngestReport(
        start=start,
        end=end,
        source=source.name,
        fetched=len(bars),
        published=report.published,
        unchanged=report.skipped_unchanged,
        rejected=dict(check.rejected),
        partitions=dict(report.by_partition),
    )
