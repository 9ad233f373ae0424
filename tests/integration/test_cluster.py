"""Kafka as a cluster: three KRaft nodes on loopback forming one quorum (the same
LocalBroker code as the single broker), topics with three replicas and min.insync.replicas=2.

A node is killed (SIGKILL, at a point chosen from the producer's progress) while bars are
published and drained, and restarted later: the warehouse ends with every bar once and the
topic holds every bar once. Two drains in one consumer group share the partitions and
load every bar once: two threads on the embedded warehouse, and two `stockpipe drain`
processes on the Snowflake path (the Snowflake tier's server over HTTP), where a rebalance
in the middle of a batch races the offsets' compare-and-set fence.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from stockpipe.drain import drain_prices
from stockpipe.drain.report import DrainReport
from stockpipe.local_stack.processes import free_port, process_state
from stockpipe.settings import Settings, load_settings
from stockpipe.streaming.consumer import group_members
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.streaming.topics import ensure_topics
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.local_cluster import LocalCluster
from tests.support import (
    SnowflakeServer,
    distinct_bar_messages,
    read_topic,
    set_up_warehouse,
    warehouse_state_of,
)

pytestmark = pytest.mark.integration
NODES = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    cluster = LocalCluster(
        tmp_path_factory.mktemp("cluster"),
        ports=[free_port() for _ in range(NODES)],
        controller_ports=[free_port() for _ in range(NODES)],
        heap="256m",
    )
    cluster.start(progress=False)
    yield cluster
    cluster.stop()


@pytest.fixture
def settings(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    tag = tmp_path.name[-40:].replace("-", "_")
    for name, value in {
        "BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
        "PRICES_TOPIC": f"prices_{tag}",
        "ALERTS_TOPIC": f"alerts_{tag}",
        "DLQ_TOPIC": f"dlq_{tag}",
        "CONSUMER_GROUP": f"drain_{tag}",
        "PRICES_PARTITIONS": "6",
        "REPLICATION_FACTOR": "3",
        "MIN_INSYNC_REPLICAS": "2",
    }.items():
        monkeypatch.setenv(f"STOCKPIPE_KAFKA__{name}", value)
    monkeypatch.setenv("STOCKPIPE_DRAIN__MAX_WAIT_SECONDS", "2")
    settings = load_settings()
    ensure_topics(settings.kafka)
    return settings


def _partitions(settings: Settings) -> dict[int, object]:
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    topic = admin.list_topics(settings.kafka.prices_topic, timeout=10).topics
    return dict(topic[settings.kafka.prices_topic].partitions)


def _wait_for_full_isr(settings: Settings) -> None:
    """Until every partition has its three replicas in sync again (a restarted node
    catching up); fails with the ISRs seen."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        partitions = _partitions(settings)
        if all(len(p.isrs) == NODES for p in partitions.values()):
            return
        time.sleep(0.5)
    pytest.fail(f"in-sync replicas did not recover: { {i: p.isrs for i, p in partitions.items()} }")


def test_three_nodes_form_one_quorum_and_the_topics_have_three_replicas(
    cluster: LocalCluster, settings: Settings
) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    metadata = admin.list_topics(timeout=10)
    assert sorted(metadata.brokers) == [1, 2, 3]
    assert metadata.controller_id in (1, 2, 3)
    # Each node answers alone with the same cluster (one quorum, not three clusters).
    ids = set()
    for node in cluster.nodes:
        alone = AdminClient({"bootstrap.servers": node.bootstrap_servers})
        ids.add(alone.describe_cluster().result(10).cluster_id)
    assert len(ids) == 1

    partitions = _partitions(settings)
    assert len(partitions) == 6
    assert all(sorted(p.replicas) == [1, 2, 3] for p in partitions.values())
    leaders = {p.leader for p in partitions.values()}
    assert len(leaders) > 1  # the load is spread over the nodes
    resource = ConfigResource(ConfigResource.Type.TOPIC, settings.kafka.prices_topic)
    config = admin.describe_configs([resource])[resource].result(10)
    assert config["min.insync.replicas"].value == "2"


