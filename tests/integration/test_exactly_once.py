"""Exactly once, whatever crashes: kill -9, broker restarts, warehouse failures, two drains
in one group, a rebuilt cluster. All against the real broker and the real warehouse file."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from stockpipe.drain import drain_prices
from stockpipe.drain.offsets import OffsetsOutOfSync, read_offsets
from stockpipe.local_stack.broker import LocalBroker
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import KILL_POINTS, Settings, load_settings
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.streaming.topics import ensure_topics
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.support import (
    distinct_bar_messages,
    read_topic,
    set_up_warehouse,
    warehouse_state,
    warehouse_state_of,
)

pytestmark = pytest.mark.integration


def publish(settings: Settings, count: int, start: int = 0, **kwargs) -> None:
    messages = ((k, v, None) for k, v in distinct_bar_messages(count, start=start, **kwargs))
    QuoteProducer(settings.kafka).publish_raw(messages)


def drain_once(settings: Settings, warehouse: Warehouse | None = None, **kwargs):
    if warehouse is not None:
        return drain_prices(settings, warehouse, **kwargs)
    with Warehouse.connect(settings, "setup") as wh:
        setup_warehouse(wh, settings)
        return drain_prices(settings, wh, **kwargs)


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


DRAIN_COMMAND = [sys.executable, "-m", "stockpipe.cli", "drain", "--max-records", "500"]


def run_drain(**env: str) -> subprocess.CompletedProcess:
    """`stockpipe drain` to its end, with ``env`` added to this test's environment."""
    return subprocess.run(
        DRAIN_COMMAND, env=os.environ | env, capture_output=True, text=True, timeout=300
    )


