"""Benchmark: one drain vs two drains in one consumer group, on a three-node KRaft cluster.

    .venv/bin/python -m tests.benchmarks.bench_cluster [--messages 200000] [--partitions 6]

Starts three LocalBrokers on loopback as one cluster (prices topic with replication factor 3,
min.insync.replicas 2), publishes the backlog once (acks=all), then drains it into a fresh
embedded warehouse twice, each time with a new consumer group: first with one drain, then
with two drains that share the partitions (two threads, each with its own session on the
warehouse file: the embedded warehouse is one DuckDB file, which one process owns). Prints
messages/s of each, and the same backlog drained from a single broker as the baseline.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

from stockpipe.drain import drain_prices
from stockpipe.local_stack.broker import LocalBroker
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import Settings, load_settings
from stockpipe.streaming.producer import QuoteProducer
from stockpipe.streaming.topics import ensure_topics
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.benchmarks import scratch_dir
from tests.local_cluster import LocalCluster
from tests.support import distinct_bar_messages, warehouse_state_of

# Small enough batches that a drain joining the group gets its partitions within a batch.
BATCH = 2_000


def settings_for(bootstrap: str, home: Path, group: str, replicas: int, partitions: int):
    os.environ |= {
        "STOCKPIPE_HOME": str(home),
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "STOCKPIPE_KAFKA__CONSUMER_GROUP": group,
        "STOCKPIPE_KAFKA__PRICES_PARTITIONS": str(partitions),
        "STOCKPIPE_KAFKA__REPLICATION_FACTOR": str(replicas),
        "STOCKPIPE_KAFKA__MIN_INSYNC_REPLICAS": str(min(2, replicas)),
        "STOCKPIPE_DRAIN__MAX_WAIT_SECONDS": "2",
    }
    return load_settings()


def drain_with(settings: Settings, drains: int, total: int) -> tuple[float, list[int]]:
    """Drain the whole backlog with ``drains`` members of one group; (seconds, per drain)."""
    with Warehouse.connect(settings, "setup") as first:
        setup_warehouse(first, settings)
        sessions = [first] + [first.sibling() for _ in range(drains - 1)]
        inserted = [0] * drains
        first_batch = threading.Event()

        def run(i: int) -> None:
            report = drain_prices(
                settings, sessions[i], max_records=BATCH, on_batch=lambda _: first_batch.set()
            )
            inserted[i] = report.inserted

        start = time.perf_counter()
        threads = [threading.Thread(target=run, args=(i,)) for i in range(drains)]
        for i, thread in enumerate(threads):
            thread.start()
            if i == 0:
                first_batch.wait()  # the others join a group that is already draining
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
        for session in sessions[1:]:
            session.close()
        rows, keys, _ = warehouse_state_of(first, settings.kafka.prices_topic)
    assert (rows, keys) == (total, total), (rows, keys, total)
    return seconds, inserted


def publish(settings: Settings, total: int) -> float:
    ensure_topics(settings.kafka)
    start = time.perf_counter()
    messages = ((k, v, None) for k, v in distinct_bar_messages(total))
    QuoteProducer(settings.kafka).publish_raw(messages)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    total = args.messages
    work = scratch_dir("bench-cluster-")
    print(f"{total:,} bars, {args.partitions} partitions; {os.cpu_count()} cores")

    single = LocalBroker(work / "single", port=free_port(), controller_port=free_port())
    single.start(progress=False)
    try:
        settings = settings_for(single.bootstrap_servers, work / "s1", "g1", 1, args.partitions)
        produced = publish(settings, total)
        seconds, _ = drain_with(settings, 1, total)
        print(f"single broker, RF 1:   publish {total / produced:9,.0f} msg/s")
        print(f"  one drain:                   {total / seconds:9,.0f} msg/s ({seconds:.1f} s)")
    finally:
        single.stop()

    cluster = LocalCluster(
        work / "cluster",
        ports=[free_port() for _ in range(3)],
        controller_ports=[free_port() for _ in range(3)],
        heap="256m",
    )
    started = time.perf_counter()
    cluster.start(progress=False)
    print(f"three-node cluster started in {time.perf_counter() - started:.1f} s")
    try:
        bootstrap = cluster.bootstrap_servers
        settings = settings_for(bootstrap, work / "c1", "g1", 3, args.partitions)
        produced = publish(settings, total)
        print(f"cluster, RF 3, min ISR 2: publish {total / produced:9,.0f} msg/s (acks=all)")
        seconds, _ = drain_with(settings, 1, total)
        print(f"  one drain:                   {total / seconds:9,.0f} msg/s ({seconds:.1f} s)")
        settings = settings_for(bootstrap, work / "c2", "g2", 3, args.partitions)
        seconds, shares = drain_with(settings, 2, total)
        print(
            f"  two drains, one group:       {total / seconds:9,.0f} msg/s ({seconds:.1f} s; "
            f"shares {shares[0]:,} / {shares[1]:,})"
        )
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
