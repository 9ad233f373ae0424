"""Drain: Kafka -> warehouse, in batches, exactly once.

For each batch: decode and check every message against the contract; send the rejects,
unchanged, to the dead-letter topic with headers saying why and where from; then commit the
accepted rows and the next offsets in one warehouse transaction. Offsets never move past a
message that is neither in the warehouse nor in the dead-letter topic.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from confluent_kafka import Message
from confluent_kafka.admin import AdminClient

from stockpipe.contracts import QuoteRejected, validate_quote
from stockpipe.settings import Settings
from stockpipe.streaming.consumer import Batch, BatchConsumer
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.loader import RAW_COLUMNS, LoadResult, load_batch, read_offsets

log = logging.getLogger(__name__)


@dataclass
class DeadLetter:
    message: Message
    reason: str
    error_class: str
    detail: str


@dataclass
class DecodedBatch:
    rows: pd.DataFrame
    dead_letters: list[DeadLetter]


@dataclass
class DrainReport:
    batches: int = 0
    messages: int = 0
    inserted: int = 0
    replaced: int = 0
    rejected: Counter = field(default_factory=Counter)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    stopped_because: str = ""
    seconds: float = 0.0

    def add(self, batch: Batch, decoded: DecodedBatch, result: LoadResult) -> None:
        self.batches += 1
        self.messages += len(batch)
        self.inserted += result.inserted
        self.replaced += result.replaced
        self.rejected.update(d.reason for d in decoded.dead_letters)
        self.next_offsets.update(batch.next_offsets)

    def summary(self) -> str:
        text = (
            f"drained {self.messages} messages in {self.batches} batches ({self.seconds:.1f}s): "
            f"{self.inserted} new bars, {self.replaced} re-fetched bars updated, "
            f"{sum(self.rejected.values())} to the dead-letter topic"
        )
        if self.rejected:
            text += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())) + ")"
        return text + f"; stopped: {self.stopped_because}"


def decode_batch(batch: Batch, max_message_bytes: int, loaded_at: datetime) -> DecodedBatch:
    """Split a batch into warehouse rows and dead letters (with the reason for each)."""
    records: list[dict] = []
    dead: list[DeadLetter] = []
    for message in batch.messages:
        value = message.value()
        try:
            if value is None:
                raise QuoteRejected("empty_value", "message has no value")
            if len(value) > max_message_bytes:
                raise QuoteRejected(
                    "oversized", f"{len(value)} bytes > max_message_bytes {max_message_bytes}"
                )
            try:
                payload = json.loads(value.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise QuoteRejected("undecodable", f"not UTF-8: {exc}") from None
            except json.JSONDecodeError as exc:
                raise QuoteRejected("invalid_json", f"not JSON: {exc}") from None
            if not isinstance(payload, dict):
                raise QuoteRejected("not_an_object", f"JSON {type(payload).__name__}, not object")
            quote = validate_quote(payload)
        except QuoteRejected as exc:
            dead.append(DeadLetter(message, exc.reason, "QuoteRejected", exc.message))
            continue
        _, ts = message.timestamp()
        records.append(
            {
                "SYMBOL": quote.symbol,
                "TS": quote.ts,
                "BAR_INTERVAL": quote.interval,
                "OPEN": quote.open,
                "HIGH": quote.high,
                "LOW": quote.low,
                "CLOSE": quote.close,
                "VOLUME": quote.volume,
                "SOURCE": quote.source,
                "FETCHED_AT": quote.fetched_at,
                "SCHEMA_VERSION": quote.schema_version,
                "KAFKA_TOPIC": message.topic(),
                "KAFKA_PARTITION": message.partition(),
                "KAFKA_OFFSET": message.offset(),
                "KAFKA_TIMESTAMP": datetime.fromtimestamp(ts / 1000, UTC) if ts > 0 else None,
            }
        )
    rows = pd.DataFrame.from_records(records, columns=[c for c in RAW_COLUMNS if c != "LOADED_AT"])
    for column in ("TS", "FETCHED_AT", "KAFKA_TIMESTAMP"):
        # Warehouse timestamps are UTC wall-clock (TIMESTAMP_NTZ).
        rows[column] = pd.to_datetime(rows[column], utc=True).dt.tz_localize(None)
    rows["LOADED_AT"] = pd.Timestamp(loaded_at).tz_convert("UTC").tz_localize(None)
    rows["VOLUME"] = rows["VOLUME"].astype("int64")
    return DecodedBatch(rows=rows, dead_letters=dead)


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    message = letter.message
    return [
        ("dlq.reason", letter.reason.encode()),
        ("dlq.error.class", letter.error_class.encode()),
        ("dlq.error.message", letter.detail[:1000].encode()),
        ("dlq.source.topic", message.topic().encode()),
        ("dlq.source.partition", str(message.partition()).encode()),
        ("dlq.source.offset", str(message.offset()).encode()),
    ]


def send_to_dead_letter_topic(
    producer: QuoteProducer, topic: str, letters: list[DeadLetter]
) -> None:
    """Publish each rejected message unchanged (key and value) with its reason in headers."""
    for letter in letters:
        producer.publish_raw(
            [(letter.message.key(), letter.message.value())],
            topic=topic,
            headers=dead_letter_headers(letter),
        )


def kafka_cluster_id(settings: Settings) -> str | None:
    return AdminClient(settings.kafka.client_config()).list_topics(timeout=30).cluster_id


def drain_to_warehouse(
    settings: Settings,
    warehouse: Warehouse,
    *,
    until_empty: bool = True,
    max_batches: int | None = None,
    max_records: int | None = None,
    assignment_timeout_seconds: float = 30.0,
    on_batch: Callable[[DrainReport], None] | None = None,
) -> DrainReport:
    """Drain the prices topic into ``RAW.STOCK_PRICES`` until it is empty (or forever).

    Args:
        until_empty: stop once every assigned partition is read to its end; otherwise
            keep draining (``--follow``) until interrupted or ``max_batches``.
        max_records: records per batch (default: the drain settings).
        on_batch: called after each committed batch with the running report (progress).
    """
    started = time.monotonic()
    limits = settings.drain
    cluster_id = kafka_cluster_id(settings)
    report = DrainReport()

    def start_offsets(partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        stored = read_offsets(warehouse, settings.kafka.prices_topic)
        return {tp: stored[tp].next_offset for tp in partitions if tp in stored}

    dlq = QuoteProducer(settings.kafka)
    with BatchConsumer(settings.kafka, start_offsets) as consumer:
        while True:
            batch = consumer.next_batch(
                max_records=max_records or limits.max_records,
                max_bytes=limits.max_bytes,
                max_wait_seconds=limits.max_wait_seconds,
            )
            if len(batch):
                decoded = decode_batch(batch, limits.max_message_bytes, datetime.now(UTC))
                if decoded.dead_letters:
                    send_to_dead_letter_topic(dlq, settings.kafka.dlq_topic, decoded.dead_letters)
                result = load_batch(warehouse, decoded.rows, batch.next_offsets, cluster_id)
                consumer.commit_informational(batch.next_offsets)
                report.add(batch, decoded, result)
                if on_batch:
                    on_batch(report)
            if max_batches is not None and report.batches >= max_batches:
                report.stopped_because = f"max_batches={max_batches}"
                break
            if until_empty and not len(batch):
                if consumer.at_end():
                    report.stopped_because = "caught up with the end of every partition"
                    break
                if (
                    not consumer.assigned
                    and time.monotonic() - started > assignment_timeout_seconds
                ):
                    report.stopped_because = "no partitions assigned (other drains hold them)"
                    break
    report.seconds = time.monotonic() - started
    return report
