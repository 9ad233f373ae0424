"""Exactly once, whatever crashes: kill -9, broker restarts, warehouse failures, two drains
in one group, a rebuilt cluster. All against the real broker and the real warehouse file."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import pytest

from stockpipe.drain.offsets import (
    OffsetRowTaken,
    OffsetsOutOfSync,
    claim_offsets,
    read_offsets,
)
from stockpipe.local_stack.broker import LocalBroker
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import KILL_POINTS, Settings, load_settings
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.streaming.topics import ensure_topics
from stockpipe.warehouse import Portable, Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.support import (
    distinct_bar_messages,
    set_up_warehouse,
    warehouse_state,
    warehouse_state_of,
)
from tests.support.exactly_once import (
    FlakyConnection,
    Ledger,
    drain_once,
    kill_drain_after_batches,
    publish,
    publish_with_poison,
    run_drain,
)

pytestmark = pytest.mark.integration


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
    """The second drain joins once the first has committed a batch (a rebalance while it
    drains); the first goes slowly until the second has committed one too, so both load a
    share whatever the machine's speed, and together every message once."""
    total = 60_000
    publish(env_settings, total)
    reports: dict[str, object] = {}
    errors: list = []
    committed = {"first": threading.Event(), "second": threading.Event()}

    def on_batch(name: str):
        def note(_report) -> None:
            committed[name].set()
            if name == "first" and not committed["second"].is_set():
                time.sleep(0.1)  # between polls: the rebalance is not held up

        return note

    with Warehouse.connect(env_settings, "setup") as first:
        setup_warehouse(first, env_settings)
        second = first.sibling()

        def run(name: str, warehouse: Warehouse) -> None:
            try:
                reports[name] = drain_once(
                    env_settings, warehouse, max_records=500, on_batch=on_batch(name)
                )
            except Exception as exc:  # surfaced below
                errors.append(exc)

        threads = {
            name: threading.Thread(target=run, args=(name, wh))
            for name, wh in (("first", first), ("second", second))
        }
        threads["first"].start()
        assert committed["first"].wait(120), errors
        threads["second"].start()
        for thread in threads.values():
            thread.join(300)
        second.close()
        assert not errors, errors
        assert warehouse_state_of(first, env_settings.kafka.prices_topic) == (total,) * 3
    shares = {name: report.inserted for name, report in reports.items()}
    assert shares["first"] > 0 and shares["second"] > 0, shares  # the race did happen
    assert sum(shares.values()) == total


def test_two_drains_recording_a_partitions_first_offset_at_once_fence_the_slower() -> None:
    """Two drains of a group both read that a partition has no offset yet (the group handed
    it over between them): the embedded warehouse's key refuses the slower one's row. That
    is a lost race, retried like a write conflict, and on its retry the slower drain is
    fenced at the first one's offset: nothing is loaded twice and no drain stops."""
    settings = load_settings()
    partition = ("prices_race", 0)
    with Warehouse.connect(settings, "setup") as first:
        setup_warehouse(first, settings)
        second = first.sibling()
        second.execute(Portable("begin"))
        assert read_offsets(second, "prices_race") == {}  # its snapshot: no row yet
        first.execute(Portable("begin"))
        assert claim_offsets(first, {partition: 100}, {partition: 0}, None) == {}
        first.execute(Portable("commit"))
        with pytest.raises(OffsetRowTaken) as taken:
            claim_offsets(second, {partition: 100}, {partition: 0}, None)
        assert second.is_transient(taken.value)
        second.reconnect()  # what the drain does before its retry
        second.execute(Portable("begin"))
        assert claim_offsets(second, {partition: 100}, {partition: 0}, None) == {partition: 100}
        second.execute(Portable("rollback"))
        second.close()
        assert read_offsets(first, "prices_race")[partition].next_offset == 100


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
    """The broker stops and starts again while chunks of bars are being published: a chunk
    in flight while the broker is down waits for it and is delivered once; nothing is lost."""
    settings = load_settings()
    ensure_topics(settings.kafka)
    publishing, down, restarted = threading.Event(), threading.Event(), threading.Event()

    def restart_broker() -> None:
        publishing.wait(120)
        own_broker.stop()
        down.set()
        own_broker.start(progress=False)
        restarted.set()

    restarter = threading.Thread(target=restart_broker)
    restarter.start()
    producer = QuoteProducer(settings.kafka)
    chunks = through_outage = 0
    while not restarted.is_set() or chunks < 30:  # publishing through the restart
        begun_before_restart = not restarted.is_set()
        producer.publish_raw(
            (k, v, None) for k, v in distinct_bar_messages(1_000, start=chunks * 1_000)
        )
        # Begun before the broker was back and delivered after it had gone: this chunk
        # waited for the outage (whether it was begun before the stop or during it).
        through_outage += begun_before_restart and down.is_set()
        chunks += 1
        if chunks == 3:
            publishing.set()
    restarter.join()
    assert through_outage > 0  # publishing did span the outage
    drain_once(settings)
    total = chunks * 1_000
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
