"""Publish quotes with an idempotent producer and check every delivery report."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, Producer

from stockpipe import metrics
from stockpipe.contracts import Quote
from stockpipe.settings import KafkaSettings

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS = {
    # Exactly-once per partition on the producer side: no duplicates from retries, order kept.
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 20,
    # Keep retrying through a broker restart for up to two minutes before giving up.
    "message.timeout.ms": 120_000,
}


class PublishError(RuntimeError):
    """Some messages were not acknowledged by the broker. Nothing is reported as published."""


@dataclass
class PublishReport:
    published: int = 0
    by_partition: Counter = field(default_factory=Counter)
    skipped_unchanged: int = 0  # ingest: bars already published unchanged


class QuoteProducer:
    """A Kafka producer for quotes (key = symbol, value = the contract's JSON)."""

    def __init__(self, kafka: KafkaSettings, **overrides: object):
        self._producer = Producer(kafka.client_config() | PRODUCER_DEFAULTS | overrides)
        self.topic = kafka.prices_topic

    def publish(
        self, quotes: Iterable[Quote], topic: str | None = None, flush_timeout: float = 150.0
    ) -> PublishReport:
        """Publish ``quotes`` and wait for every delivery report.

        Raises:
            PublishError: when any message was not acknowledged (after librdkafka's retries).
        """
        return self.publish_raw(
            ((q.key(), q.to_json(), None) for q in quotes), topic=topic, flush_timeout=flush_timeout
        )

    def publish_raw(
        self,
        messages: Iterable[
            tuple[bytes | str | None, bytes | str | None, list[tuple[str, bytes]] | None]
        ],
        topic: str | None = None,
        flush_timeout: float = 150.0,
        before_flush: Callable[[], None] | None = None,
    ) -> PublishReport:
        """Publish (key, value, headers) as they are; used for quotes and for dead letters.

        Args:
            before_flush: called after the last message is handed to librdkafka and before
                waiting for the delivery reports.
        """
        topic = topic or self.topic
        report = PublishReport()
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err)
            else:
                report.published += 1
                report.by_partition[msg.partition()] += 1

        produced = 0
        for key, value, headers in messages:
            while True:
                try:
                    self._producer.produce(
                        topic, key=key, value=value, headers=headers, on_delivery=on_delivery
                    )
                    break
                except BufferError:
                    # The local queue is full: serve delivery reports until there is room.
                    self._producer.poll(0.5)
            produced += 1
            if produced % 10_000 == 0:
                self._producer.poll(0)
        if before_flush is not None:
            before_flush()
        remaining = self._producer.flush(flush_timeout)
        metrics.MESSAGES_PRODUCED.labels(topic).inc(report.published)
        if remaining or errors:
            metrics.DELIVERY_FAILURES.labels(topic).inc(len(errors) + remaining)
            first = "; ".join(sorted({str(e) for e in errors})[:3])
            raise PublishError(
                f"{len(errors) + remaining} of {produced} messages to {topic} were not "
                f"acknowledged ({remaining} still queued){': ' + first if first else ''}"
            )
        return report

    def close(self) -> None:
        self._producer.flush(30)
