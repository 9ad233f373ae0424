"""How the CLI prints: the consoles (plain lines never broken mid-phrase), and the tables of
the latest figures and daily trends, sized to the terminal."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd

# Plain lines are never broken mid-phrase in a pipe or a log (soft wrap); tables keep their width.
console = Console(soft_wrap=True)
# Below this many columns a table would cut its cells: print one record a line instead.
WIDE_TABLES = 120
err = Console(stderr=True, soft_wrap=True)


def latest_table(frame: pd.DataFrame) -> Table:
    """The summary table: one row per symbol from MARTS.LATEST_QUOTE."""
    sessions = sorted({str(d) for d in frame["session_date"]}) if len(frame) else []
    table = Table(title=f"Latest per symbol (session {', '.join(sessions) or '-'})")
    for column, justify in (
        ("symbol", "left"),
        ("bars", "right"),
        ("last close", "right"),
        ("day chg %", "right"),
        ("vs open %", "right"),
        ("MA5 (1m)", "right"),
        ("MA20 (1m)", "right"),
        ("VWAP", "right"),
    ):
        table.add_column(column, justify=justify)

    def fmt(value: float | None, digits: int = 2) -> str:
        return "-" if value is None or value != value else f"{value:,.{digits}f}"

    for row in frame.itertuples():
        table.add_row(
            row.symbol,
            str(row.bar_count),
            fmt(row.last_close),
            fmt(row.change_on_day_pct),
            fmt(row.change_vs_open_pct),
            fmt(row.ma5),
            fmt(row.ma20),
            fmt(row.session_vwap),
        )
    if not len(frame):
        table.caption = "no bars in the warehouse yet: 'stockpipe ingest', then 'stockpipe drain'"
    elif frame["change_on_day_pct"].isna().all():
        table.caption = (
            "day chg % needs the previous session's close: publish it with 'stockpipe ingest "
            "--session DATE' or 'stockpipe backfill --from DATE', drain, and build again"
        )
    return table


def trends_table(frame: pd.DataFrame, width: int = 80) -> Table:
    """Daily indicators per symbol from MARTS.DAILY_TRENDS' latest session.

    When every symbol's latest session is the same one it goes in the title; below
    :data:`WIDE_TABLES` columns (``width``: a pipe, a log) each column is as narrow as its
    cells and the headers wrap, so nothing is cut.
    """
    sessions = sorted({str(d) for d in frame["session_date"]}) if len(frame) else []
    one_session = len(sessions) == 1
    one_year = len({s[:4] for s in sessions}) == 1
    if one_session:
        title = f"Daily trends (session {sessions[0]})"
    elif one_year:  # the year in the title, month-day in the rows
        title = f"Daily trends (latest session per symbol, {sessions[0][:4]})"
    else:
        title = "Daily trends (latest session per symbol)"
    table = Table(title=title)
    columns = ["symbol", "session", "close", "day chg %", "SMA 20", "SMA 50", "RSI 14"]
    columns += ["vol 30 %", "vs 52w high %"]
    if one_session:
        columns.remove("session")
    elif one_year:
        columns[1] = "day"

    def fmt(value: float | None, spec: str = ".2f") -> str:
        return "-" if value is None or value != value else format(value, spec)

    rows = [
        [
            row.symbol,
            *([] if one_session else [str(row.session_date)[5 if one_year else 0 :]]),
            fmt(row.close),
            fmt(row.change_pct, "+.2f"),
            fmt(row.sma_20),
            fmt(row.sma_50),
            fmt(row.rsi_14, ".1f"),
            fmt(None if row.volatility_30 is None else row.volatility_30 * 100, ".1f"),
            fmt(row.pct_from_52w_high, "+.1f"),
        ]
        for row in frame.itertuples()
    ]
    for index, column in enumerate(columns):
        # Narrow: each column as wide as its widest cell (or header word), the headers
        # wrap, no figure or date is cut.
        narrowest = max([len(r[index]) for r in rows] + [len(w) for w in column.split()])
        table.add_column(
            column,
            justify="left" if column in ("symbol", "session", "day") else "right",
            width=narrowest if width < WIDE_TABLES else None,
        )
    for cells in rows:
        table.add_row(*cells)
    if len(frame) and frame["sma_50"].isna().all():
        table.caption = (
            "SMA 50 needs 50 sessions, RSI 15: load history with 'stockpipe backfill --from DATE'"
        )
    return table


def print_node(node) -> None:
    """A line per model as it is built; a test only when it fails."""
    if node.kind == "model" or node.failed:
        err.print(f"  {node.kind} {node.name}: {node.status} ({node.seconds:.2f}s)")


class _ConsoleLines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        console.print(record.getMessage())


@contextlib.contextmanager
def printed_lines(logger_name: str) -> Iterator[None]:
    """Within the block, what ``logger_name`` logs at INFO and above is printed as plain
    lines (a flow's progress: the flow logs, the CLI prints)."""
    logger = logging.getLogger(logger_name)
    handler = _ConsoleLines(logging.INFO)
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # not again through the root logger's handler
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
