"""Check the warehouse's offsets against the Kafka cluster before draining.

The Snowflake connector's users lost data when a Kafka cluster was rebuilt: offsets started
again at 0 and the connector silently skipped everything up to its stored offset. Here a
drain refuses to start when the stored offsets cannot belong to this cluster's data, and
says what happened and how to choose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from stockpipe.warehouse.loader import StoredOffset

ResetChoice = Literal["earliest", "latest"]


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    earliest: int
    latest: int


@dataclass(frozen=True)
class OffsetProblem:
    topic: str
    partition: int
    stored: StoredOffset
    state: PartitionState | None
    why: str


class OffsetsOutOfSync(RuntimeError):
    """The warehouse's offsets do not fit this Kafka cluster; nothing was read."""

    def __init__(self, problems: list[OffsetProblem]):
        self.problems = problems
        lines = [f"  {p.topic}[{p.partition}]: {p.why}" for p in problems]
        super().__init__(
            "the warehouse's Kafka offsets do not match the cluster, so the drain stopped "
            "rather than skip or reload data:\n" + "\n".join(lines) + "\n"
            "If the cluster was rebuilt or the topic recreated, choose where to resume: "
            "`stockpipe drain --reset-offsets earliest` reloads everything the topic holds "
            "now (bars already loaded are replaced, not duplicated); `--reset-offsets latest` "
            "skips what is in the topic now and loads only new messages."
        )


def partition_states(
    admin: AdminClient, topic: str, timeout: float = 30.0
) -> dict[int, PartitionState]:
    """Earliest and latest offset of every partition of ``topic`` (two requests in all)."""
    metadata = admin.list_topics(topic, timeout=timeout).topics[topic]
    partitions = [KafkaTopicPartition(topic, p) for p in metadata.partitions]

    def ask(spec: OffsetSpec) -> dict[int, int]:
        futures = admin.list_offsets({tp: spec for tp in partitions}, request_timeout=timeout)
        return {tp.partition: f.result().offset for tp, f in futures.items()}

    earliest, latest = ask(OffsetSpec.earliest()), ask(OffsetSpec.latest())
    return {p: PartitionState(topic, p, earliest[p], latest[p]) for p in earliest}


def find_problems(
    stored: dict[tuple[str, int], StoredOffset],
    states: dict[int, PartitionState],
    cluster_id: str | None,
) -> list[OffsetProblem]:
    problems = []
    for (topic, partition), offset in sorted(stored.items()):
        state = states.get(partition)
        why = None
        if offset.cluster_id and cluster_id and offset.cluster_id != cluster_id:
            why = (
                f"stored for Kafka cluster {offset.cluster_id}, but the broker is cluster "
                f"{cluster_id} (rebuilt?)"
            )
        elif state is None:
            why = f"partition {partition} no longer exists (topic recreated with fewer partitions?)"
        elif offset.next_offset > state.latest:
            why = (
                f"stored next offset {offset.next_offset} is past the end of the partition "
                f"({state.latest}): the topic was recreated or the cluster rebuilt"
            )
        elif offset.next_offset < state.earliest:
            why = (
                f"stored next offset {offset.next_offset} is before the earliest offset still "
                f"held ({state.earliest}): messages {offset.next_offset}..{state.earliest - 1} "
                "were deleted (retention) before they were loaded"
            )
        if why:
            problems.append(OffsetProblem(topic, partition, offset, state, why))
    return problems


def reset_positions(
    states: dict[int, PartitionState], topic: str, choice: ResetChoice
) -> dict[tuple[str, int], int]:
    """Where every partition resumes after ``--reset-offsets choice``."""
    return {
        (topic, p): (s.earliest if choice == "earliest" else s.latest) for p, s in states.items()
    }
