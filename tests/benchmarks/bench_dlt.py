"""Benchmark: the drain against dlt's Kafka source into DuckDB, whole processes.

    .venv/bin/python -m tests.benchmarks.bench_dlt [--messages 200000]

Produces a backlog of distinct bars to a real local broker, then times, each as a process of
its own from start to exit (imports included, as a user runs them):
  * `stockpipe drain` into the embedded warehouse (set up beforehand, as on any deployment);
  * dlt's verified Kafka source (`dlt init kafka duckdb`, vendored in
    tests/benchmarks/dlt_kafka) loading the same messages, parsed, into a DuckDB file with
    `write_disposition="merge"` on the bar's key (what makes a rerun not duplicate: the
    nearest to the drain's exactly-once load).
Prints both, their peak resident memory and the ratio. dlt is no dependency of stockpipe: it
runs in a virtualenv of its own, made with uv on first use (PyPI needed once) under
~/.cache/stockpipe/bench-dlt-<version>.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import confluent_kafka

from stockpipe.warehouse import Portable, Warehouse
from tests.benchmarks import run_python_measured, scratch_dir
from tests.benchmarks.bench_drain import backlog

# The newest dlt on PyPI when this was written; its DuckDB is its own, not the project's.
DLT_VERSION = "1.31.0"

STOCKPIPE_DRAIN = """
import runpy
runpy.run_module("stockpipe.cli", run_name="__main__")
"""

# dlt's documented use of the source, with a message processor that parses the bar (the
# default one loads the raw value as a string column, which checks and merges nothing).
DLT_PIPELINE = """
import json, sys
import dlt
from confluent_kafka import Consumer
from dlt_kafka import kafka_consumer

bootstrap, topic, workdir = sys.argv[1:4]

def bar(message):
    return json.loads(message.value())

consumer = Consumer({
    "bootstrap.servers": bootstrap, "group.id": "bench-dlt", "auto.offset.reset": "earliest"
})
messages = kafka_consumer(topic, credentials=consumer, msg_processor=bar, batch_size=3000)
messages.apply_hints(
    table_name="stock_prices", write_disposition="merge", primary_key=["symbol", "ts", "interval"]
)
pipeline = dlt.pipeline(
    pipeline_name="bench_dlt", destination=dlt.destinations.duckdb(f"{workdir}/dlt.duckdb"),
    dataset_name="raw", pipelines_dir=f"{workdir}/pipelines",
)
pipeline.run(messages)
with pipeline.sql_client() as client:
    print(client.execute_sql("select count(*) from stock_prices")[0][0])
"""


def dlt_python() -> Path:
    """The Python of dlt's virtualenv, made on first use."""
    venv = Path.home() / ".cache" / "stockpipe" / f"bench-dlt-{DLT_VERSION}"
    python = venv / "bin" / "python"
    if python.exists():
        return python
    uv = Path(sys.executable).parent / "uv"
    print(f"making dlt's virtualenv in {venv} (once) ...", flush=True)
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, venv], check=True)
    requirements = [
        f"dlt[duckdb]=={DLT_VERSION}",
        f"confluent-kafka=={confluent_kafka.__version__}",
    ]
    done = subprocess.run(
        [uv, "pip", "install", "-q", "--python", python, *requirements], check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"could not install {requirements} into {venv}: PyPI is needed once")
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    python = dlt_python()
    home = scratch_dir("stockpipe-bench-dlt-")
    with backlog(home, args.messages) as (broker, settings):
        topic = settings.kafka.prices_topic
        drain, drain_seconds, drain_peak = run_python_measured(
            STOCKPIPE_DRAIN, "drain", capture_output=True, text=True, check=False
        )
        if drain.returncode != 0:
            raise SystemExit(f"stockpipe drain failed:\n{drain.stderr[-3000:]}")
        with Warehouse.connect(settings, "read") as warehouse:
            loaded = warehouse.query(Portable("select count(*) from RAW.STOCK_PRICES"))[0][0]
        assert loaded == args.messages, (loaded, drain.stdout[-2000:])
        print(
            f"stockpipe drain: {drain_seconds:.1f} s ({args.messages / drain_seconds:,.0f} "
            f"msg/s), peak RSS {drain_peak:.0f} MB"
        )

        work = home / "dlt"
        work.mkdir()
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).parent),
            "RUNTIME__LOG_LEVEL": "WARNING",
        }
        dlt, dlt_seconds, dlt_peak = run_python_measured(
            DLT_PIPELINE,
            broker.bootstrap_servers,
            topic,
            str(work),
            python=str(python),
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if dlt.returncode != 0:
            raise SystemExit(f"the dlt pipeline failed:\n{dlt.stderr[-3000:]}")
        dlt_rows = int(dlt.stdout.strip().splitlines()[-1])
        assert dlt_rows == args.messages, (dlt_rows, dlt.stdout[-2000:])
        print(
            f"dlt {DLT_VERSION}, Kafka source -> DuckDB (merge): {dlt_seconds:.1f} s "
            f"({args.messages / dlt_seconds:,.0f} msg/s), peak RSS {dlt_peak:.0f} MB"
        )
        print(f"the drain is {dlt_seconds / drain_seconds:.1f}x as fast, whole processes")


if __name__ == "__main__":
    main()
