"""Benchmark: drain a backlog from the real broker into the embedded warehouse.

    .venv/bin/python -m tests.benchmarks.bench_drain [--messages 1000000] [--sample 2000]

Prints, in one run:
  * stockpipe's drain: messages/s and peak RSS, measured in a process of its own that only
    drains (as `stockpipe drain` and the drain flow run), so the producer's memory is not
    counted; the broker's group coordinator is warmed first, as on any broker in service;
  * (a) the seeds' pattern: one INSERT per message with string-formatted SQL, timed on a
    sample and extrapolated;
  * (b) the ceiling: confluent-kafka consuming the same backlog with no processing.
Starts its own broker on free ports in a temporary directory and removes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, Producer

from stockpipe.local_stack.broker import THROUGHPUT_JVM_OPTIONS, LocalBroker
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import Settings, load_settings
from stockpipe.streaming.producer import PRODUCER_DEFAULTS
from stockpipe.streaming.topics import ensure_topics
from stockpipe.warehouse import Portable, Warehouse
from stockpipe.warehouse.setup import setup_warehouse
from tests.support import distinct_bar_messages, memory_mb


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM).

    Not getrusage's ru_maxrss: Linux carries that across exec, so a child started from a
    large parent reports the parent's size until it grows past it.
    """
    return memory_mb()[1]


def memory_line(warehouse: Warehouse) -> str:
    """Resident memory now and at peak, and what DuckDB's buffer manager holds (--trace)."""
    duck = warehouse.duck.execute(  # DuckDB's own view: the embedded warehouse only
        "select tag, memory_usage_bytes // 1048576 from duckdb_memory() "
        "where memory_usage_bytes >= 1048576"
    ).fetchall()
    rss, peak = memory_mb()
    return f"RSS {rss:.0f} MB, peak {peak:.0f} MB, DuckDB MB {dict(duck)}"


def produce_backlog(bootstrap: str, topic: str, count: int, symbols: int = 500) -> float:
    """Publish ``count`` distinct bars of ``symbols`` symbols as fast as possible; return
    seconds."""
    producer = Producer({"bootstrap.servers": bootstrap} | PRODUCER_DEFAULTS | {"linger.ms": 50})
    started = time.perf_counter()
    for i, (key, value) in enumerate(distinct_bar_messages(count, symbols)):
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 20_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return time.perf_counter() - started


