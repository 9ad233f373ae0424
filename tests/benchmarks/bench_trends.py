"""Benchmark: trend marts over a year of minute bars in the embedded warehouse.

    .venv/bin/python -m tests.benchmarks.bench_trends [--symbols 50] [--sessions 252]

Loads symbols x sessions x 390 simulated bars (50 x 252: about 4.9M rows) into
RAW.STOCK_PRICES, then prints: a full refresh of the daily marts plus reading every daily
trend; and an intraday incremental refresh after one more minute of bars arrives, plus
the same reads. Targets on 2 cores: full <= 10 s, incremental <= 1 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta

import pandas as pd

from stockpipe import market_calendar as mc
from stockpipe.sources.simulated import SimulatedMarket
from tests.support import raw_rows_from_bars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=252)
    args = parser.parse_args()
    os.environ["STOCKPIPE_HOME"] = tempfile.mkdtemp(prefix="stockpipe-bench-trends-")

    from stockpipe.drain.loader import load_batch
    from stockpipe.settings import load_settings
    from stockpipe.trends import latest_quotes, refresh_daily_bars, top_movers
    from stockpipe.warehouse import Warehouse
    from stockpipe.warehouse.setup import setup_warehouse

    symbols = [f"SYM{i:02d}" for i in range(args.symbols)]
    sessions = mc.sessions_between("2024-01-02", "2025-12-31")[: args.sessions + 1]
    history, today = sessions[:-1], sessions[-1]
    market = SimulatedMarket(seed=1)
    started = time.perf_counter()
    rows = 0
    with Warehouse.connect(load_settings(), "setup") as warehouse:
        setup_warehouse(warehouse, load_settings())
        offset = 0
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

        def read_everything() -> int:
            trends = warehouse.query(
                "select count(*), count(rsi_14), count(sma_50), "
                "count(volatility_30) from MARTS.DAILY_TRENDS"
            )
            latest_quotes(warehouse)
            top_movers(warehouse)
            return int(trends[0][0])

        t = time.perf_counter()
        report = refresh_daily_bars(warehouse, full=True)
        refreshed = time.perf_counter() - t
        daily = read_everything()
        full = time.perf_counter() - t
        print(
            f"full refresh {refreshed:.2f}s + reading every trend view {full - refreshed:.2f}s "
            f"= {full:.2f}s ({report.rows:,} daily bars; {daily:,} trend rows) "
            "[target <= 10 s]"
        )

        # Intraday: the first minute of a new session arrives for every symbol.
        first_minute = pd.concat([market.session_bars(s, today).iloc[:1] for s in symbols])
        batch = raw_rows_from_bars(first_minute, datetime.now(UTC), first_offset=offset)
        load_batch(warehouse, batch, {("prices", 0): offset + len(batch)}, None)
        t = time.perf_counter()
        report = refresh_daily_bars(warehouse)
        refreshed = time.perf_counter() - t
        read_everything()
        incremental = time.perf_counter() - t
        print(
            f"incremental refresh {refreshed:.2f}s ({report.summary()}) + reads "
            f"{incremental - refreshed:.2f}s = {incremental:.2f}s [target <= 1 s]"
        )


if __name__ == "__main__":
    main()
