"""Consume the prices topic in bounded batches, starting where the warehouse says.

Kafka's consumer-group offsets are not trusted for where to resume: on every partition
assignment the consumer seeks to the offsets stored in the warehouse (committed in the same
transaction as the rows). Group commits are still made, after each load, so that lag tools
show something sensible; they are informational.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient

from stockpipe.settings import KafkaSettings
from stockpipe.streaming.clients import client_config

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
StartOffsets = Callable[[list[TopicPartition]], dict[TopicPartition, int]]


@dataclass
class Batch:
    """Messages of one batch and, per partition, the offset to resume from after it."""

    messages: list[Message] = field(default_factory=list)
    start_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    payload_bytes: int = 0

    def __len__(self) -> int:
        return len(self.messages)


class BatchConsumer:
    """A consumer-group member that hands out batches bounded by records, bytes and time.

    Args:
        kafka: connection settings and topic names.
        start_offsets: given the partitions just assigned, the offset to start each from
            (the warehouse's record); partitions it does not name start at the earliest.
    """

    def __init__(self, kafka: KafkaSettings, start_offsets: StartOffsets, **overrides: object):
        self.topic = kafka.prices_topic
        self._start_offsets = start_offsets
        config = client_config(kafka) | {
            "group.id": kafka.consumer_group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # End-of-partition events tell the drain it has caught up, without a
            # watermark round trip per partition.
            "enable.partition.eof": True,
            "partition.assignment.strategy": "range",
            # Memory follows the batch, not the backlog. Fetches are small and frequent:
            # the broker sends compressed record batches, which librdkafka holds
            # decompressed until every message in them is consumed. The prefetch queue
            # (decompressed bytes) holds a few thousand messages. When it is full
            # librdkafka waits fetch.queue.backoff.ms before fetching again: its default
            # starved the drain behind a small queue; a short backoff lets a small queue
            # keep up (README, "Why the tuned settings are what they are").
            # fetch.max.bytes may not be below message.max.bytes (1 MB); a record batch
            # larger than max.partition.fetch.bytes still comes whole (KIP-74).
            "fetch.min.bytes": 1,
            "fetch.max.bytes": 1_048_576,
            "max.partition.fetch.bytes": 131_072,
            "queued.max.messages.kbytes": 1_024,
            "queued.min.messages": 1_000,
            "fetch.queue.backoff.ms": 1,
            "session.timeout.ms": int(kafka.consumer_session_timeout_seconds * 1000),
            "heartbeat.interval.ms": int(kafka.consumer_session_timeout_seconds * 1000 / 3),
        }
        if kafka.consumer_instance_id:
            config["group.instance.id"] = kafka.consumer_instance_id
        self._consumer = Consumer(config | overrides)
        self.assigned: set[TopicPartition] = set()
        self._at_eof: set[TopicPartition] = set()

    def __enter__(self) -> BatchConsumer:
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        stored = self._start_offsets(keys)
        for p in partitions:
            p.offset = stored.get((p.topic, p.partition), OFFSET_BEGINNING)
        self.assigned |= set(keys)
        self._at_eof -= set(keys)
        log.info("assigned %s, starting at %s", keys, {k: stored.get(k) for k in keys})
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        for p in partitions:
            self.assigned.discard((p.topic, p.partition))
            self._at_eof.discard((p.topic, p.partition))

    def next_batch(
        self,
        max_records: int,
        max_bytes: int,
        max_wait_seconds: float,
        idle_seconds: float = 1.0,
        wait_past_end: bool = False,
        max_latency_seconds: float | None = None,
    ) -> Batch:
        """Collect messages until a threshold is reached or nothing came for ``idle_seconds``.

        Args:
            max_latency_seconds: the batch closes at most this long after its first message
                (what a follower's newest bar waits for its commit while messages keep
                coming); None: only ``max_wait_seconds`` from the start of the call.
            wait_past_end: a follower's batch: when every assigned partition has been read to
                its end, still wait (up to ``idle_seconds``) for new messages instead of
                returning an empty batch at once.
        """
        batch = Batch()
        deadline = time.monotonic() + max_wait_seconds
        last_message = time.monotonic()
        while len(batch) < max_records and batch.payload_bytes < max_bytes:
            now = time.monotonic()
            if now >= deadline or now - last_message >= idle_seconds:
                break
            # A partition's end is reported once: a follower that stopped here, caught up,
            # would never consume again (and would spin); it waits for the next message.
            if self.at_end() and (len(batch) or not wait_past_end):
                break
            wanted = min(max_records - len(batch), 10_000)
            # consume() returns when ``wanted`` messages came or its timeout passed, not at a
            # partition's end: the short timeout is how soon a caught-up drain notices it is
            # done (README, "Why the tuned settings are what they are").
            messages = self._consumer.consume(wanted, timeout=min(0.1, deadline - now))
            if not messages:
                continue
            last_message = time.monotonic()
            if max_latency_seconds is not None and not len(batch):
                deadline = min(deadline, last_message + max_latency_seconds)
            for message in messages:
                key = (message.topic(), message.partition())
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        self._at_eof.add(key)
                        continue
                    raise KafkaException(error)
                self._at_eof.discard(key)
                if key not in self.assigned:
                    continue  # revoked while in flight; its new owner reads it
                batch.start_offsets.setdefault(key, message.offset())
                batch.next_offsets[key] = message.offset() + 1
                batch.messages.append(message)
                value = message.value()
                batch.payload_bytes += len(value) if value else 0
        return batch

    def at_end(self) -> bool:
        """True when every assigned partition has been read to its end (EOF seen since)."""
        return bool(self.assigned) and self.assigned <= self._at_eof

    def seek_if_assigned(self, partition: TopicPartition, offset: int) -> None:
        """Continue ``partition`` from ``offset`` (after another drain loaded ahead of us)."""
        if partition in self.assigned:
            self._consumer.seek(KafkaTopicPartition(partition[0], partition[1], offset))
            self._at_eof.discard(partition)

    def commit_informational(self, next_offsets: dict[TopicPartition, int]) -> None:
        """Tell the group where we are (for lag tools); the warehouse remains the truth."""
        if not next_offsets:
            return
        offsets = [KafkaTopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.info("informational offset commit skipped: %s", exc)

    def close(self) -> None:
        self._consumer.close()


def group_members(admin: AdminClient, group: str, timeout: float = 10.0) -> list[str]:
    """Who is in consumer group ``group`` and which partitions each holds, one line each."""
    try:
        description = admin.describe_consumer_groups([group], request_timeout=timeout)[
            group
        ].result()
    except KafkaException as exc:
        return [f"(could not describe group {group}: {exc})"]
    lines = []
    for member in description.members:
        held = sorted(
            f"{tp.topic}[{tp.partition}]" for tp in member.assignment.topic_partitions or []
        )
        who = member.group_instance_id or member.client_id
        lines.append(f"{who} on {member.host}: {', '.join(held) or 'no partitions'}")
    return lines
