"""Drain: Kafka -> warehouse, in batches, exactly once.

For each batch (:class:`WarehouseSink`): decode and check every message against the
contract; send the rejects, unchanged, to the dead-letter topic with headers saying why and
where from; write the accepted rows to the raw zone (when enabled); then commit the rows and
the next offsets in one warehouse transaction. Offsets never move past a message that is
neither in the warehouse nor in the dead-letter topic. Before the first batch the stored
offsets are checked against the cluster (:mod:`stockpipe.drain.offsets`).

No record can stop the drain: what the decoder refuses is dead-lettered, and if the
warehouse still refuses a batch for a reason in its data, the batch is halved until the
refused messages are found; they are dead-lettered (``warehouse_rejected``) and the rest
commits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
from confluent_kafka.admin import AdminClient

from stockpipe import metrics
from stockpipe.drain.dead_letters import WAREHOUSE_REJECTED, DeadLetterTopic, Rejection
from stockpipe.drain.decoding import decode_batch, with_loaded_at
from stockpipe.drain.loader import LoadResult, load_batch, refused_rows
from stockpipe.drain.offsets import PartitionOffsets, ResetChoice
from stockpipe.drain.raw_zone import RawZone, raw_zone_from_settings
from stockpipe.drain.report import DrainReport
from stockpipe.retry import retry_call
from stockpipe.runtime import (
    Terminated,
    as_interrupt,
    keep_pandas_out_of_arrow,
    limit_malloc_arenas,
)
from stockpipe.settings import DrainSettings, Settings
from stockpipe.streaming.clients import client_config, require_reachable
from stockpipe.streaming.consumer import Batch, BatchConsumer, group_members
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.warehouse import Warehouse

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 5.0


class NoPartitionsAssigned(RuntimeError):
    """Messages wait in the topic, but the consumer group gave this drain no partition."""


class WarehouseSink:
    """Lands each batch the consumer hands out in the warehouse, exactly once.

    Args:
        settings: the drain's thresholds and the topics.
        warehouse: where the rows and offsets are committed.
        offsets: the topic's offsets (the cluster id written beside each commit).
        dead_letters: where rejected messages go.
        raw_zone: where each batch's accepted rows are filed first, or None.
        report: the running report, updated after each commit.
        on_batch: called after each committed batch with the report (progress).
    """

    def __init__(
        self,
        settings: Settings,
        warehouse: Warehouse,
        offsets: PartitionOffsets,
        dead_letters: DeadLetterTopic,
        raw_zone: RawZone | None,
        report: DrainReport,
        on_batch: Callable[[DrainReport], None] | None = None,
    ):
        self.limits: DrainSettings = settings.drain
        self.warehouse = warehouse
        self.offsets = offsets
        self.dead_letters = dead_letters
        self.raw_zone = raw_zone
        self.report = report
        self.on_batch = on_batch
        self._kill_point, self._kill_from = _point_setting(self.limits.kill_at)
        self._pause_point, self._pause_batch = _point_setting(self.limits.pause_at)

    def land(self, batch: Batch, consumer: BatchConsumer) -> None:
        """Decode, dead-letter, file and commit one batch; update the report and metrics.

        A method of its own so that the batch and everything made from it are freed before
        the next batch is fetched: memory follows one batch, not two.
        """
        batch_started = time.monotonic()
        decoded = decode_batch(batch.messages, self.limits.max_message_bytes)
        rows = with_loaded_at(decoded.rows, datetime.now(UTC))
        self._reached("decoded")
        self._dead_letter(decoded.rejections)
        if self.raw_zone is not None:
            self.report.raw_files += self.raw_zone.write_batch(rows)
        self._reached("raw_zone_written")
        load_started = time.monotonic()
        rows, refused, result = self._commit(rows, batch)
        # Counted at once: a signal during the steps after the commit (the group's
        # informational commit is a round trip) must not leave a committed batch out of the
        # summary a stopped drain prints.
        rejections = decoded.rejections + refused
        self.report.add(len(batch), rows, rejections, result)
        self._reached("warehouse_committed")
        metrics.LOAD_DURATION.observe(time.monotonic() - load_started)
        metrics.BATCH_DURATION.observe(time.monotonic() - batch_started)
        _count(batch, rejections, result)
        for tp, stored in result.fenced.items():
            consumer.seek_if_assigned(tp, stored)
        consumer.commit_informational(result.committed_offsets)
        self._reached("group_committed")
        if self.report.newest_bar:
            metrics.NEWEST_BAR.set(self.report.newest_bar)
        if self.on_batch:
            self.on_batch(self.report)

    def _commit(self, rows: pa.Table, batch: Batch) -> tuple[pa.Table, list[Rejection], LoadResult]:
        """Commit ``rows`` with the batch's offsets, less any rows the warehouse refuses.

        Returns:
            the rows committed, the rejections of the refused ones, the load's result.
        """
        try:
            return rows, [], self._load(rows, batch)
        except Exception as exc:
            if not self.warehouse.is_data_error(exc):
                raise
            error = exc
        refused = refused_rows(self.warehouse, rows, error)
        if not refused:  # no row is refused alone: not a problem of the data after all
            raise error
        messages = {(m.topic(), m.partition(), m.offset()): m for m in batch.messages}
        coordinates = rows.select(["KAFKA_TOPIC", "KAFKA_PARTITION", "KAFKA_OFFSET"])
        rejections = []
        for index, reason in refused:
            topic, partition, offset = (c[index].as_py() for c in coordinates.columns)
            rejections.append(
                Rejection(
                    messages[(topic, partition, offset)],
                    WAREHOUSE_REJECTED,
                    type(reason).__name__,
                    str(reason),
                )
            )
        log.warning(
            "the warehouse refused %d of %d rows (%s); they go to the dead-letter topic",
            len(refused),
            rows.num_rows,
            str(error).splitlines()[0][:200],
        )
        self._dead_letter(rejections)
        keep = np.ones(rows.num_rows, dtype=bool)
        keep[[index for index, _ in refused]] = False
        rows = rows.filter(pa.array(keep))
        return rows, rejections, self._load(rows, batch)

    def _load(self, rows: pa.Table, batch: Batch) -> LoadResult:
        return retry_call(
            partial(
                load_batch,
                self.warehouse,
                rows,
                batch.next_offsets,
                self.offsets.cluster_id,
                start_offsets=batch.start_offsets,
                on_claimed=lambda: self._reached("offsets_claimed"),
            ),
            retry_on=self.warehouse.is_transient,
            # A failed commit may leave the session's transaction open (or the session gone).
            before_retry=self.warehouse.reconnect,
            max_retries=self.limits.load_retries,
            base_seconds=self.limits.load_retry_base_seconds,
            max_seconds=60.0,
            what="warehouse commit",
        )

    def _dead_letter(self, rejections: list[Rejection]) -> None:
        if not rejections:
            return
        self.dead_letters.send(
            rejections, before_flush=lambda: self._reached("dead_letters_in_flight")
        )
        self._reached("dead_letters_sent")

    def _reached(self, point: str) -> None:
        """Crash and race tests: SIGKILL this process at ``point`` of batch N or later
        (drain.kill_at); SIGSTOP it once at ``point`` of batch N (drain.pause_at)."""
        batch = self.report.batches + 1
        if point == self._kill_point and batch >= self._kill_from:
            log.warning("drain.kill_at=%s: killing this process", self.limits.kill_at)
            os.kill(os.getpid(), signal.SIGKILL)
        if point == self._pause_point and batch == self._pause_batch:
            log.warning("drain.pause_at=%s: stopping until SIGCONT", self.limits.pause_at)
            os.kill(os.getpid(), signal.SIGSTOP)


def _point_setting(setting: str | None) -> tuple[str | None, int]:
    if not setting:
        return None, 0
    point, _, batch = setting.partition("@")  # validated by the setting's KILL_POINT_PATTERN
    return point, int(batch or 1)


def drain_prices(
    settings: Settings,
    warehouse: Warehouse,
    *,
    until_empty: bool = True,
    max_batches: int | None = None,
    max_records: int | None = None,
    reset_offsets: ResetChoice | None = None,
    on_batch: Callable[[DrainReport], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
    dead_letters: bool = True,
    stop: Callable[[], bool] | None = None,
) -> DrainReport:
    """Drain the prices topic into ``RAW.STOCK_PRICES`` until it is empty (or forever).

    Args:
        until_empty: stop once every assigned partition is read to its end; otherwise
            keep draining (``--follow``) until interrupted or ``max_batches``.
        max_records: records per batch (default: the drain settings).
        reset_offsets: after a rebuilt cluster, where to resume ("earliest" | "latest").
        on_batch: called after each committed batch with the running report (progress).
        on_progress: called with a line of text while the drain waits for partitions.
        stop: asked after each batch (and each wait for one); True ends the drain there.
        dead_letters: send what it cannot load to the dead-letter topic. The live tier's
            drain does not: the drain of record (the same topic, its own group) sends each
            once, and the record stays in the prices topic meanwhile.

    Raises:
        OffsetsOutOfSync: the stored offsets do not fit the cluster (and no reset chosen).
        NoPartitionsAssigned: messages wait, but the group gave this drain no partition
            within ``drain.assignment_wait_seconds`` and it loaded nothing.
    """
    started = time.monotonic()
    limits = settings.drain
    require_reachable(settings.kafka)
    admin = AdminClient(client_config(settings.kafka))
    offsets = PartitionOffsets(warehouse, admin, settings.kafka.prices_topic)
    report = DrainReport()
    report.reset = offsets.check(reset_offsets)
    report.backlog = sum(offsets.lag().values())
    sink = WarehouseSink(
        settings,
        warehouse,
        offsets,
        DeadLetterTopic(QuoteProducer(settings.kafka), settings.kafka.dlq_topic)
        if dead_letters
        else DeadLetterTopic(None, None),
        raw_zone_from_settings(settings),
        report,
        on_batch,
    )
    waiting = _AssignmentWait(settings, admin, offsets, on_progress or log.info)
    with (
        warehouse.memory_limit(limits.embedded_memory_limit),
        BatchConsumer(settings.kafka, offsets.start_offsets) as consumer,
        _stopped_by_signal(report),
    ):
        while True:
            batch = consumer.next_batch(
                max_records=max_records or limits.max_records,
                max_bytes=limits.max_bytes,
                max_wait_seconds=limits.max_wait_seconds,
                wait_past_end=not until_empty,
                max_latency_seconds=limits.max_latency_seconds,
            )
            got_messages = bool(len(batch))
            if got_messages:
                sink.land(batch, consumer)
            del batch
            if max_batches is not None and report.batches >= max_batches:
                report.stopped_because = f"max_batches={max_batches}"
                break
            if stop is not None and stop():
                report.stopped_because = "stopped"
                break
            if consumer.assigned:
                waiting.reset()
            if until_empty and not got_messages:
                if consumer.at_end():
                    report.stopped_because = "caught up with the end of every partition"
                    break
                if not consumer.assigned and (reason := waiting.give_up(report)):
                    report.stopped_because = reason
                    break
    report.seconds = time.monotonic() - started
    offsets.lag()
    return report


def run_drain(settings: Settings, **options: Any) -> DrainReport:
    """A drain run as ``stockpipe drain`` and the drain flow start one: fewer malloc arenas
    (before the warehouse's and the consumer's threads start), pyarrow without pandas, a
    load session on the warehouse, :func:`drain_prices` with ``options``."""
    limit_malloc_arenas()
    keep_pandas_out_of_arrow()
    with Warehouse.connect(settings, "load") as warehouse:
        return drain_prices(settings, warehouse, **options)


@contextlib.contextmanager
def _stopped_by_signal(report: DrainReport) -> Iterator[None]:
    """A signal (Ctrl-C, SIGTERM as :class:`~stockpipe.runtime.Terminated`) ends the
    drain like reaching the end: the batch in flight rolls back, the report keeps what was
    committed and says why it stopped (``report.interrupted``)."""
    try:
        yield
    except (KeyboardInterrupt, Exception) as error:
        signal_ = as_interrupt(error)  # DuckDB reports a signal during a query as its error
        if signal_ is None:
            raise
        report.interrupted = signal_
        report.stopped_because = (
            "SIGTERM" if isinstance(signal_, Terminated) else "interrupted (SIGINT)"
        ) + "; what was not committed is drained next time"


class _AssignmentWait:
    """A drain with no partitions: wait (bounded, saying for what), then stop or fail.

    A drain that was killed stays in the group until its session times out, holding its
    partitions; a new drain gets them only then. Other live drains may hold them too.
    """

    def __init__(
        self,
        settings: Settings,
        admin: AdminClient,
        offsets: PartitionOffsets,
        progress: Callable[[str], None],
    ):
        self.settings = settings
        self.admin = admin
        self.offsets = offsets
        self.progress = progress
        self.since = time.monotonic()
        self.said = self.since

    def reset(self) -> None:
        self.since = self.said = time.monotonic()

    def give_up(self, report: DrainReport) -> str | None:
        """None to keep waiting; else why the drain stops.

        Raises:
            NoPartitionsAssigned: the wait is over, this run loaded nothing, and messages wait.
        """
        kafka = self.settings.kafka
        limit = self.settings.drain.assignment_wait_seconds
        now = time.monotonic()
        waited = now - self.since
        if waited < limit:
            if now - self.said >= PROGRESS_EVERY_SECONDS:
                self.said = now
                self.progress(
                    f"waiting for partitions of {kafka.prices_topic} from group "
                    f"{kafka.consumer_group} ({waited:.0f}s of {limit:.0f}s); held by: "
                    + "; ".join(group_members(self.admin, kafka.consumer_group) or ["nobody"])
                    + ". A drain that was killed holds them until the session it was "
                    "started with times out (STOCKPIPE_KAFKA__CONSUMER_SESSION_TIMEOUT_SECONDS)"
                )
            return None
        waiting_messages = sum(self.offsets.lag().values())
        if report.messages or not waiting_messages:
            return f"no partitions assigned for {waited:.0f}s (other drains hold them)"
        holders = group_members(self.admin, kafka.consumer_group)
        raise NoPartitionsAssigned(
            f"{waiting_messages} messages wait in {kafka.prices_topic}, but consumer group "
            f"{kafka.consumer_group} gave this drain no partition in {waited:.0f}s, so it "
            "loaded nothing. Members holding partitions: "
            + ("; ".join(holders) or "none listed")
            + ". If those are drains that are still running, this run is not needed. If one "
            "died, it holds its partitions for the session timeout it was started with "
            "(STOCKPIPE_KAFKA__CONSUMER_SESSION_TIMEOUT_SECONDS, "
            f"{kafka.consumer_session_timeout_seconds:g} s here) and this drain waited "
            f"STOCKPIPE_DRAIN__ASSIGNMENT_WAIT_SECONDS={limit:g}: run it again once that "
            "session has ended, make the wait longer than the session, or give each drain a "
            "STOCKPIPE_KAFKA__CONSUMER_INSTANCE_ID so that a restart takes its partitions "
            "back at once."
        )


def _count(batch: Batch, rejections: list[Rejection], result: LoadResult) -> None:
    metrics.MESSAGES_DRAINED.labels(batch.messages[0].topic()).inc(len(batch))
    metrics.ROWS_LOADED.labels("RAW.STOCK_PRICES", "inserted").inc(result.inserted)
    metrics.ROWS_LOADED.labels("RAW.STOCK_PRICES", "replaced").inc(result.replaced)
    for rejection in rejections:
        metrics.DEAD_LETTERS.labels(rejection.reason).inc()
