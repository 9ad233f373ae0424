"""Create the pipeline's topics, idempotently."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from stockpipe.settings import KafkaSettings
from stockpipe.streaming.clients import client_config, require_reachable
from stockpipe.streaming.kafka import topology

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def pipeline_topics(kafka: KafkaSettings) -> list[TopicSpec]:
    """The four topics of the pipeline's topology (``stockpipe/streaming/kafka/topology.yml``:
    partitions and retention) under the names the settings give them: prices (keyed by
    symbol; its partitions are a setting), alerts, dead letters, and the forming minute's
    bars (read from their end, superseded each second)."""
    declared = topology()["topics"]
    named = {
        "prices": kafka.prices_topic,
        "alerts": kafka.alerts_topic,
        "dead_letters": kafka.dlq_topic,
        "forming": kafka.forming_topic,
    }
    if set(named) != set(declared):
        raise ValueError(f"topology.yml's topics {sorted(declared)} are not {sorted(named)}")
    return [
        TopicSpec(
            named[role],
            kafka.prices_partitions if role == "prices" else topic["partitions"],
            {
                "retention.ms": str(topic["retention_ms"]),
                "min.insync.replicas": str(kafka.min_insync_replicas),
            },
        )
        for role, topic in declared.items()
    ]


def ensure_topics(kafka: KafkaSettings, timeout: float = 30.0) -> dict[str, str]:
    """Create missing topics; leave existing ones alone.

    Returns:
        topic name -> "created" or "exists".
    """
    require_reachable(kafka)
    admin = AdminClient(client_config(kafka))
    specs = pipeline_topics(kafka)
    existing = admin.list_topics(timeout=timeout).topics
    outcome: dict[str, str] = {}
    to_create = []
    for spec in specs:
        if spec.name in existing:
            outcome[spec.name] = "exists"
            have = len(existing[spec.name].partitions)
            if have < spec.partitions:
                log.warning(
                    "topic %s has %d partitions, settings ask for %d; not changed (adding "
                    "partitions would move symbols between partitions)",
                    spec.name,
                    have,
                    spec.partitions,
                )
        else:
            to_create.append(
                NewTopic(spec.name, spec.partitions, kafka.replication_factor, config=spec.config)
            )
    if to_create:
        for name, future in admin.create_topics(to_create, operation_timeout=timeout).items():
            try:
                future.result(timeout)
                outcome[name] = "created"
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                outcome[name] = "exists"  # another process won the race
    return outcome
