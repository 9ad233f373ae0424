"""Reading the trend marts: tables the build maintains, so no read scans RAW."""

from __future__ import annotations

import pandas as pd

from stockpipe.warehouse import Warehouse

LATEST_COLUMNS = (
    "symbol",
    "session_date",
    "bar_count",
    "last_close",
    "change_on_day_pct",
    "change_vs_open_pct",
    "ma5",
    "ma20",
    "session_vwap",
)


def latest_quotes(warehouse: Warehouse) -> pd.DataFrame:
    """One row per symbol: its latest bar, session figures and minute moving averages."""
    return warehouse.query_frame(
        f"select {', '.join(LATEST_COLUMNS)} from MARTS.LATEST_QUOTE order by symbol"
    )


def latest_trends(warehouse: Warehouse) -> pd.DataFrame:
    """One row per symbol: its latest session's daily indicators (SMA, RSI, volatility,
    52-week range)."""
    return warehouse.query_frame(
        "select symbol, session_date, close, change_pct, sma_20, sma_50, rsi_14, "
        "volatility_30, pct_from_52w_high from MARTS.DAILY_TRENDS "
        "qualify row_number() over (partition by symbol order by session_date desc) = 1 "
        "order by symbol"
    )


def top_movers(warehouse: Warehouse, limit: int = 10) -> pd.DataFrame:
    """The biggest moves of the latest session, largest first."""
    return warehouse.query_frame(
        "select move_rank, symbol, session_date, close, change_pct, direction "
        "from MARTS.TOP_MOVERS where move_rank <= %s order by move_rank",
        (limit,),
    )


def row_counts(warehouse: Warehouse) -> dict[str, int]:
    """Rows per table the pipeline fills, for summaries and tests."""
    counts = {}
    for name in ("RAW.STOCK_PRICES", "MARTS.MINUTE_BARS", "MARTS.DAILY_BARS"):
        counts[name] = int(warehouse.query(f"select count(*) from {name}")[0][0])
    return counts
