"""Exactly once, whatever crashes: kill -9, broker restarts, warehouse failures, two drains
in one group, a rebuilt cluster. All against the real broker and the real warehouse file."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from stockpipe.drain import drain_to_warehouse
from stockpipe.drain.offsets import OffsetsOutOfSync
from stockpipe.processes import free_port
from stockpipe.settings import Settings, load_settings
from stockpipe.streaming.broker import LocalBroker
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.streaming.topics import ensure_topics
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.sql_runner import apply_sql
from tests.support import distinct_bar_messages, warehouse_state, warehouse_state_of

pytestmark = pytest.mark.integration


def publish(settings: Settings, count: int, start: int = 0, **kwargs) -> None:
    messages = ((k, v, None) for k, v in distinct_bar_messages(count, start=start, **kwargs))
    QuoteProducer(settings.kafka).publish_raw(messages)


def drain_once(settings: Settings, warehouse: Warehouse | None = None, **kwargs):
    if warehouse is not None:
        return drain_to_warehouse(settings, warehouse, **kwargs)
    with Warehouse.connect(settings) as wh:
        apply_sql(wh)
        return drain_to_warehouse(settings, wh, **kwargs)


@pytest.fixture
def own_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A broker of this test's own, for tests that stop or wipe it."""
    broker = LocalBroker(tmp_path / "own-kafka", port=free_port(), controller_port=free_port())
    broker.start(progress=False)
    monkeypatch.setenv("STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    monkeypatch.setenv("STOCKPIPE_KAFKA__PRICES_PARTITIONS", "3")
    monkeypatch.setenv("STOCKPIPE_DRAIN__MAX_WAIT_SECONDS", "2")
    yield broker
    broker.stop()


def test_kill_9_at_random_points_twenty_times_loses_and_duplicates_nothing(
    env_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = 200_000
    publish(env_settings, total)
    monkeypatch.setenv("STOCKPIPE_KAFKA__CONSUMER_INSTANCE_ID", "drain-under-test")
    # Small batches: many commits to land in; the drain loads ~50,000 bars a second here.
    command = [sys.executable, "-m", "stockpipe.cli", "drain", "--max-records", "500"]
    rng = random.Random(9)
    progress = []
    for _ in range(20):
        process = subprocess.Popen(
            command, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.8, 1.6))
        process.kill()  # SIGKILL: no cleanup, mid-batch or mid-commit
        process.wait()
        rows, distinct, offsets = warehouse_state(env_settings)
        assert rows == distinct  # never a duplicate, even between crashes
        assert rows <= offsets  # offsets never pass rows that are not loaded...
        progress.append(rows)
    final = subprocess.run(
        command, env=os.environ.copy(), capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stderr
    assert warehouse_state(env_settings) == (total, total, total)
    interrupted = [p for p in progress if 0 < p < total]
    assert len(interrupted) >= 8, progress  # the kills really landed mid-drain


def test_two_drains_in_one_group_share_partitions_without_duplicates(
    env_settings: Settings,
) -> None:
    total = 60_000
    publish(env_settings, total)
    reports: list = []
    errors: list = []
    with Warehouse.connect(env_settings) as first:
        apply_sql(first)
        second = first.sibling()

        def run(warehouse: Warehouse) -> None:
            try:
                reports.append(drain_once(env_settings, warehouse, max_records=3000))
            except Exception as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(wh,)) for wh in (first, second)]
        for thread in threads:
            thread.start()
            time.sleep(0.5)  # the second joins while the first is draining: a rebalance
        for thread in threads:
            thread.join(120)
        second.close()
        assert not errors, errors
        assert warehouse_state_of(first, env_settings.kafka.prices_topic) == (total,) * 3
    assert sum(r.inserted for r in reports) == total


class FlakyConnection:
    """The embedded warehouse's DuckDB connection, failing the first ``times`` statements
    that match, as a database file that cannot be written does (IOException).

    It is the boundary every statement of a drain crosses on the embedded warehouse.
    """

    ERRORS = duckdb.IOException

    def __init__(self, real, match: str, times: int) -> None:
        self.real, self.match, self.left = real, match, times

    def execute(self, sql, *args):
        if self.match in sql.lower() and self.left > 0:
            self.left -= 1
            raise duckdb.IOException("injected: could not write to the database file")
        return self.real.execute(sql, *args)

    def __getattr__(self, name):  # everything else is the real connection's
        return getattr(self.real, name)


def test_warehouse_failing_mid_batch_is_retried_and_offsets_wait(
    env_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(env_settings, 5_000)
    monkeypatch.setenv("STOCKPIPE_DRAIN__LOAD_RETRY_BASE_SECONDS", "0.05")
    monkeypatch.setenv("STOCKPIPE_DRAIN__LOAD_RETRIES", "2")
    settings = load_settings()
    with Warehouse.connect(settings) as warehouse:
        apply_sql(warehouse)
        real = warehouse.duck
        # More failures than retries: the drain fails, and nothing is committed.
        warehouse.duck = FlakyConnection(real, "insert into raw.stock_prices", times=3)
        with pytest.raises(FlakyConnection.ERRORS):
            drain_once(settings, warehouse, max_records=5_000)
        assert warehouse_state_of(warehouse, settings.kafka.prices_topic) == (0, 0, 0)
        # Fewer failures than retries: the same run succeeds, everything once.
        warehouse.duck = FlakyConnection(real, "insert into raw.stock_prices", times=2)
        report = drain_once(settings, warehouse, max_records=5_000)
        assert report.inserted == 5_000
        assert warehouse_state_of(warehouse, settings.kafka.prices_topic) == (5_000,) * 3


def test_broker_restart_while_the_producer_publishes_loses_nothing(
    own_broker: LocalBroker,
) -> None:
    settings = load_settings()
    ensure_topics(settings.kafka)
    total = 30_000
    restarted = threading.Event()

    def restart_broker() -> None:
        time.sleep(0.3)
        own_broker.stop()
        own_broker.start(progress=False)
        restarted.set()

    restarter = threading.Thread(target=restart_broker)
    restarter.start()
    producer = QuoteProducer(settings.kafka)
    for chunk in range(30):  # keep publishing through the restart
        producer.publish_raw(
            (k, v, None) for k, v in distinct_bar_messages(1_000, start=chunk * 1_000)
        )
        time.sleep(0.05)
    restarter.join()
    assert restarted.is_set()
    drain_once(settings)
    assert warehouse_state(settings) == (total, total, total)


def test_rebuilt_cluster_stops_the_drain_until_told_where_to_resume(
    own_broker: LocalBroker,
) -> None:
    settings = load_settings()
    ensure_topics(settings.kafka)
    publish(settings, 3_000)
    assert drain_once(settings).inserted == 3_000

    # Rebuild: storage wiped, new cluster id, offsets start again at 0.
    old_id = own_broker.cluster_id()
    own_broker.wipe()
    own_broker.start(progress=False)
    assert own_broker.cluster_id() != old_id
    ensure_topics(settings.kafka)
    publish(settings, 1_000, start=3_000)

    with pytest.raises(OffsetsOutOfSync) as caught:
        drain_once(settings)
    message = str(caught.value)
    assert old_id in message and own_broker.cluster_id() in message
    assert "--reset-offsets earliest" in message
    assert warehouse_state(settings)[0] == 3_000  # nothing skipped, nothing loaded

    report = drain_once(settings, reset_offsets="earliest")
    assert report.inserted == 1_000
    rows, distinct, offsets = warehouse_state(settings)
    assert (rows, distinct, offsets) == (4_000, 4_000, 1_000)
    assert drain_once(settings).messages == 0  # and the next run is quiet again
