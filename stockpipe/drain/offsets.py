"""Where the drain resumes: the warehouse's offsets, the one owner of that record.

``RAW.KAFKA_OFFSETS`` holds, per topic and partition, the next offset to read. It is written
in the same transaction as the rows it covers (:func:`claim_offsets`, called by the loader),
so it is the source of truth; Kafka's group commits are informational.

Everything else about offsets lives here too: reading them, checking them against the
cluster before a drain starts, resetting them after a rebuilt cluster, fencing a drain that
lost a partition in a rebalance, and the lag that is left.

The Snowflake connector's users lost data when a Kafka cluster was rebuilt: offsets started
again at 0 and the connector silently skipped everything up to its stored offset. Here a
drain refuses to start when the stored offsets cannot belong to this cluster's data, and
says what happened and how to choose.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from stockpipe import metrics
from stockpipe.streaming.consumer import TopicPartition
from stockpipe.warehouse import Portable, Warehouse, WarehouseError

log = logging.getLogger(__name__)

ResetChoice = Literal["earliest", "latest"]
_NO_FENCE = 2**63 - 1  # the largest offset: a partition with no start offset always claims


@dataclass(frozen=True)
class StoredOffset:
    next_offset: int
    cluster_id: str | None


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


class OffsetRowTaken(WarehouseError):
    """Another drain of the group recorded a partition's first offset after this transaction
    read that it had none (the embedded warehouse's key refused the second row). A lost race
    like a write conflict, retried as one (a :class:`WarehouseError` is transient): on the
    retry the row is there, and the slower drain moves it or is fenced."""


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


# -- the warehouse's record -----------------------------------------------------------------
def read_offsets(warehouse: Warehouse, topic: str) -> dict[TopicPartition, StoredOffset]:
    """The warehouse's record of where to resume each partition of ``topic``.

    Snowflake does not enforce the table's primary key; should two rows for one partition
    ever exist, the furthest one counts, so an offset never moves backwards.
    """
    rows = warehouse.query(
        Portable(
            "select kafka_partition, max(next_offset), max(cluster_id) from RAW.KAFKA_OFFSETS "
            "where kafka_topic = %s group by kafka_partition"
        ),
        (topic,),
    )
    return {(topic, int(p)): StoredOffset(int(o), c) for p, o, c in rows}


def write_offsets(
    warehouse: Warehouse, next_offsets: dict[TopicPartition, int], cluster_id: str | None
) -> None:
    """Overwrite the record for ``next_offsets``' partitions (a chosen reset, not a load)."""
    if not next_offsets:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    for topic, offsets in _by_topic(next_offsets).items():
        placeholders = ", ".join(["%s"] * len(offsets))
        warehouse.execute(
            Portable(
                "delete from RAW.KAFKA_OFFSETS where kafka_topic = %s "
                f"and kafka_partition in ({placeholders})"
            ),
            (topic, *offsets),
        )
        _insert_offsets(warehouse, topic, offsets, cluster_id, now)


def _by_topic(next_offsets: dict[TopicPartition, int]) -> dict[str, dict[int, int]]:
    """``next_offsets`` as topic -> partition -> offset, partitions in order."""
    by_topic: dict[str, dict[int, int]] = {}
    for (topic, partition), offset in sorted(next_offsets.items()):
        by_topic.setdefault(topic, {})[partition] = offset
    return by_topic


def claim_offsets(
    warehouse: Warehouse,
    next_offsets: dict[TopicPartition, int],
    start_offsets: dict[TopicPartition, int],
    cluster_id: str | None,
) -> dict[TopicPartition, int]:
    """Move each partition's offset to ``next_offsets``, unless another drain got there
    first; the first statements of the loader's transaction.

    Compare-and-set, one UPDATE for all of a topic's partitions: it moves a partition's
    offset only while it is still at most the batch's start (``start_offsets``). An UPDATE
    takes its lock before it reads, so of two drains that hold the same partition after a
    rebalance the second waits for the first's commit and then finds the offset moved: it
    is fenced. A plain SELECT would take no lock under Snowflake's READ COMMITTED, and the
    slower drain could move the offset backwards. Then one read, under the lock the UPDATE
    took, tells which partitions moved, which were fenced and which were never seen before
    (their rows are inserted, in one statement). The UPDATE's row count alone cannot: the
    table's key is not enforced, so a partition may have two rows.

    Returns:
        the fenced partitions, each with the warehouse's next offset for it. Their rows must
        not be loaded (the caller leaves them out).
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    fenced: dict[TopicPartition, int] = {}
    for topic, offsets in _by_topic(next_offsets).items():
        # No start given (a load outside the drain, e.g. a backfill): nothing to fence.
        starts = {p: start_offsets.get((topic, p), _NO_FENCE) for p in offsets}
        warehouse.execute(
            Portable(
                "update RAW.KAFKA_OFFSETS set next_offset = case kafka_partition "
                + " ".join(["when %s then %s"] * len(offsets))
                + " end, cluster_id = %s, updated_at = %s where kafka_topic = %s and ("
                + " or ".join(["(kafka_partition = %s and next_offset <= %s)"] * len(offsets))
                + ")"
            ),
            (
                *(v for p, o in offsets.items() for v in (p, o)),
                cluster_id,
                now,
                topic,
                *(v for p, s in starts.items() for v in (p, s)),
            ),
        )
        fenced |= _fenced_or_new(warehouse, topic, offsets, cluster_id, now)
    return fenced


def _fenced_or_new(
    warehouse: Warehouse,
    topic: str,
    offsets: dict[int, int],
    cluster_id: str | None,
    now: datetime,
) -> dict[TopicPartition, int]:
    """After the compare-and-set of ``offsets``: insert the rows of partitions never seen
    before, return the fenced ones with their stored offset.

    A partition moved by this transaction is the one whose row carries this transaction's
    ``updated_at`` and its offset (compared in SQL, so both sides are the same type).
    """
    in_list = ", ".join(["%s"] * len(offsets))
    rows = warehouse.query(
        Portable(
            "select kafka_partition, max(next_offset), "
            "max(case when updated_at = %s then next_offset end) "
            "from RAW.KAFKA_OFFSETS "
            f"where kafka_topic = %s and kafka_partition in ({in_list}) "
            "group by kafka_partition"
        ),
        (now, topic, *offsets),
    )
    stored = {int(p): (int(o), written) for p, o, written in rows}
    fenced: dict[TopicPartition, int] = {}
    new = []
    for partition, offset in offsets.items():
        if partition not in stored:
            new.append(partition)
        elif stored[partition][1] is None or int(stored[partition][1]) != offset:
            fenced[(topic, partition)] = stored[partition][0]
    if new:
        try:
            _insert_offsets(warehouse, topic, {p: offsets[p] for p in new}, cluster_id, now)
        except Exception as exc:
            if not warehouse.is_data_error(exc):
                raise
            # Our own values: a refusal here is the key, not the data (Snowflake's is not
            # enforced, so only the embedded warehouse gets here).
            raise OffsetRowTaken(
                f"another drain recorded the first offset of {topic} partitions "
                f"{sorted(new)} at the same time; retrying: {exc}"
            ) from exc
    return fenced


def _insert_offsets(
    warehouse: Warehouse,
    topic: str,
    offsets: dict[int, int],
    cluster_id: str | None,
    now: datetime,
) -> None:
    """One row per partition of ``offsets`` (partition -> next offset), in one statement."""
    warehouse.execute(
        Portable(
            "insert into RAW.KAFKA_OFFSETS "
            "(kafka_topic, kafka_partition, next_offset, cluster_id, updated_at) values "
            + ", ".join(["(%s, %s, %s, %s, %s)"] * len(offsets))
        ),
        tuple(v for p, o in offsets.items() for v in (topic, p, o, cluster_id, now)),
    )


# -- against the cluster ----------------------------------------------------------------------
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
    stored: dict[TopicPartition, StoredOffset],
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
) -> dict[TopicPartition, int]:
    """Where every partition resumes after ``--reset-offsets choice``."""
    return {
        (topic, p): (s.earliest if choice == "earliest" else s.latest) for p, s in states.items()
    }


class PartitionOffsets:
    """The drain's view of one topic's offsets: the warehouse's record and the cluster's.

    Args:
        warehouse: where the offsets are recorded.
        admin: a client of the cluster the topic lives on.
        topic: the topic drained.
    """

    def __init__(self, warehouse: Warehouse, admin: AdminClient, topic: str):
        self.warehouse = warehouse
        self.admin = admin
        self.topic = topic
        self.cluster_id: str | None = admin.list_topics(timeout=30).cluster_id

    def stored(self) -> dict[TopicPartition, StoredOffset]:
        return read_offsets(self.warehouse, self.topic)

    def start_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Where to start reading ``partitions`` (those the warehouse has a record of)."""
        stored = self.stored()
        return {tp: stored[tp].next_offset for tp in partitions if tp in stored}

    def check(self, reset: ResetChoice | None) -> dict[TopicPartition, int]:
        """Refuse to drain when the stored offsets do not fit the cluster, unless told how.

        Args:
            reset: where to resume every partition ("earliest" | "latest"), or None to only
                check.

        Returns:
            the offsets written by a reset (empty when nothing was reset).

        Raises:
            OffsetsOutOfSync: naming each partition and what is wrong with it.
        """
        states = partition_states(self.admin, self.topic)
        problems = find_problems(self.stored(), states, self.cluster_id)
        if not problems and reset is None:
            return {}
        if reset is None:
            raise OffsetsOutOfSync(problems)
        positions = reset_positions(states, self.topic, reset)
        with self.warehouse.transaction():
            write_offsets(self.warehouse, positions, self.cluster_id)
        log.warning(
            "offsets of %s reset to %s (%s): %s",
            self.topic,
            reset,
            positions,
            "; ".join(p.why for p in problems) or "requested",
        )
        return positions

    def lag(self) -> dict[int, int]:
        """Per partition, the messages after the warehouse's offset (also set as a metric)."""
        states = partition_states(self.admin, self.topic)
        stored = self.stored()
        lag = {}
        for partition, state in states.items():
            position = stored.get((self.topic, partition))
            start = position.next_offset if position else state.earliest
            lag[partition] = max(0, state.latest - start)
            metrics.CONSUMER_LAG.labels(self.topic, str(partition)).set(lag[partition])
        return lag
