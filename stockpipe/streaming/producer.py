"""Publish quotes with an idempotent producer and check every delivery report."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

from confluent_kafka import KafkaError, Message, Producer

from stockpipe import metrics
from stockpipe.contracts import Quote
from stockpipe.settings import KafkaSettings
from stockpipe.streaming.clients import client_config, require_reachable

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS = {
    # Exactly-once per partition on the producer side: no duplicates from retries, order kept.
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 20,
    # Keep retrying through a broker restart for up to two minutes before giving up.
    "message.timeout.ms": 120_000,
    # Failed deliveries are reported, every one (a success is any message not reported
    # once the queue is flushed): a Python callback per delivered message costs a large
    # backfill seconds (README, "Why the tuned settings are what they are").
    "delivery.report.only.error": True,
}


class PublishError(RuntimeError):
    """Some messages were not acknowledged by the broker. Nothing is reported as published."""


@dataclass
class PublishReport:
    published: int = 0
    skipped_unchanged: int = 0  # ingest: bars already published unchanged
    dead_lettered: int = 0  # ingest: bars the contract refused, kept on the dead-letter topic


class QuoteProducer:
    """A Kafka producer for quotes (key = symbol, value = the contract's JSON).

    Raises:
        KafkaUnreachable: (on creation) no broker answered within the connect timeout.
    """

    def __init__(self, kafka: KafkaSettings, **overrides: object):
        require_reachable(kafka)
        self._producer = Producer(client_config(kafka) | PRODUCER_DEFAULTS | overrides)
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

    def publish_values(self, messages: Iterable[tuple[str, str]]) -> int:
        """Publish (key, value) pairs to the prices topic and wait until each is
        acknowledged; returns how many were (all, or it raises). The fast path of
        :meth:`publish_raw`, for millions of bars.

        Raises:
            PublishError: when any message was not acknowledged (after librdkafka's retries).
        """
        failures = _Failures()
        produce, topic, on_delivery = self._producer.produce, self.topic, failures.on_delivery
        produced = 0
        for key, value in messages:
            try:
                produce(topic, value, key, on_delivery=on_delivery)
            except BufferError:
                self._wait_for_room(partial(produce, topic, value, key, on_delivery=on_delivery))
            produced += 1
            if produced % 10_000 == 0:
                self._producer.poll(0)
        return self._confirm(topic, produced, failures, 150.0).published

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
        failures = _Failures()
        produce, on_delivery = self._producer.produce, failures.on_delivery
        produced = 0
        for key, value, headers in messages:
            try:
                produce(topic, value, key, on_delivery=on_delivery, headers=headers)
            except BufferError:
                self._wait_for_room(
                    partial(produce, topic, value, key, on_delivery=on_delivery, headers=headers)
                )
            produced += 1
            if produced % 10_000 == 0:
                self._producer.poll(0)
        if before_flush is not None:
            before_flush()
        return self._confirm(topic, produced, failures, flush_timeout)

    def _wait_for_room(self, produce: Callable[[], None]) -> None:
        """``produce()``, serving delivery reports while librdkafka's local queue is full."""
        while True:
            try:
                produce()
                return
            except BufferError:
                self._producer.poll(0.5)

    def _confirm(
        self, topic: str, produced: int, failures: _Failures, flush_timeout: float
    ) -> PublishReport:
        """Wait until every one of ``produced`` messages is acknowledged or reported failed.

        Raises:
            PublishError: some message was not acknowledged.
        """
        remaining = self._producer.flush(flush_timeout)
        failed = len(failures.errors)
        metrics.MESSAGES_PRODUCED.labels(topic).inc(produced - failed - remaining)
        if remaining or failed:
            metrics.DELIVERY_FAILURES.labels(topic).inc(failed + remaining)
            first = "; ".join(sorted({str(e) for e in failures.errors})[:3])
            raise PublishError(
                f"{failed + remaining} of {produced} messages to {topic} were not "
                f"acknowledged ({remaining} still queued){': ' + first if first else ''}"
            )
        return PublishReport(published=produced)

    def close(self) -> None:
        self._producer.flush(30)


class _Failures:
    """The delivery reports of failed messages (with ``delivery.report.only.error`` the
    only reports librdkafka sends)."""

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(err)
