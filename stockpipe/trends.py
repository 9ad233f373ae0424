"""The trend marts: refresh the materialised daily bars, read the views people look at."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import DEFAULT_SQL_DIR, strip_comment_lines

DAILY_BARS = "DAILY_BARS"
NEW_YORK = ZoneInfo("America/New_York")
# Rows are stamped loaded_at just before their commit; a drain that committed a little
# after another may carry a slightly older stamp. Looking back this far catches it.
LOOKBACK = timedelta(minutes=10)


@dataclass(frozen=True)
class RefreshReport:
    mode: str  # "full" | "incremental" | "up to date"
    symbols: int
    first_session: str | None
    last_session: str | None
    rows: int
    seconds: float

    def summary(self) -> str:
        if self.mode == "up to date":
            return f"daily marts up to date ({self.seconds:.2f}s)"
        return (
            f"{self.mode} refresh of daily marts: {self.rows} daily bars for {self.symbols} "
            f"symbols, sessions {self.first_session}..{self.last_session} ({self.seconds:.2f}s)"
        )


def _ny_day_bounds(first_ts: datetime, last_ts: datetime) -> tuple[datetime, datetime, str, str]:
    """UTC instants spanning the New York days of ``first_ts``..``last_ts`` (naive UTC)."""
    first_day = first_ts.replace(tzinfo=UTC).astimezone(NEW_YORK).date()
    last_day = last_ts.replace(tzinfo=UTC).astimezone(NEW_YORK).date()
    start = datetime.combine(first_day, datetime.min.time(), NEW_YORK).astimezone(UTC)
    end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), NEW_YORK)
    end = end.astimezone(UTC) - timedelta(microseconds=1)
    return start.replace(tzinfo=None), end.replace(tzinfo=None), str(first_day), str(last_day)


def refresh_daily_bars(warehouse: Warehouse, full: bool = False) -> RefreshReport:
    """Rebuild MARTS.DAILY_BARS for the sessions whose bars arrived since the last refresh.

    Args:
        full: rebuild every session (the first refresh is always full).
    """
    started = time.perf_counter()
    state = warehouse.query(
        "select watermark from MARTS.REFRESH_STATE where mart = %s", (DAILY_BARS,)
    )
    watermark = state[0][0] if state else None
    newest = warehouse.query("select max(loaded_at) from RAW.STOCK_PRICES")[0][0]
    if newest is None or (not full and watermark is not None and newest <= watermark):
        return RefreshReport("up to date", 0, None, None, 0, time.perf_counter() - started)
    mode = "full" if full or watermark is None else "incremental"
    if mode == "full":
        changed = warehouse.query(
            "select symbol, min(ts), max(ts) from RAW.STOCK_PRICES group by symbol"
        )
    else:
        changed = warehouse.query(
            "select symbol, min(ts), max(ts) from RAW.STOCK_PRICES where loaded_at > %s "
            "group by symbol",
            (watermark - LOOKBACK,),
        )
    # A NULL symbol (only in a damaged RAW) has no daily bar; validation reports it.
    changed = [row for row in changed if row[0] is not None]
    symbols = sorted(row[0] for row in changed)
    if not changed:
        return RefreshReport("up to date", 0, None, None, 0, time.perf_counter() - started)
    start, end, first_day, last_day = _ny_day_bounds(
        min(row[1] for row in changed), max(row[2] for row in changed)
    )
    marks = ", ".join(["%s"] * len(symbols))
    compute = strip_comment_lines((DEFAULT_SQL_DIR / "refresh" / "daily_bars.sql").read_text())
    compute = compute.replace("{{ symbols }}", marks)
    now = datetime.now(UTC).replace(tzinfo=None)
    with warehouse.transaction():
        if mode == "full":
            warehouse.execute("delete from MARTS.DAILY_BARS")
        else:
            warehouse.execute(
                f"delete from MARTS.DAILY_BARS where symbol in ({marks}) "
                "and session_date between %s and %s",
                (*symbols, first_day, last_day),
            )
        rows = warehouse.execute(compute, (start, end, *symbols, now)).rowcount or 0
        warehouse.execute("delete from MARTS.REFRESH_STATE where mart = %s", (DAILY_BARS,))
        warehouse.execute(
            "insert into MARTS.REFRESH_STATE (mart, watermark, refreshed_at) values (%s, %s, %s)",
            (DAILY_BARS, newest, now),
        )
    return RefreshReport(
        mode, len(symbols), first_day, last_day, rows, time.perf_counter() - started
    )


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


def top_movers(warehouse: Warehouse, limit: int = 10) -> pd.DataFrame:
    """The biggest moves of the latest session, largest first."""
    return warehouse.query_frame(
        "select move_rank, symbol, session_date, close, change_pct, direction "
        "from MARTS.TOP_MOVERS where move_rank <= %s order by move_rank",
        (limit,),
    )


def row_counts(warehouse: Warehouse) -> dict[str, int]:
    """Rows per table/view the pipeline fills, for summaries and tests."""
    counts = {}
    for name in ("RAW.STOCK_PRICES", "STAGING.STOCK_PRICES", "MARTS.DAILY_OHLCV"):
        counts[name] = int(warehouse.query(f"select count(*) from {name}")[0][0])
    return counts
