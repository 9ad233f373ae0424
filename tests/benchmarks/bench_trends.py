"""Benchmark: the trend build (dbt) over a year of minute bars in the embedded warehouse.

    .venv/bin/python -m tests.benchmarks.bench_trends [--symbols 50] [--sessions 252] [--flow]

Loads symbols x sessions x 390 simulated bars (50 x 252: about 4.9M rows) into
RAW.STOCK_PRICES as the drain does, then prints, each build run as ``stockpipe trends`` in a
process of its own (so dbt's start and imports count) with that process's peak RSS:
a full build; reading each mart; an intraday incremental build after one more minute of
bars arrives for every symbol. Targets on 2 cores: full <= 6 s, incremental <= 3 s, each
read <= 50 ms, peak RSS <= 350 MB. A local broker runs meanwhile, as in any deployment:
the build sends its alerts (without one, each build would wait for Kafka and say so).

``--flow`` adds the full build as a Prefect flow run does it, in one process on an ephemeral
API: with a task per dbt model and test (``dbt_node_tasks``), with dbt's own runner (the
trends flow's default), and outside a flow run as the baseline, each with its wall and CPU
time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from stockpipe import market_calendar as mc
from stockpipe.local_stack.broker import LocalBroker
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import load_settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.streaming.topics import ensure_topics
from tests.benchmarks import run_python_measured, scratch_dir
from tests.support import raw_rows_from_bars

# What a dashboard or a user reads of each mart.
READS = {
    "MARTS.MINUTE_BARS": "select * from MARTS.MINUTE_BARS where symbol = 'SYM00' "
    "and session_date = (select max(session_date) from MARTS.DAILY_BARS)",
    "MARTS.DAILY_BARS": "select * from MARTS.DAILY_BARS where symbol = 'SYM00'",
    "MARTS.DAILY_RSI": "select * from MARTS.DAILY_RSI where symbol = 'SYM00'",
    "MARTS.DAILY_TRENDS": "select * from MARTS.DAILY_TRENDS where symbol = 'SYM00'",
    "MARTS.LATEST_QUOTE": "select * from MARTS.LATEST_QUOTE",
    "MARTS.TOP_MOVERS": "select * from MARTS.TOP_MOVERS",
    "MARTS.TOP_DAILY_CLOSES": "select * from MARTS.TOP_DAILY_CLOSES",
}


_STOCKPIPE_TRENDS = (
    "import sys; from stockpipe.cli import main; sys.exit(main(['trends', *sys.argv[1:]]))"
)


def run_trends(*flags: str) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of ``stockpipe trends [flags]`` in a process of its own."""
    _, seconds, peak = run_python_measured(
        _STOCKPIPE_TRENDS, *flags, check=True, stdout=subprocess.DEVNULL
    )
    return seconds, peak


# The full build three ways in one process (dbt imported and the project parsed by a first,
# unmeasured build): outside a flow run, then in flow runs with and without node tasks.
_IN_A_FLOW = """
import time
from prefect import flow
from stockpipe.settings import load_settings
from stockpipe.trends import build_marts
from stockpipe.warehouse import Warehouse

def build(node_tasks=False):
    settings = load_settings()
    with Warehouse.connect(settings, "transform") as warehouse:
        wall, cpu = time.perf_counter(), time.process_time()
        report = build_marts(warehouse, settings, full=True, node_tasks=node_tasks)
        return time.perf_counter() - wall, time.process_time() - cpu, len(report.nodes)

@flow
def in_a_flow(node_tasks: bool):
    return build(node_tasks)

build()
for label, figures in [
    ("outside a flow run (baseline)", build()),
    ("in a flow run, a task per dbt node", in_a_flow(True)),
    ("in a flow run, dbt's own runner", in_a_flow(False)),
]:
    print(f"  full build {label}: {figures[0]:.2f}s, CPU {figures[1]:.2f}s ({figures[2]} nodes)")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=252)
    parser.add_argument("--flow", action="store_true", help="also the build in flow runs")
    args = parser.parse_args()
    home = scratch_dir("stockpipe-bench-trends-")
    os.environ["STOCKPIPE_HOME"] = str(home)
    broker = LocalBroker(home / "kafka", port=free_port(), controller_port=free_port())
    broker.start(progress=False)
    os.environ["STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
    try:
        ensure_topics(load_settings().kafka)
        run_benchmark(args, home)
    finally:
        broker.stop()


def run_benchmark(args: argparse.Namespace, home: Path) -> None:
    from stockpipe.drain.loader import load_batch
    from stockpipe.warehouse import Warehouse
    from stockpipe.warehouse.setup import setup_warehouse

    symbols = [f"SYM{i:02d}" for i in range(args.symbols)]
    sessions = mc.sessions_between("2024-01-02", "2025-12-31")[: args.sessions + 1]
    history, today = sessions[:-1], sessions[-1]
    market = SimulatedMarket(seed=1)
    started = time.perf_counter()
    rows = 0
    offset = 0
    with Warehouse.connect(load_settings(), "setup") as warehouse:
        setup_warehouse(warehouse, load_settings())
        for session in history:  # each session loaded on its day, as the drain does
            bars = pd.concat([market.session_bars(s, session) for s in symbols])
            loaded_at = session.close + timedelta(minutes=5)
            batch = raw_rows_from_bars(bars, loaded_at, first_offset=offset, loaded_at=loaded_at)
            offset += len(batch)
            load_batch(warehouse, batch, {("prices", 0): offset}, None)
            rows += len(batch)
    print(
        f"loaded {rows:,} minute bars ({args.symbols} symbols x {len(history)} sessions) "
        f"in {time.perf_counter() - started:.1f}s"
    )

    seconds, peak = run_trends("--full")
    print(
        f"full build (stockpipe trends --full): {seconds:.2f}s, peak RSS {peak:.0f} MB "
        "[targets <= 6 s, <= 350 MB]"
    )

    with Warehouse.connect(load_settings(), "read") as warehouse:
        for mart, sql in READS.items():
            t = time.perf_counter()
            count = len(warehouse.query_frame(sql))
            print(
                f"  read {mart}: {(time.perf_counter() - t) * 1000:.0f} ms ({count:,} rows) "
                "[target <= 50 ms]"
            )

    # Intraday: the first minute of a new session arrives for every symbol.
    with Warehouse.connect(load_settings(), "load") as warehouse:
        first_minute = pd.concat([market.session_bars(s, today).iloc[:1] for s in symbols])
        batch = raw_rows_from_bars(first_minute, datetime.now(UTC), first_offset=offset)
        load_batch(warehouse, batch, {("prices", 0): offset + len(batch)}, None)
    seconds, peak = run_trends()
    print(
        f"incremental build after one minute for {args.symbols} symbols (stockpipe trends): "
        f"{seconds:.2f}s, peak RSS {peak:.0f} MB [target <= 3 s]"
    )
    seconds, _ = run_trends()
    print(f"incremental build with nothing new: {seconds:.2f}s")
    if args.flow:
        # Prefect's ephemeral API in a home of this run's own (not ~/.prefect's database).
        prefect = {
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        subprocess.run([sys.executable, "-c", _IN_A_FLOW], check=True, env=os.environ | prefect)


if __name__ == "__main__":
    main()
