"""Pipeline metrics (prometheus-client), named by Prometheus conventions.

Batch flows run in a process of their own (one per flow run), so their counters count that
run; :func:`push` sends them to a Pushgateway at the end of the run, failed or not, grouped
by job (the flow) and instance (the host). Prometheus' ``increase()`` reads a counter that
starts again at each run as resets, which is what they are. The long-running drain
(``stockpipe drain --follow``) serves ``/metrics`` instead (:func:`serve`).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    push_to_gateway,
    start_http_server,
)

log = logging.getLogger(__name__)

QUOTES_FETCHED = Counter(
    "stockpipe_quotes_fetched_total", "Bars returned by the quote source", ["source"]
)
QUOTES_REJECTED = Counter(
    "stockpipe_quotes_rejected_total", "Fetched bars refused by the message contract", ["reason"]
)
FETCH_ERRORS = Counter(
    "stockpipe_fetch_errors_total", "Failed calls to the quote source", ["source", "kind"]
)
MESSAGES_PRODUCED = Counter(
    "stockpipe_messages_produced_total", "Messages acknowledged by Kafka", ["topic"]
)
DELIVERY_FAILURES = Counter(
    "stockpipe_delivery_failures_total", "Messages Kafka did not acknowledge", ["topic"]
)
MESSAGES_DRAINED = Counter(
    "stockpipe_messages_drained_total", "Messages read by the drain", ["topic"]
)
ROWS_LOADED = Counter(
    "stockpipe_rows_loaded_total", "Rows committed to the warehouse", ["table", "kind"]
)
DEAD_LETTERS = Counter(
    "stockpipe_dead_letters_total", "Messages sent to the dead-letter topic", ["reason"]
)
BATCH_DURATION = Histogram(
    "stockpipe_drain_batch_duration_seconds",
    "Time from a batch's first message to its warehouse commit",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LOAD_DURATION = Histogram(
    "stockpipe_warehouse_load_duration_seconds",
    "Time of one warehouse commit (bulk load + transaction)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LIVE_BAR_DELAY = Histogram(
    "stockpipe_live_bar_delay_seconds",
    "ingest --follow: from the end of a minute's grace to its bar acknowledged in Kafka",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
LIVE_LATE_TRADES = Counter(
    "stockpipe_live_late_trades_total",
    "ingest --follow: trades that came after their minute's bar was closed",
)
CONSUMER_LAG = Gauge(
    "stockpipe_consumer_lag_messages",
    "Messages in the partition after the drain's committed offset",
    ["topic", "partition"],
)
NEWEST_BAR = Gauge(
    "stockpipe_newest_bar_timestamp_seconds",
    "Start of the newest bar committed to the warehouse (Unix time)",
)
WAREHOUSE_SESSION_SECONDS = Counter(
    "stockpipe_warehouse_session_seconds_total",
    "Seconds the pipeline held a warehouse session open, by purpose: on Snowflake the time "
    "it kept the virtual warehouse busy (billed per second, plus AUTO_SUSPEND idle after "
    "the last query, at least 60 s per resume)",
    ["backend", "purpose"],
)
WAREHOUSE_SESSIONS = Counter(
    "stockpipe_warehouse_sessions_total",
    "Warehouse connections opened; on Snowflake each may resume the virtual warehouse "
    "(billed for at least 60 s), so this counts resumes at most",
    ["backend", "session_date"],
)
VALIDATION_SUCCESS = Gauge(
    "stockpipe_validation_success", "1 if the suite passed in the last validation", ["suite"]
)
LAST_SUCCESS = Gauge(
    "stockpipe_last_success_timestamp_seconds", "When the flow last succeeded", ["flow"]
)
RUN_SUCCESS = Gauge("stockpipe_run_success", "1 if the flow's last run succeeded", ["flow"])


def record_success(flow: str, ok: bool) -> None:
    RUN_SUCCESS.labels(flow).set(1 if ok else 0)
    if ok:
        LAST_SUCCESS.labels(flow).set(time.time())


def push(
    flow: str, gateway: str | None, registry: CollectorRegistry = REGISTRY, ok: bool = True
) -> bool:
    """Record the run's outcome and push this process's metrics, grouped by job.

    Returns False (and logs) when the Pushgateway cannot be reached: metrics are never a
    reason for a run to fail.
    """
    record_success(flow, ok)
    if not gateway:
        return False
    try:
        push_to_gateway(
            gateway,
            job=flow,
            registry=registry,
            grouping_key={"instance": socket.gethostname()},
            timeout=10,
        )
    except OSError as exc:
        log.warning("could not push metrics to %s: %s", gateway, exc)
        return False
    return True


def serve(port: int) -> None:
    """Serve ``/metrics`` on ``port`` (the long-running drain)."""
    start_http_server(port)
    log.info("serving metrics on :%d/metrics", port)


@contextmanager
def pushed_at_end(flow: str, gateway: str | None) -> Iterator[None]:
    """Push this run's metrics when the block ends, recording whether it succeeded."""
    ok = False
    try:
        yield
        ok = True
    finally:
        push(flow, gateway, ok=ok)
