"""Ingest: fetch bars -> check them against the message contract -> publish to Kafka.

Invalid bars are never published; they are counted by reason and logged with an example,
so a source that starts sending garbage shows up in the run summary, not in the warehouse.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from stockpipe.contracts import SCHEMA_VERSION, Quote, QuoteRejected, validate_quote
from stockpipe.settings import Settings
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
    rejected: dict[str, int]
    partitions: dict[int, int]

    def summary(self) -> str:
        text = (
            f"{self.source} {self.start:%Y-%m-%d %H:%M}..{self.end:%H:%M} UTC: fetched "
            f"{self.fetched}, published {self.published}, rejected {sum(self.rejected.values())}"
        )
        if self.rejected:
            text += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())) + ")"
        return text


def fetch_bars(
    source: QuoteSource, symbols: list[str], start: datetime, end: datetime
) -> pd.DataFrame:
    """The source's bars in ``[start, end)``."""
    bars = source.fetch(symbols, start, end)
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
    if check.rejected:
        log.warning(
            "%d bars rejected by the contract: %s; e.g. %s",
            check.rejected_total,
            dict(check.rejected),
            check.examples[0],
        )
    return check


def publish_quotes(settings: Settings, quotes: list[Quote]) -> PublishReport:
    """Publish to the prices topic; every delivery acknowledged or PublishError."""
    producer = QuoteProducer(settings.kafka)
    return producer.publish(quotes)


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
        rejected=dict(check.rejected),
        partitions=dict(report.by_partition),
    )