def test_a_node_killed_and_restarted_while_bars_flow_loses_and_duplicates_nothing(
    cluster: LocalCluster, settings: Settings
) -> None:
    chunks, chunk = 40, 1_000
    total = chunks * chunk
    published: list[int] = []
    progress = threading.Condition()
    errors: list[BaseException] = []

    def produce() -> None:
        producer = QuoteProducer(settings.kafka)
        try:
            for i in range(chunks):
                messages = distinct_bar_messages(chunk, start=i * chunk)
                report = producer.publish_raw((k, v, None) for k, v in messages)
                with progress:
                    published.append(report.published)
                    progress.notify_all()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            with progress:
                progress.notify_all()

    def wait_for_chunks(count: int) -> None:
        with progress:
            assert progress.wait_for(lambda: len(published) >= count or errors, timeout=300)

    producer = threading.Thread(target=produce)
    producer.start()
    with Warehouse.connect(settings, "setup") as warehouse:
        setup_warehouse(warehouse, settings)
        wait_for_chunks(8)
        # The node leading the first partition: its clients must move to a new leader.
        victim = cluster.node(_partitions(settings)[0].leader)
        victim.kill()
        drained = drain_prices(settings, warehouse)  # with one node down
        wait_for_chunks(24)
        victim.start(progress=False)
        producer.join(300)
        assert not errors, errors
        assert sum(published) == total
        while drained.inserted < total:  # each run drains what has arrived so far
            run = drain_prices(settings, warehouse)
            drained.inserted += run.inserted
            assert run.messages or drained.inserted == total
        rows, keys, _ = warehouse_state_of(warehouse, settings.kafka.prices_topic)

    assert (rows, keys) == (total, total)
    # The log itself holds each bar once (idempotent producer, acks=all, two in sync).
    assert len(read_topic(settings, settings.kafka.prices_topic)) == total
    _wait_for_full_isr(settings)


def test_two_drains_in_one_group_share_the_partitions_and_load_every_bar_once(
    settings: Settings,
) -> None:
    """Two drains that keep running (``--follow``), as on two machines: once the group has
    given each its share, bars published after that are loaded by both, each bar once, from
    leaders on more than one node; a later drain finds nothing left to load twice."""
    first_chunk, second_chunk, last_chunk = 3_000, 24_000, 600
    total = first_chunk + second_chunk + last_chunk
    publisher = QuoteProducer(settings.kafka)
    publisher.publish_raw((k, v, None) for k, v in distinct_bar_messages(first_chunk))
    loaded: dict[str, int] = {}
    progress = threading.Condition()
    stop = threading.Event()
    reports: dict[str, DrainReport] = {}
    errors: list[BaseException] = []

    def on_batch(report: DrainReport) -> None:
        with progress:
            loaded[threading.current_thread().name] = report.inserted
            progress.notify_all()
        if stop.is_set():
            raise KeyboardInterrupt  # Ctrl-C after this batch: how a follow drain is stopped

    def run(warehouse: Warehouse) -> None:
        try:
            report = drain_prices(
                settings, warehouse, until_empty=False, max_records=1000, on_batch=on_batch
            )
            reports[threading.current_thread().name] = report
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def wait_until(what: str, condition) -> None:
        with progress:
            assert progress.wait_for(lambda: condition() or errors, timeout=300), what
        assert not errors, errors

    def no_errors() -> None:
        assert not errors, errors

    with Warehouse.connect(settings, "setup") as first:
        setup_warehouse(first, settings)
        second = first.sibling()
        threads = [
            threading.Thread(target=run, args=(warehouse,), name=name)
            for name, warehouse in (("one", first), ("two", second))
        ]
        for thread in threads:
            thread.start()
        wait_until("the first bars are loaded", lambda: sum(loaded.values()) >= first_chunk)
        _wait_until_two_members_hold_partitions(settings, no_errors)
        before = dict(loaded)
        publisher.publish_raw(
            (k, v, None) for k, v in distinct_bar_messages(second_chunk, start=first_chunk)
        )
        wait_until(
            "the second chunk is loaded", lambda: sum(loaded.values()) >= first_chunk + second_chunk
        )
        stop.set()  # each stops after its next batch: one more chunk reaches both
        publisher.publish_raw(
            (k, v, None)
            for k, v in distinct_bar_messages(last_chunk, start=first_chunk + second_chunk)
        )
        for thread in threads:
            thread.join(300)
        assert not any(thread.is_alive() for thread in threads), "a drain did not stop"
        second.close()
        assert not errors, errors
        rest = drain_prices(settings, first)  # what the two left when they stopped
        rows, keys, next_offsets = warehouse_state_of(first, settings.kafka.prices_topic)

    assert (rows, keys, next_offsets) == (total, total, total)
    assert sum(r.inserted for r in reports.values()) + rest.inserted == total
    shares = {name: loaded[name] - before.get(name, 0) for name in loaded}
    assert len(shares) == 2 and all(share > 0 for share in shares.values()), shares
    assert all(r.interrupted for r in reports.values())
    partitions = _partitions(settings)
    served = [{partitions[tp[1]].leader for tp in r.next_offsets} for r in reports.values()]
    assert len(set().union(*served)) > 1  # the drains read from more than one node


