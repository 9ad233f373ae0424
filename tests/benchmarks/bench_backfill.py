"""Benchmark: backfill of daily history end to end, publish -> drain -> marts.

    .venv/bin/python -m tests.benchmarks.bench_backfill [--symbols 500] [--years 20]

Writes a replay file of symbols x years of daily bars (one row per symbol and session, as a
user's export), then runs what a user runs, timing each step in this process:
``stockpipe backfill --interval 1d`` (fetch from the replay file, contract check, publish
what is new), ``stockpipe drain``, ``stockpipe trends`` (the incremental build rebuilds every
backfilled symbol), and a second backfill (publishes nothing). Target on 2 cores: the
three steps <= 60 s for 500 x 20 years. The embedded warehouse's memory limit is its
default ('auto': a tenth of the machine's memory, at most 2 GB). Starts its own broker on
free ports in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from stockpipe import market_calendar as mc
from tests.benchmarks import scratch_dir


def daily_file(path: Path, symbols: list[str], first: date, last: date) -> int:
    """A Parquet replay file of daily bars (a random walk per symbol); returns its rows."""
    days = mc.session_opens(first, last).index
    rng = np.random.default_rng(7)
    n, k = len(days), len(symbols)
    closes = 50 * np.exp(np.cumsum(rng.normal(0.0003, 0.018, (k, n)), axis=1))
    opens = closes * np.exp(rng.normal(0, 0.004, (k, n)))
    highs = np.maximum(opens, closes) * np.exp(np.abs(rng.normal(0, 0.006, (k, n))))
    lows = np.minimum(opens, closes) * np.exp(-np.abs(rng.normal(0, 0.006, (k, n))))
    frame = pd.DataFrame(
        {
            "symbol": np.repeat(symbols, n),
            "timestamp": np.tile(pd.to_datetime(days), k),
            "open": opens.ravel().round(4),
            "high": highs.ravel().round(4),
            "low": lows.ravel().round(4),
            "close": closes.ravel().round(4),
            "volume": rng.integers(100_000, 50_000_000, k * n),
        }
    )
    frame["high"] = frame[["open", "high", "close"]].max(axis=1)
    frame["low"] = frame[["open", "low", "close"]].min(axis=1)
    frame.to_parquet(path, index=False)
    return len(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--years", type=int, default=20)
    args = parser.parse_args()
    home = scratch_dir("stockpipe-bench-backfill-")
    os.environ["STOCKPIPE_HOME"] = str(home)

    from stockpipe.local_stack.broker import THROUGHPUT_JVM_OPTIONS, LocalBroker
    from stockpipe.local_stack.processes import free_port

    port, controller = free_port(), free_port()
    os.environ["STOCKPIPE_LOCAL_KAFKA__PORT"] = str(port)
    os.environ["STOCKPIPE_SOURCE__KIND"] = "replay"
    os.environ["STOCKPIPE_SOURCE__REPLAY_PATH"] = str(home / "daily.parquet")
    symbols = [f"S{i:03d}" for i in range(args.symbols)]
    last = date(2025, 11, 28)
    first = date(last.year - args.years, last.month, last.day)
    started = time.perf_counter()
    rows = daily_file(home / "daily.parquet", symbols, first, last)
    print(
        f"replay file: {rows:,} daily bars ({args.symbols} symbols x {args.years} years) "
        f"written in {time.perf_counter() - started:.1f}s"
    )

    broker = LocalBroker(
        home / "kafka",
        port=port,
        controller_port=controller,
        heap="1g",
        jvm_options=THROUGHPUT_JVM_OPTIONS,
    )
    broker.start(progress=False)
    try:
        from stockpipe.backfill import backfill
        from stockpipe.drain import drain_prices
        from stockpipe.settings import load_settings
        from stockpipe.streaming.topics import ensure_topics
        from stockpipe.trends import build_marts
        from stockpipe.warehouse import Warehouse
        from stockpipe.warehouse.setup import setup_warehouse

        settings = load_settings()
        ensure_topics(settings.kafka)
        with Warehouse.connect(settings, "setup") as warehouse:
            setup_warehouse(warehouse, settings)

        # An installation parses its dbt project once, on its first build; later builds
        # (other processes too) reuse the parse. Done here on the empty warehouse, timed apart.
        t = time.perf_counter()
        with Warehouse.connect(settings, "transform") as warehouse:
            build_marts(warehouse, settings)
        print(
            f"first trend build of the installation (parses the dbt project): "
            f"{time.perf_counter() - t:.1f}s, not counted below"
        )

        timings = {}
        t = time.perf_counter()
        report = backfill(settings, first, last, "1d", symbols)
        timings["backfill (fetch, check, publish)"] = time.perf_counter() - t
        assert report.published == rows, report.summary()
        t = time.perf_counter()
        with Warehouse.connect(settings, "load") as warehouse:
            drained = drain_prices(settings, warehouse)
        timings["drain"] = time.perf_counter() - t
        assert drained.inserted == rows, drained
        t = time.perf_counter()
        with Warehouse.connect(settings, "transform") as warehouse:
            built = build_marts(warehouse, settings)
            trends = warehouse.query("select count(*) from MARTS.DAILY_TRENDS")[0][0]
        timings["trends (incremental build)"] = time.perf_counter() - t
        assert built.ok and trends == rows
        total = sum(timings.values())
        for step, seconds in timings.items():
            print(f"  {step}: {seconds:.1f}s ({rows / seconds:,.0f} bars/s)")
        print(f"end to end: {total:.1f}s for {rows:,} bars [target <= 60 s]")

        t = time.perf_counter()
        again = backfill(settings, first, last, "1d", symbols)
        print(
            f"second backfill: published {again.published}, already published "
            f"{again.unchanged:,} in {time.perf_counter() - t:.1f}s"
        )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
