"""The real local KRaft broker: topics, round trip, per-symbol order, idempotent producer."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from stockpipe import market_calendar as mc
from stockpipe.ingest import check_bars
from stockpipe.local_stack.broker import LocalBroker
from stockpipe.settings import Settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.streaming.producer import PublishError, QuoteProducer
from stockpipe.streaming.topics import ensure_topics

pytestmark = pytest.mark.integration
SESSION = mc.session("2025-11-26")


def consume_all(settings: Settings, topic: str, expected: int, timeout: float = 30.0) -> list:
    consumer = Consumer(
        settings.kafka.client_config()
        | {"group.id": f"reader-{topic}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    messages: list = []
    deadline = time.monotonic() + timeout
    while len(messages) < expected and time.monotonic() < deadline:
        for message in consumer.consume(1000, timeout=0.5):
            assert message.error() is None
            messages.append(message)
    consumer.close()
    return messages


def test_broker_runs_kraft_and_reports_status(kafka_broker: LocalBroker) -> None:
    status = kafka_broker.status()
    assert status.running and status.pid
    assert status.cluster_id and len(status.cluster_id) == 22
    assert "process.roles=broker,controller" in kafka_broker.config_file.read_text()
    metadata = AdminClient({"bootstrap.servers": status.bootstrap_servers}).list_topics(timeout=10)
    assert metadata.cluster_id == status.cluster_id
    assert kafka_broker.log_file.exists()  # the broker logs to its file


def test_topic_creation_is_idempotent(env_settings: Settings) -> None:
    # env_settings already created them once.
    again = ensure_topics(env_settings.kafka)
    assert set(again.values()) == {"exists"}
    topics = AdminClient(env_settings.kafka.client_config()).list_topics(timeout=10).topics
    assert len(topics[env_settings.kafka.prices_topic].partitions) == 3
    assert len(topics[env_settings.kafka.dlq_topic].partitions) == 1


def test_round_trip_keeps_each_symbol_on_one_partition_in_order(env_settings: Settings) -> None:
    session = mc.session("2025-11-26")
    symbols = ["AAPL", "MSFT", "NVDA", "XOM", "JPM"]
    bars = SimulatedMarket().fetch(symbols, session.open, session.minutes[200])
    quotes = check_bars(bars, "simulated").quotes
    report = QuoteProducer(env_settings.kafka).publish(quotes)
    assert report.published == len(quotes) == 1000

    messages = consume_all(env_settings, env_settings.kafka.prices_topic, len(quotes))
    assert len(messages) == len(quotes)
    partitions: dict[str, set[int]] = {}
    order: dict[str, list[str]] = {}
    for message in messages:
        payload = json.loads(message.value())
        assert message.key().decode() == payload["symbol"]
        partitions.setdefault(payload["symbol"], set()).add(message.partition())
        order.setdefault(payload["symbol"], []).append(payload["ts"])
    assert all(len(p) == 1 for p in partitions.values())
    for symbol, stamps in order.items():
        assert stamps == sorted(stamps), symbol
        assert len(stamps) == 200


def test_stop_and_start_keep_the_cluster_id(tmp_path) -> None:
    from stockpipe.local_stack.processes import free_port

    broker = LocalBroker(home=tmp_path / "k", port=free_port(), controller_port=free_port())
    first = broker.start(progress=False)
    assert broker.stop() is True
    assert broker.status().running is False
    second = broker.start(progress=False)
    try:
        assert second.cluster_id == first.cluster_id
    finally:
        broker.stop()
    assert broker.stop() is False  # already stopped


def test_messages_the_broker_never_acknowledged_fail_the_publish_with_their_count(
    env_settings: Settings,
) -> None:
    # Only failed deliveries are reported (delivery.report.only.error): a publish that the
    # broker never took (here: to topics it does not have, and it creates none) must still
    # fail, counting every message, and report none as published.
    nowhere = env_settings.kafka.model_copy(update={"prices_topic": "no_such_prices"})
    producer = QuoteProducer(nowhere, **{"message.timeout.ms": 1000})
    with pytest.raises(PublishError, match=r"^3 of 3 messages to no_such_prices were not ackn"):
        producer.publish_values([("AAPL", "{}")] * 3)
    with pytest.raises(PublishError, match=r"^2 of 2 messages to elsewhere were not ackn"):
        producer.publish_raw([("AAPL", "{}", None)] * 2, topic="elsewhere")


def test_a_producer_with_no_broker_to_talk_to_fails_at_once_naming_it() -> None:
    from stockpipe.local_stack.processes import free_port
    from stockpipe.settings import KafkaSettings
    from stockpipe.streaming.clients import KafkaUnreachable

    servers = f"127.0.0.1:{free_port()}"
    kafka = KafkaSettings(bootstrap_servers=servers, connect_timeout_seconds=2)
    with pytest.raises(KafkaUnreachable, match=rf"^cannot reach Kafka at {servers} \(STOCKPIPE_"):
        QuoteProducer(kafka)


def test_every_acknowledged_message_is_counted_published(env_settings: Settings) -> None:
    ensure_topics(env_settings.kafka)
    producer = QuoteProducer(env_settings.kafka)
    assert producer.publish_values([("ZZZA", f'{{"n": {i}}}') for i in range(25_000)]) == 25_000
    assert len(consume_all(env_settings, env_settings.kafka.prices_topic, 25_000)) == 25_000


def test_a_batch_closes_its_latency_after_its_first_message(env_settings: Settings) -> None:
    """A following drain commits by time as well as by size: with no size bound and no
    idle gap (a backlog streaming in), the batch still closes once its first message is
    ``max_latency_seconds`` old; without that bound it takes the whole backlog."""
    from stockpipe.streaming.consumer import BatchConsumer

    bars = SimulatedMarket().fetch(["AAPL", "MSFT", "NVDA"], SESSION.open, SESSION.close)
    messages = check_bars(pd.concat([bars] * 20, ignore_index=True), "simulated").messages()
    assert QuoteProducer(env_settings.kafka).publish_values(messages) == len(messages)

    def first_batch(**bound: float) -> int:
        with BatchConsumer(env_settings.kafka, lambda partitions: {}) as consumer:
            sizes = 0
            while not sizes:  # past the assignment
                sizes = len(
                    consumer.next_batch(
                        max_records=10**9,
                        max_bytes=2**40,
                        max_wait_seconds=600,
                        idle_seconds=600,
                        wait_past_end=True,
                        **bound,
                    )
                )
            return sizes

    # The first consume hands out at most 10,000 messages; the bound has passed by the next.
    assert first_batch(max_latency_seconds=0.001) <= 10_000 < len(messages)
    assert first_batch() == len(messages)