def _wait_until_two_members_hold_partitions(
    settings: Settings, still_running: Callable[[], None]
) -> None:
    """Until the group's rebalance after the second drain joined has given both partitions;
    ``still_running`` fails the test if a drain died meanwhile."""
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    deadline = time.monotonic() + 300  # a bound for a broken group, not a pace
    while True:
        members = group_members(admin, settings.kafka.consumer_group)
        if sum(not line.endswith("no partitions") for line in members) >= 2:
            return
        assert time.monotonic() < deadline, members
        still_running()
        time.sleep(0.2)


def test_two_drain_processes_on_snowflake_race_the_fence_and_load_every_bar_once(
    settings: Settings,
    snowflake_server: SnowflakeServer,
    snowflake_env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The production shape: two `stockpipe drain --follow` processes (two machines) in one
    group, loading into Snowflake over HTTP with the real connector (the Snowflake tier's
    server) from the three-node cluster; and the compare-and-set fence raced as a rebalance
    in the middle of a batch races it. The first drain stops (SIGSTOP) inside its second
    batch's transaction, its offsets claimed and their lock held; the group hands the
    partition to the second, which reads the same records and waits for that lock. Thawed,
    the first commits; the second is then fenced: it skips what the first loaded and goes on
    from the first's offset (the first leaves). Each loads part, together every bar once.

    One partition: with more, the second's batch could hold other partitions than the
    first's frozen one, and the race would depend on timing.
    """
    monkeypatch.setenv("STOCKPIPE_KAFKA__PRICES_TOPIC", f"{settings.kafka.prices_topic}_one")
    monkeypatch.setenv("STOCKPIPE_KAFKA__PRICES_PARTITIONS", "1")
    settings = load_settings()  # the cluster's topics and the Snowflake server's database
    ensure_topics(settings.kafka)
    set_up_warehouse(settings)
    total = 12_000
    QuoteProducer(settings.kafka).publish_raw((k, v, None) for k, v in distinct_bar_messages(total))
    env = {
        **os.environ,
        "COLUMNS": "200",
        "STOCKPIPE_KAFKA__CONSUMER_SESSION_TIMEOUT_SECONDS": "6",  # a stopped drain leaves soon
        "STOCKPIPE_DRAIN__ASSIGNMENT_WAIT_SECONDS": "300",  # a bound, not a pace
    }
    command = [sys.executable, "-m", "stockpipe.cli", "drain", "--follow", "--max-records", "500"]
    drains: list[subprocess.Popen] = []
    outputs: list[list[str]] = []

    def start(**extra: str) -> subprocess.Popen:
        drain = subprocess.Popen(
            command, env=env | extra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        drains.append(drain)
        outputs.append(lines := [])
        threading.Thread(target=lambda: lines.extend(drain.stdout), daemon=True).start()
        return drain

    def wait_for(what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 300  # a bound for a broken drain, not a pace
        while not condition():
            assert time.monotonic() < deadline, f"{what}: {outputs}"
            time.sleep(0.05)

    def counted(index: int) -> tuple[int, int]:
        """The drain's committed batches and new bars, from its last batch line (printed
        once the batch is committed and counted)."""
        lines = [line for line in list(outputs[index]) if line.lstrip().startswith("batch ")]
        found = re.search(r"batch (\d+): .*?([\d,]+) new bars", lines[-1]) if lines else None
        return (int(found[1]), int(found[2].replace(",", ""))) if found else (0, 0)

    def lock_waits() -> int:
        waits = snowflake_server.lock_waits(snowflake_env)
        return sum(wait["waiting_for_lock"] == "KAFKA_OFFSETS" for wait in waits)

    try:
        first = start(STOCKPIPE_DRAIN__PAUSE_AT="offsets_claimed@2")
        wait_for(
            "the first drain stopped in a transaction", lambda: process_state(first.pid) == "T"
        )
        waits_before = lock_waits()
        second = start()
        wait_for("the second drain waiting for the lock", lambda: lock_waits() > waits_before)
        first.send_signal(signal.SIGCONT)
        wait_for("the first drain's second batch", lambda: counted(0)[0] == 2)
        first.terminate()  # it leaves the group; the second takes the partition for good
        assert first.wait(120) == 143, outputs[0]
        wait_for("every bar counted", lambda: counted(0)[1] + counted(1)[1] == total)
        second.terminate()
        assert second.wait(120) == 143, outputs[1]
    finally:
        for drain in drains:
            drain.kill()
    summaries = [next(line for line in lines if line.startswith("drained ")) for lines in outputs]
    inserted = [int(re.search(r"(\d+) new bars", line).group(1)) for line in summaries]
    assert sum(inserted) == total and all(n > 0 for n in inserted), summaries
    assert "skipped partitions loaded by another drain" in summaries[1], summaries  # fenced
    with Warehouse.connect(settings, "read") as warehouse:
        rows, keys, next_offsets = warehouse_state_of(warehouse, settings.kafka.prices_topic)
    assert (rows, keys, next_offsets) == (total, total, total)
