"""The live store: what people watch during a session, current within a second of a commit.

Snowflake is the system of record, loaded on the cost-bounded cadence (the drain and trends
deployments, every 10 minutes in session). The live tier serves the session from where a
read costs nothing: an embedded warehouse of its own under ``<home>/live`` (on any backend),
fed by a following drain of the same prices topic in a consumer group of its own
(``kafka.live_consumer_group``) that commits about every second
(``drain.max_latency_seconds``), exactly once into that store, as every drain does. Being a
store of its own, it holds no lock any other command or flow needs.

dbt stays the one owner of every definition: the live marts are dbt views
(``sql/models/live``) over the store's RAW, using the same macros as the marts
(``sql/macros/indicators.sql``); they are made once when the live tier starts, and each
commit is followed by reading them (no dbt start per commit) into a snapshot the dashboard
reads (:func:`read_snapshot`), and by the alerts on arrival: the day's move past
``trends.alert_day_change_pct`` and each crossing of a bar's close over its ma20, each sent
once (the store's ``MARTS.ALERTS_SENT`` remembers them across restarts).

The live process owns its store, so it sets it up (the same ``sql/setup`` files) and makes
its views at start; it runs no DDL on the warehouse of record.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd

from stockpipe.alerts import Alert, alert_producer, day_move, publish_new_alerts
from stockpipe.drain.pipeline import drain_prices
from stockpipe.drain.report import DrainReport
from stockpipe.live.forming import FormingPrices
from stockpipe.live.snapshot import VIEWS, snapshot_dir, write_snapshot
from stockpipe.settings import Settings
from stockpipe.streaming.clients import KafkaUnreachable
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.warehouse import Warehouse, WarehouseError
from stockpipe.warehouse.base import Portable

log = logging.getLogger(__name__)

# The store keeps this many days of bars before its newest (it starts from the whole topic;
# its retention is days): the previous session's close across a long weekend, the ma20.
KEEP_DAYS = 10


def live_settings(settings: Settings) -> Settings:
    """The live store's settings: an embedded warehouse under ``<home>/live`` with its own
    dbt state, read by a consumer group of its own, no raw zone (the drain of record files
    the bars); everything else (broker, topics, watchlist, thresholds) as ``settings``."""
    data = settings.model_dump()
    data["profile"] = "local"
    data["home"] = settings.home_dir / "live"
    data["warehouse"] = data["warehouse"] | {"backend": "embedded"}
    data["kafka"] = data["kafka"] | {"consumer_group": settings.kafka.live_consumer_group}
    data["lake"] = data["lake"] | {"enabled": False}
    data["trends"] = data["trends"] | {"dbt_dir": None}
    return Settings.model_validate(data)


@dataclass
class Refresh:
    """One reading of the live views after a commit."""

    at: datetime
    rows: dict[str, int]
    newest_bar: datetime | None
    seconds: float
    alerts: list[Alert] = field(default_factory=list)


@dataclass
class LiveTierReport:
    drain: DrainReport | None = None
    refreshes: int = 0
    alerts: int = 0
    last: Refresh | None = None

    def summary(self) -> str:
        committed = self.drain.inserted + self.drain.replaced if self.drain else 0
        newest = (
            f", newest bar {self.last.newest_bar:%Y-%m-%d %H:%M} UTC"
            if (self.last and self.last.newest_bar)
            else ""
        )
        return (
            f"live tier: {committed} bars committed to the live store, {self.refreshes} "
            f"refreshes of the live marts, {self.alerts} alerts sent{newest}"
        )


class LiveStore:
    """Runs the live tier: set up the store and its views, then follow the prices topic,
    refreshing the snapshot and sending the alerts after each commit.

    Args:
        settings: the installation's settings (the store's are derived from them).
        on_refresh: called after each refresh with the running report (progress).
    """

    def __init__(
        self, settings: Settings, on_refresh: Callable[[LiveTierReport], None] | None = None
    ):
        self.settings = settings
        self.store = live_settings(settings)
        self.snapshot = snapshot_dir(settings)
        self.report = LiveTierReport()
        self.on_refresh = on_refresh
        self.started = datetime.now(UTC)
        self._stop = threading.Event()
        self._alert_producer: QuoteProducer | None = None

    def _alerts_via(self) -> QuoteProducer | None:
        """One producer for the alerts of every refresh (making one per refresh cost about
        half a second and memory that was not given back); None while Kafka is unreachable
        (the send then says why)."""
        if self._alert_producer is None:
            with contextlib.suppress(KafkaUnreachable):
                self._alert_producer = alert_producer(self.settings)
        return self._alert_producer

    def stop(self) -> None:
        """End :meth:`run` after the batch in flight (from another thread)."""
        self._stop.set()

    def prepare(self, warehouse: Warehouse) -> None:
        """Set up the store (``sql/setup``), drop what is older than :data:`KEEP_DAYS`, make
        the live views (dbt, once)."""
        from stockpipe.trends.build import invoke
        from stockpipe.warehouse.setup import setup_warehouse

        setup_warehouse(warehouse, self.store)
        # Days before the newest bar, not the clock: a replayed session is kept whole.
        newest = warehouse.query("select max(ts) from RAW.STOCK_PRICES")[0][0]
        if newest is not None:
            warehouse.execute(
                "delete from RAW.STOCK_PRICES where ts < %s", [newest - timedelta(days=KEEP_DAYS)]
            )
        result = invoke(
            warehouse,
            self.store,
            ["run", "--select", "valid_bars", "tag:live"],
            variables={"live_tier": True},
        )
        if result.exception is not None or not result.success:
            raise WarehouseError(
                f"dbt could not make the live views: {result.exception or result.result}"
            )

    def refresh(self, warehouse: Warehouse) -> Refresh:
        """Read the live views into the snapshot; send the alerts they hold."""
        started = time.perf_counter()
        frames = {
            name: warehouse.query_frame(Portable(f"select * from {view}"))  # noqa: S608 - VIEWS
            for name, view in VIEWS.items()
        }
        write_snapshot(self.snapshot, frames)
        quotes = frames["latest_quote"]
        newest = pd.to_datetime(quotes["ts"]).max() if len(quotes) else None
        alerts = publish_new_alerts(
            self.settings,
            warehouse,
            live_alerts(frames, self.settings, self.started),
            self._alerts_via(),
        ).sent  # those that wait are found again after the next commit
        refresh = Refresh(
            datetime.now(UTC),
            {name: len(frame) for name, frame in frames.items()},
            None if newest is None or pd.isna(newest) else newest.to_pydatetime(),
            time.perf_counter() - started,
            alerts,
        )
        self.report.refreshes += 1
        self.report.alerts += len(alerts)
        self.report.last = refresh
        if self.on_refresh is not None:
            self.on_refresh(self.report)
        return refresh

    def run(self, max_batches: int | None = None) -> LiveTierReport:
        """Prepare, refresh once, then follow the topic until interrupted (or
        ``max_batches`` commits); the report of what was done."""
        from stockpipe.runtime import limit_malloc_arenas

        limit_malloc_arenas()
        forming = FormingPrices(self.settings, self.snapshot).start()
        try:
            return self._follow(max_batches)
        finally:
            forming.stop()

    def _follow(self, max_batches: int | None) -> LiveTierReport:
        prepare_in_child()
        with Warehouse.connect(self.store, "setup") as warehouse:
            self.refresh(warehouse)
            self.report.drain = drain_prices(
                self.store,
                warehouse,
                until_empty=False,
                max_batches=max_batches,
                on_batch=lambda _: self.refresh(warehouse),
                dead_letters=False,
                stop=self._stop.is_set,
            )
        return self.report


def prepare_in_child() -> None:
    """:meth:`LiveStore.prepare` in a process of its own, before the tier opens the store:
    dbt's imports and run stay out of the long-lived process (its peak memory was dbt's).
    The child reads the same settings (the environment and ``.env``).

    Raises:
        WarehouseError: the child failed; its last lines say why.
    """
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "stockpipe.live.store"], capture_output=True, text=True
    )
    if done.returncode != 0:
        tail = "; ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise WarehouseError(f"the live store could not be prepared: {tail}")


def _prepare_here() -> None:
    from stockpipe.settings import load_settings

    live = LiveStore(load_settings())
    with Warehouse.connect(live.store, "setup") as warehouse:
        live.prepare(warehouse)


def live_alerts(
    frames: dict[str, pd.DataFrame], settings: Settings, arrived_since: datetime
) -> list[Alert]:
    """The alerts the live views hold: each symbol's day move at or past the threshold
    (the same rule and key as the trends flow's ``day_move``, so a consumer sees one), and
    each crossing of a close over its ma20 whose bar arrived since ``arrived_since`` (one
    per crossing: its minute is in the rule; a restart does not announce the day's earlier
    crossings again)."""
    alerts = []
    for row in frames["latest_quote"].itertuples():
        moved = day_move(
            row.symbol,
            _date(row.session_date),
            row.change_on_day_pct,
            settings.trends.alert_day_change_pct,
            f"last {row.last_close:.2f} at {pd.Timestamp(row.ts):%H:%M} UTC",
        )
        if moved is not None:
            alerts.append(moved)
    since = pd.Timestamp(arrived_since).tz_convert(None)
    for row in frames["ma_crossings"].itertuples():
        if pd.Timestamp(row.loaded_at) < since:
            continue
        minute = pd.Timestamp(row.ts)
        alerts.append(
            Alert(
                row.symbol,
                _date(row.session_date),
                f"price_ma20_cross_{row.direction}@{minute:%H:%M}",
                f"{row.symbol} crossed {'above' if row.direction == 'up' else 'below'} its "
                f"20-minute average at {minute:%H:%M} UTC (close {row.close:.2f}, "
                f"ma20 {row.ma20:.2f})",
                float(row.close - row.ma20),
            )
        )
    return alerts


def _date(value: object):
    return pd.Timestamp(value).date()


if __name__ == "__main__":  # prepare_in_child's process
    _prepare_here()
