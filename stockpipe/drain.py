"""Drain: Kafka -> warehouse, in batches, exactly once.

For each batch: decode and check every message against the contract; send the rejects,
unchanged, to the dead-letter topic with headers saying why and where from; write the
accepted rows to the raw zone (when enabled); then commit the rows and the next offsets
in one warehouse transaction. Offsets never move past a message that is neither in the
warehouse nor in the dead-letter topic. Before the first batch the stored offsets are
checked against the cluster (see :mod:`stockpipe.offsets`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka.admin import AdminClient

from stockpipe import metrics
from stockpipe.contracts import describe_reasons
from stockpipe.decoding import DecodedBatch, Rejection, decode_batch, with_loaded_at
from stockpipe.lake import raw_zone_from_settings
from stockpipe.offsets import (
    OffsetsOutOfSync,
    ResetChoice,
    find_problems,
    partition_states,
    reset_positions,
)
from stockpipe.retry import retry_call
from stockpipe.settings import Settings
from stockpipe.streaming.consumer import Batch, BatchConsumer
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.loader import LoadResult, load_batch, read_offsets

log = logging.getLogger(__name__)


@dataclass
class DrainReport:
    batches: int = 0
    messages: int = 0
    inserted: int = 0
    replaced: int = 0
    rejected: Counter = field(default_factory=Counter)
    fenced_partitions: set = field(default_factory=set)
    reset: dict[tuple[str, int], int] = field(default_factory=dict)
    raw_files: list[str] = field(default_factory=list)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    newest_bar: float = 0.0  # Unix time of the newest bar committed
    stopped_because: str = ""
    seconds: float = 0.0

    def add(self, batch: Batch, decoded: DecodedBatch, result: LoadResult) -> None:
        self.batches += 1
        self.messages += len(batch)
        self.inserted += result.inserted
        self.replaced += result.replaced
        self.rejected.update(r.reason for r in decoded.rejections)
        self.fenced_partitions |= set(result.fenced)
        if decoded.rows.num_rows:
            newest = pc.max(decoded.rows["TS"]).as_py().replace(tzinfo=UTC).timestamp()
            self.newest_bar = max(self.newest_bar, newest)
        self.next_offsets.update(result.committed_offsets)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> str:
        text = (
            f"drained {self.messages} messages in {self.batches} batches ({self.seconds:.1f}s): "
            f"{self.inserted} new bars, {self.replaced} re-fetched bars updated, "
            f"{self.rejected_total} to the dead-letter topic"
        )
        text += describe_reasons(self.rejected)
        if self.fenced_partitions:
            text += (
                f"; skipped partitions loaded by another drain: {sorted(self.fenced_partitions)}"
            )
        if self.reset:
            text += f"; offsets reset to {self.reset}"
        return text + f"; stopped: {self.stopped_because}"


def dead_letter_headers(rejection: Rejection) -> list[tuple[str, bytes]]:
    message = rejection.message
    return [
        ("dlq.reason", rejection.reason.encode()),
        ("dlq.error.class", rejection.error_class.encode()),
        ("dlq.error.message", rejection.detail[:1000].encode()),
        ("dlq.source.topic", message.topic().encode()),
        ("dlq.source.partition", str(message.partition()).encode()),
        ("dlq.source.offset", str(message.offset()).encode()),
    ]


def send_to_dead_letter_topic(
    producer: QuoteProducer, topic: str, rejections: list[Rejection]
) -> None:
    """Publish each rejected message unchanged (key and value) with its reason in headers.

    Raises:
        PublishError: when the dead-letter topic did not acknowledge them all; the batch is
            then not committed, so nothing is lost.
    """
    producer.publish_raw(
        ((r.message.key(), r.message.value(), dead_letter_headers(r)) for r in rejections),
        topic=topic,
    )


def check_offsets(
    settings: Settings,
    warehouse: Warehouse,
    admin: AdminClient,
    cluster_id: str | None,
    reset: ResetChoice | None,
) -> dict[tuple[str, int], int]:
    """Refuse to drain when the stored offsets do not fit the cluster, unless told how.

    Returns:
        the offsets written by a reset (empty when nothing was reset).

    Raises:
        OffsetsOutOfSync: naming each partition and what is wrong with it.
    """
    topic = settings.kafka.prices_topic
    states = partition_states(admin, topic)
    stored = read_offsets(warehouse, topic)
    problems = find_problems(stored, states, cluster_id)
    if not problems and reset is None:
        return {}
    if reset is None:
        raise OffsetsOutOfSync(problems)
    positions = reset_positions(states, topic, reset)
    load_batch(warehouse, pa.table({}), positions, cluster_id)
    log.warning(
        "offsets of %s reset to %s (%s): %s",
        topic,
        reset,
        positions,
        "; ".join(p.why for p in problems) or "requested",
    )
    return positions


def drain_to_warehouse(
    settings: Settings,
    warehouse: Warehouse,
    *,
    until_empty: bool = True,
    max_batches: int | None = None,
    max_records: int | None = None,
    reset_offsets: ResetChoice | None = None,
    on_batch: Callable[[DrainReport], None] | None = None,
) -> DrainReport:
    """Drain the prices topic into ``RAW.STOCK_PRICES`` until it is empty (or forever).

    Args:
        until_empty: stop once every assigned partition is read to its end; otherwise
            keep draining (``--follow``) until interrupted or ``max_batches``.
        max_records: records per batch (default: the drain settings).
        reset_offsets: after a rebuilt cluster, where to resume ("earliest" | "latest").
        on_batch: called after each committed batch with the running report (progress).

    Raises:
        OffsetsOutOfSync: the stored offsets do not fit the cluster (and no reset chosen).
    """
    started = time.monotonic()
    limits = settings.drain
    admin = AdminClient(settings.kafka.client_config())
    cluster_id = admin.list_topics(timeout=30).cluster_id
    report = DrainReport()
    report.reset = check_offsets(settings, warehouse, admin, cluster_id, reset_offsets)
    raw_zone = raw_zone_from_settings(settings)

    def start_offsets(partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        stored = read_offsets(warehouse, settings.kafka.prices_topic)
        return {tp: stored[tp].next_offset for tp in partitions if tp in stored}

    dlq = QuoteProducer(settings.kafka)

    def load(batch: Batch, consumer: BatchConsumer) -> None:
        """Decode, dead-letter, file and commit one batch; update the report and metrics.

        A function of its own so that the batch and everything made from it are freed
        before the next batch is fetched: memory follows one batch, not two.
        """
        batch_started = time.monotonic()
        decoded = decode_batch(batch.messages, limits.max_message_bytes)
        rows = with_loaded_at(decoded.rows, datetime.now(UTC))
        if decoded.rejections:
            send_to_dead_letter_topic(dlq, settings.kafka.dlq_topic, decoded.rejections)
        if raw_zone is not None:
            report.raw_files += raw_zone.write_batch(rows)
        load_started = time.monotonic()
        result = retry_call(
            partial(
                load_batch,
                warehouse,
                rows,
                batch.next_offsets,
                cluster_id,
                start_offsets=batch.start_offsets,
            ),
            retry_on=warehouse.retryable_errors,
            max_retries=limits.load_retries,
            base_seconds=limits.load_retry_base_seconds,
            max_seconds=60.0,
            what="warehouse commit",
        )
        metrics.LOAD_DURATION.observe(time.monotonic() - load_started)
        metrics.BATCH_DURATION.observe(time.monotonic() - batch_started)
        _count(batch, decoded, result)
        for tp, stored in result.fenced.items():
            consumer.seek_if_assigned(tp, stored)
        consumer.commit_informational(result.committed_offsets)
        report.add(batch, decoded, result)
        if report.newest_bar:
            metrics.NEWEST_BAR.set(report.newest_bar)
        if on_batch:
            on_batch(report)

    with (
        warehouse.memory_limit(limits.embedded_memory_limit),
        BatchConsumer(settings.kafka, start_offsets) as consumer,
    ):
        while True:
            batch = consumer.next_batch(
                max_records=max_records or limits.max_records,
                max_bytes=limits.max_bytes,
                max_wait_seconds=limits.max_wait_seconds,
            )
            got_messages = bool(len(batch))
            if got_messages:
                load(batch, consumer)
            del batch
            if max_batches is not None and report.batches >= max_batches:
                report.stopped_because = f"max_batches={max_batches}"
                break
            if until_empty and not got_messages:
                if consumer.at_end():
                    report.stopped_because = "caught up with the end of every partition"
                    break
                if not consumer.assigned and time.monotonic() - started > 30:
                    report.stopped_because = "no partitions assigned (other drains hold them)"
                    break
    report.seconds = time.monotonic() - started
    _record_lag(settings, warehouse, admin)
    return report


def _count(batch: Batch, decoded: DecodedBatch, result: LoadResult) -> None:
    metrics.MESSAGES_DRAINED.labels(batch.messages[0].topic()).inc(len(batch))
    metrics.ROWS_LOADED.labels("RAW.STOCK_PRICES", "inserted").inc(result.inserted)
    metrics.ROWS_LOADED.labels("RAW.STOCK_PRICES", "replaced").inc(result.replaced)
    for rejection in decoded.rejections:
        metrics.DEAD_LETTERS.labels(rejection.reason).inc()


def _record_lag(settings: Settings, warehouse: Warehouse, admin: AdminClient) -> None:
    """Consumer lag per partition: messages after the warehouse's offset."""
    topic = settings.kafka.prices_topic
    states = partition_states(admin, topic)
    stored = read_offsets(warehouse, topic)
    for partition, state in states.items():
        position = stored.get((topic, partition))
        start = position.next_offset if position else state.earliest
        metrics.CONSUMER_LAG.labels(topic, str(partition)).set(max(0, state.latest - start))
