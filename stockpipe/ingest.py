"""Ingest: fetch bars -> check them against the message contract -> publish to Kafka.

Invalid bars are never published; they are counted by reason and logged with an example,
so a source that starts sending garbage shows up in the run summary, not in the warehouse.
"""

from __future__ import annotations

import json
import logging
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
from stockpipe.sources import QuoteSource, make_source
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
    source: QuoteSource, symbols: list[str], start: datetime, end: datetime
) -> pd.DataFrame:
    """The source's bars in ``[start, end)``."""
    bars = source.fetch(symbols, start, end)
    metrics.QUOTES_FETCHED.labels(source.name).inc(len(bars))
    log.info("%s returned %d bars for %d symbols", source.name, len(bars), len(symbols))
    return bars


def check_bars(bars: pd.DataFrame, source: str, fetched_at: datetime | None = None) -> QuoteCheck:
    """Turn source rows into contract-valid quotes; count and describe the rest."""
    fetched_at = fetched_at or datetime.now(UTC)
    check = QuoteCheck()
    for record in bars.to_dict("records"):
        record |= {
            "interval": "1m",
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
    """What ingest last published per symbol and session, so a schedule that refetches the
    whole day every minute publishes only the bars that are new or changed since, and any
    other session (an earlier one, a backfill) can still be published.

    Kept per (symbol, New York session date): the newest bar's start and a fingerprint of
    its values (the newest bar may still be forming, so it may change). Bars of that
    session older than it are not republished, even if the source revised them: the
    warehouse keeps the first fetch of those. Stored as JSON under ``STOCKPIPE_HOME/ingest/``;
    losing the file only means one fetch is republished in full, which the drain absorbs
    without duplicates.
    """

    def __init__(self, path: Path):
        self.path = path
        self._last: dict[str, tuple[str, str]] = {}
        if path.exists():
            try:
                stored = {k: tuple(v) for k, v in json.loads(path.read_text()).items()}
            except (ValueError, TypeError):
                log.warning("ignoring unreadable ingest state %s; republishing once", path)
                stored = {}
            for key, (ts, fingerprint) in stored.items():
                # Before 2026-12 the key was the symbol alone: it names the newest session.
                if "|" not in key:
                    key = _key(key, datetime.fromisoformat(ts))
                self._last[key] = (ts, fingerprint)

    @staticmethod
    def _fingerprint(quote: Quote) -> str:
        return f"{quote.open}|{quote.high}|{quote.low}|{quote.close}|{quote.volume}"

    def new_or_changed(self, quotes: list[Quote]) -> list[Quote]:
        fresh = []
        for quote in quotes:
            ts = quote.ts.isoformat()
            last = self._last.get(_key(quote.symbol, quote.ts))
            if (
                last is None
                or ts > last[0]
                or (ts == last[0] and self._fingerprint(quote) != last[1])
            ):
                fresh.append(quote)
        return fresh

    def remember(self, quotes: list[Quote]) -> None:
        """Record ``quotes`` as published (call only after every delivery was confirmed)."""
        for quote in quotes:
            ts = quote.ts.isoformat()
            key = _key(quote.symbol, quote.ts)
            last = self._last.get(key)
            if last is None or ts >= last[0]:
                self._last[key] = (ts, self._fingerprint(quote))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(self._last, sort_keys=True))
        partial.replace(self.path)


def _key(symbol: str, ts: datetime) -> str:
    """``symbol|session date``: the New York date of the bar ``ts`` starts."""
    return f"{symbol}|{ts.astimezone(EXCHANGE_TZ).date().isoformat()}"


def published_bars(settings: Settings) -> PublishedBars:
    return PublishedBars(settings.home_dir / "ingest" / "published.json")


def publish_quotes(settings: Settings, quotes: list[Quote]) -> PublishReport:
    """Publish the new or changed ones of ``quotes`` to the prices topic, and remember them.

    Raises:
        PublishError: when any message was not acknowledged (nothing is remembered then,
            so the next run publishes them again).
    """
    state = published_bars(settings)
    fresh = state.new_or_changed(quotes)
    report = QuoteProducer(settings.kafka).publish(fresh)
    report.skipped_unchanged = len(quotes) - len(fresh)
    state.remember(fresh)
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