def raw_consume_rate(bootstrap: str, topic: str, count: int) -> float:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{time.time()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52_428_800,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    started = None
    while seen < count:
        messages = consumer.consume(10_000, timeout=1.0)
        if messages and started is None:
            started = time.perf_counter()
        seen += sum(1 for m in messages if m.error() is None)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return count / elapsed


def warm_group_coordinator(bootstrap: str, topic: str) -> None:
    """Join a throwaway group once: a brand-new broker creates __consumer_offsets (seconds)
    on the first join, which a broker in service did long ago."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "warm-up", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    while consumer.poll(1.0) is None:
        pass
    consumer.close()


@contextmanager
def backlog(home: Path, messages: int) -> Iterator[tuple[LocalBroker, Settings]]:
    """A broker of its own under ``home`` holding ``messages`` distinct bars in the prices
    topic, the warehouse set up and the group coordinator warm: what a drain meets on a
    deployment with a backlog. Points this process's settings at them; yields (the broker,
    the settings)."""
    broker = LocalBroker(
        home / "kafka",
        port=free_port(),
        controller_port=free_port(),
        heap="1g",
        jvm_options=THROUGHPUT_JVM_OPTIONS,
    )
    broker.start(progress=False)
    try:
        os.environ |= {
            "STOCKPIPE_HOME": str(home / "state"),
            "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        }
        settings = load_settings()
        ensure_topics(settings.kafka)
        topic = settings.kafka.prices_topic
        print(f"producing {messages:,} messages ...", flush=True)
        seconds = produce_backlog(broker.bootstrap_servers, topic, messages)
        print(f"  produced in {seconds:.1f}s ({messages / seconds:,.0f} msg/s)")
        # The warehouse exists before the drain, as on any deployment: its first set-up
        # (sql/ through fakesnow, which loads snowflake-connector and pandas) is not the
        # drain's work, and later drains only check that nothing changed.
        with Warehouse.connect(settings, "setup") as warehouse:
            setup_warehouse(warehouse, settings)
        warm_group_coordinator(broker.bootstrap_servers, topic)
        yield broker, settings
    finally:
        broker.stop()


def drain_in_child(trace: bool) -> None:
    """The child: drain the backlog the parent produced, as ``stockpipe drain`` does (same
    allocator setting, same SQL check before the drain); print one JSON line of figures."""
    from stockpipe.drain import drain_prices
    from stockpipe.runtime import keep_pandas_out_of_arrow, limit_malloc_arenas

    limit_malloc_arenas()
    keep_pandas_out_of_arrow()
    settings = load_settings()
    before = peak_rss_mb()
    with Warehouse.connect(settings, "setup") as warehouse:
        setup_warehouse(warehouse, settings)
        started = time.perf_counter()
        cpu_before = time.process_time()
        report = drain_prices(
            settings,
            warehouse,
            on_batch=(
                (lambda r: print(f"  batch {r.batches}: {memory_line(warehouse)}", file=sys.stderr))
                if trace
                else None
            ),
        )
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        loaded = warehouse.query(Portable("select count(*) from RAW.STOCK_PRICES"))[0][0]
    print(
        json.dumps(
            {
                "messages": report.messages,
                "loaded": loaded,
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "batches": report.batches,
                "peak_mb": peak_rss_mb(),
                "imports_mb": before,
            }
        )
    )


def per_row_insert_rate(home: Path, bootstrap: str, topic: str, sample: int) -> float:
    """The seeds' pattern: consume, then one f-string INSERT per message."""
    from fakesnow.instance import FakeSnow

    home.mkdir(parents=True, exist_ok=True)
    conn = FakeSnow(db_path=home).connect(database="SEEDS", schema="PUBLIC")
    cur = conn.cursor()
    cur.execute(
        "create table if not exists stock_prices (symbol varchar, ts timestamp, open float, "
        "high float, low float, close float, volume bigint)"
    )
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"seed-{time.time()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    done = 0
    started = None
    while done < sample:
        for message in consumer.consume(500, timeout=1.0):
            if message.error() or done >= sample:
                continue
            if started is None:
                started = time.perf_counter()
            q = json.loads(message.value())
            cur.execute(
                f"INSERT INTO stock_prices VALUES ('{q['symbol']}', '{q['ts']}', {q['open']}, "
                f"{q['high']}, {q['low']}, {q['close']}, {q['volume']})"
            )
            done += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    conn.close()
    return sample / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=2_000, help="rows for the per-row pattern")
    parser.add_argument(
        "--max-records",
        type=int,
        default=None,
        help="records per batch (default: STOCKPIPE_DRAIN__MAX_RECORDS's)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="print the drain's memory after every batch"
    )
    parser.add_argument("--drain-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drain_child:
        drain_in_child(args.trace)
        return

    if args.max_records:
        os.environ["STOCKPIPE_DRAIN__MAX_RECORDS"] = str(args.max_records)
    with tempfile.TemporaryDirectory(prefix="stockpipe-bench-") as tmp:
        home = Path(tmp)
        with backlog(home, args.messages) as (broker, settings):
            topic = settings.kafka.prices_topic
            child = subprocess.run(
                [sys.executable, "-m", "tests.benchmarks.bench_drain", "--drain-child"]
                + (["--trace"] if args.trace else []),
                capture_output=True,
                text=True,
                check=False,
                env=os.environ.copy(),
            )
            if args.trace:
                print("\n".join(line for line in child.stderr.splitlines() if "batch" in line))
            if child.returncode != 0:
                raise SystemExit(f"the drain failed:\n{child.stderr[-3000:]}")
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            assert figures["messages"] == figures["loaded"] == args.messages, figures
            drain_rate = args.messages / figures["seconds"]
            print(
                f"stockpipe drain: {args.messages:,} messages in {figures['seconds']:.1f}s = "
                f"{drain_rate:,.0f} msg/s ({figures['cpu_seconds']:.1f} s of CPU); "
                f"peak RSS {figures['peak_mb']:.0f} MB "
                f"(of which {figures['imports_mb']:.0f} MB before the warehouse opened: "
                f"Python and the libraries); {figures['batches']} batches of up to "
                f"{settings.drain.max_records:,}"
            )

            raw = raw_consume_rate(broker.bootstrap_servers, topic, args.messages)
            print(f"(b) raw confluent-kafka consume, no processing: {raw:,.0f} msg/s")
            seed = per_row_insert_rate(home / "seeds", broker.bootstrap_servers, topic, args.sample)
            print(
                f"(a) per-row f-string INSERT (seeds' pattern), {args.sample:,} sampled: "
                f"{seed:,.0f} msg/s -> {args.messages / seed / 60:,.1f} min for the backlog"
            )
            print(
                f"drain vs raw consume: {drain_rate / raw:.0%}; "
                f"drain vs per-row INSERT: {drain_rate / seed:,.0f}x"
            )


if __name__ == "__main__":
    main()
