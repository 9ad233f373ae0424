"""Benchmark: validate one session of 500 symbols x 390 bars in the embedded warehouse.

    .venv/bin/python -m tests.benchmarks.bench_validation [--symbols 500]

Prints the time of one validation run (all suites) after loading the session; target
<= 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

import pandas as pd

from stockpipe import market_calendar as mc
from stockpipe.sources.simulated import SimulatedMarket
from tests.benchmarks import scratch_dir
from tests.support import raw_rows_from_bars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    args = parser.parse_args()
    symbols = [f"S{i:03d}" for i in range(args.symbols)]
    os.environ["STOCKPIPE_HOME"] = str(scratch_dir("stockpipe-bench-validation-"))
    os.environ["STOCKPIPE_SOURCE__WATCHLIST"] = ",".join(symbols)

    from stockpipe.drain.loader import load_batch
    from stockpipe.settings import load_settings
    from stockpipe.trends import build_marts
    from stockpipe.validation import validate_session
    from stockpipe.warehouse import Warehouse
    from stockpipe.warehouse.setup import setup_warehouse

    session = mc.session("2025-11-26")
    market = SimulatedMarket(seed=2)
    bars = pd.concat([market.session_bars(s, session) for s in symbols])
    settings = load_settings()
    with Warehouse.connect(settings, "setup") as warehouse:
        setup_warehouse(warehouse, settings)
        rows = raw_rows_from_bars(bars, datetime(2025, 11, 26, 21, 5, tzinfo=UTC))
        load_batch(warehouse, rows, {("prices", 0): len(rows)}, None)
        build_marts(warehouse, settings)
        started = time.perf_counter()
        report = validate_session(
            settings, warehouse, session.day, now=session.close + timedelta(hours=1)
        )
        elapsed = time.perf_counter() - started
    print(
        f"validated {len(rows):,} bars ({args.symbols} symbols x 390) in {elapsed:.1f}s "
        f"[target <= 30 s]: {report.summary()}"
    )


if __name__ == "__main__":
    main()
