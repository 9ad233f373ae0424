"""Drain flow: Kafka -> warehouse exactly once, then refresh the SQL objects."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from flows.market_hours import MarketHours, skip_outside_market_hours
from stockpipe import drain, metrics
from stockpipe.settings import load_settings
from stockpipe.warehouse import WarehouseNotSetUp


def _worth_retrying(task, task_run, state) -> bool:
    """Retry a failed drain, except when a person must decide: offsets that do not fit the
    cluster, partitions that live drains hold, a warehouse not set up for this version."""
    try:
        state.result()
    except (drain.OffsetsOutOfSync, drain.NoPartitionsAssigned, WarehouseNotSetUp):
        return False
    except Exception:
        return True
    return False


@task(
    retries=3,
    retry_delay_seconds=[5, 20, 60],
    retry_jitter_factor=0.5,
    retry_condition_fn=_worth_retrying,
    cache_policy=NO_CACHE,
)
def drain_batches(
    until_empty: bool, max_records: int | None, reset_offsets: str | None
) -> drain.DrainReport:
    logger = get_run_logger()
    progress: dict[str, UUID] = {}

    def on_batch(report: drain.DrainReport) -> None:
        logger.info(
            "batch %d: %d of %d messages, %d new bars, %d dead-lettered",
            report.batches,
            report.messages,
            report.backlog,
            report.inserted,
            report.rejected_total,
        )
        if not report.backlog:  # following the topic: no end to measure against
            return
        done = min(100.0, 100.0 * report.messages / report.backlog)
        if "id" not in progress:
            progress["id"] = create_progress_artifact(
                done, key="drain-progress", description="messages drained of the backlog"
            )
        else:
            update_progress_artifact(progress["id"], done)

    report = drain.run_drain(
        load_settings(),
        until_empty=until_empty,
        max_records=max_records,
        reset_offsets=reset_offsets,
        on_batch=on_batch,
        on_progress=logger.info,
    )
    if report.interrupted is not None:  # cancelled: say what was committed, then stop
        logger.warning(report.summary())
        raise report.interrupted
    return report


@flow(name="drain-to-warehouse")
def drain_to_warehouse(
    until_empty: bool = True,
    max_records: int | None = None,
    reset_offsets: Literal["earliest", "latest"] | None = None,
    market_hours: MarketHours = "ignore",
) -> dict | State:
    """Load everything waiting in the prices topic into RAW.STOCK_PRICES, exactly once.

    Args:
        until_empty: stop when caught up (scheduled runs); False keeps following the topic.
        max_records: records per warehouse commit (default STOCKPIPE_DRAIN__MAX_RECORDS).
        reset_offsets: only after a rebuilt Kafka cluster: "earliest" reloads what the topic
            holds (no duplicates), "latest" skips it. Leave empty otherwise.
        market_hours: "in_session" or "after_close" on schedules (NYSE calendar guard).
    """
    if (skipped := skip_outside_market_hours(market_hours)) is not None:
        return skipped
    with metrics.pushed_at_end("drain-to-warehouse", load_settings().metrics.pushgateway_url):
        report = drain_batches(until_empty, max_records, reset_offsets)
        get_run_logger().info(report.summary())
        create_markdown_artifact(
            key="drain-summary",
            markdown=f"**Drain**: {report.summary()}",
            description="What this drain run loaded, rejected and where it stopped",
        )
        if report.rejected:
            create_table_artifact(
                key="drain-dead-letters",
                table=[{"reason": k, "messages": v} for k, v in sorted(report.rejected.items())],
                description="Messages sent to the dead-letter topic in this run, by reason",
            )
        return {
            "messages": report.messages,
            "inserted": report.inserted,
            "replaced": report.replaced,
            "dead_lettered": dict(report.rejected),
        }