def kill_drain_after_batches(batches: int, **env: str) -> subprocess.Popen:
    """Start `stockpipe drain` and SIGKILL it once it has reported ``batches`` commits."""
    process = subprocess.Popen(
        DRAIN_COMMAND,
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    seen = 0
    for line in process.stdout:
        seen += line.lstrip().startswith("batch ")
        if seen == batches:
            break
    assert seen == batches, "the drain ended before it was killed"
    return process


def publish_with_poison(settings: Settings, total: int, every: int = 97) -> None:
    """``total`` messages: valid distinct bars, and every ``every``-th one broken, so that
    every 500-message batch has dead letters."""
    messages = []
    for i, (key, value) in enumerate(distinct_bar_messages(total)):
        if i % every == every - 1:
            value = value.replace(b'"volume"', b'"volume":-1,"x"')  # not the contract
        messages.append((key, value, None))
    QuoteProducer(settings.kafka).publish_raw(messages)


class Ledger:
    """What the topic holds, read once: which offsets are valid bars and which poison."""

    def __init__(self, settings: Settings):
        self.settings = settings
        set_up_warehouse(settings)  # the deployment's one-time set-up
        self.poison: dict[int, set[int]] = {}
        self.valid: dict[int, set[int]] = {}
        for message in read_topic(settings, settings.kafka.prices_topic):
            bad = b'"x"' in message.value()
            book = self.poison if bad else self.valid
            book.setdefault(message.partition(), set()).add(message.offset())
        self.total = sum(map(len, self.valid.values())) + sum(map(len, self.poison.values()))

    def check(self) -> int:
        """Exactly once at this instant: the warehouse holds the valid bars below each stored
        offset, each once, and nothing else; the poison below it is in the dead-letter topic.

        Returns:
            the messages the stored offsets cover.
        """
        topic = self.settings.kafka.prices_topic
        with Warehouse.connect(self.settings, "setup") as warehouse:
            stored = {p: o.next_offset for (_, p), o in read_offsets(warehouse, topic).items()}
            rows, distinct, _ = warehouse_state_of(warehouse, topic)
        below = sum(o < stored.get(p, 0) for p, offsets in self.valid.items() for o in offsets)
        assert rows == distinct == below
        sources = {
            (int(h["dlq.source.partition"]), int(h["dlq.source.offset"]))
            for h in (
                dict(m.headers()) for m in read_topic(self.settings, self.settings.kafka.dlq_topic)
            )
        }
        for partition, offsets in self.poison.items():
            for offset in offsets:
                if offset < stored.get(partition, 0):
                    assert (partition, offset) in sources, (partition, offset)
        return sum(stored.values())


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_drain_killed_at_each_point_of_a_batch_loses_and_duplicates_nothing(
    env_settings: Settings, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    publish_with_poison(env_settings, 3_000)
    ledger = Ledger(env_settings)
    monkeypatch.setenv("STOCKPIPE_KAFKA__CONSUMER_INSTANCE_ID", "drain-under-test")
    # Killed at the point in batch 2, with a batch committed before it (a kill in the first
    # batch, with no offsets stored yet, is among the random kills and the Snowflake tier's).
    before = ledger.check()
    killed = run_drain(STOCKPIPE_DRAIN__KILL_AT=f"{point}@2")
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert ledger.check() >= before
    final = run_drain()
    assert final.returncode == 0, final.stderr
    assert ledger.check() == ledger.total


def test_kill_9_at_random_points_after_observed_progress_loses_and_duplicates_nothing(
    env_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_with_poison(env_settings, 40_000)
    ledger = Ledger(env_settings)
    monkeypatch.setenv("STOCKPIPE_KAFKA__CONSUMER_INSTANCE_ID", "drain-under-test")
    rng = random.Random(9)
    covered = [ledger.check()]
    for _ in range(6):
        process = kill_drain_after_batches(rng.randint(1, 4))
        # ...somewhere inside the next batch: decoding, dead letters, files, commit.
        time.sleep(rng.uniform(0, 0.05))
        process.kill()
        process.wait()
        covered.append(ledger.check())
        assert covered[-1] > covered[-2]  # progress was made and kept
    final = run_drain()
    assert final.returncode == 0, final.stderr
    assert ledger.check() == ledger.total


def test_a_restart_while_a_killed_drain_still_holds_the_partitions_waits_then_drains(
    env_settings: Settings,
) -> None:
    # No static membership: the killed drain stays in the group until its session ends.
    # A session of 30 s outlasts the next drain's start even on a busy machine (with the
    # default 10 s, a slow start found the partitions already free and said nothing).
    publish_with_poison(env_settings, 20_000)
    ledger = Ledger(env_settings)
    first = kill_drain_after_batches(1, STOCKPIPE_KAFKA__CONSUMER_SESSION_TIMEOUT_SECONDS="30")
    first.kill()
    first.wait()
    second = run_drain()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "waiting for partitions" in second.stderr  # it said what it waited for
    assert "caught up with the end of every partition" in second.stdout
    assert ledger.check() == ledger.total


def test_a_drain_given_no_partitions_fails_naming_the_cause_and_the_settings(
    env_settings: Settings,
) -> None:
    publish_with_poison(env_settings, 20_000)
    set_up_warehouse(env_settings)
    # The killed drain's session outlasts the next drain's wait for partitions.
    first = kill_drain_after_batches(1, STOCKPIPE_KAFKA__CONSUMER_SESSION_TIMEOUT_SECONDS="120")
    first.kill()
    first.wait()
    second = run_drain(STOCKPIPE_DRAIN__ASSIGNMENT_WAIT_SECONDS="6")
    assert second.returncode == 1, second.stdout + second.stderr  # not a silent success
    message = " ".join(second.stderr.split())
    assert "gave this drain no partition" in message and "messages wait" in message
    assert "STOCKPIPE_KAFKA__CONSUMER_SESSION_TIMEOUT_SECONDS" in message
    assert "STOCKPIPE_DRAIN__ASSIGNMENT_WAIT_SECONDS=6" in message
    assert "STOCKPIPE_KAFKA__CONSUMER_INSTANCE_ID" in message


def test_two_drains_in_one_group_share_partitions_without_duplicates(
    env_settings: Settings,
) -> None:
    total = 60_000
    publish(env_settings, total)
    reports: list = []
    errors: list = []
    with Warehouse.connect(env_settings, "setup") as first:
        setup_warehouse(first, env_settings)
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
    with Warehouse.connect(settings, "setup") as warehouse:
        setup_warehouse(warehouse, settings)
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
