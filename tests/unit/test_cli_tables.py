"""The command line's tables fit 80 columns (a pipe, a log) without cutting a cell."""

from __future__ import annotations

from datetime import date

import pandas as pd
from rich.console import Console

from stockpipe.cli.render import trends_table


def trends(sessions: list[date]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": [f"SYM{i}" for i in range(len(sessions))],
            "session_date": sessions,
            "close": 1234.56,
            "change_pct": -12.34,
            "sma_20": 1200.5,
            "sma_50": 1100.25,
            "rsi_14": 55.5,
            "volatility_30": 0.3512,
            "pct_from_52w_high": -45.6,
        }
    )


def rendered(table) -> str:
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()


def test_daily_trends_of_one_session_fit_80_columns_with_the_session_in_the_title() -> None:
    text = rendered(trends_table(trends([date(2026, 12, 4)] * 3)))
    assert "Daily trends (session 2026-12-04)" in text
    assert "…" not in text and max(map(len, text.splitlines())) <= 80
    assert "1234.56" in text and "-12.34" in text and "-45.6" in text  # the last column too


def test_daily_trends_of_several_sessions_show_each_session_whole() -> None:
    text = rendered(trends_table(trends([date(2026, 12, 4), date(2026, 12, 3)])))
    assert "latest session per symbol, 2026" in text and "12-04" in text and "12-03" in text
    assert "…" not in text and max(map(len, text.splitlines())) <= 80
    assert "-45.6" in text  # the last column still there: the console crops, not wraps
    across_years = rendered(trends_table(trends([date(2026, 1, 2), date(2025, 12, 31)])))
    assert "2026-01-02" in across_years and "2025-12-31" in across_years
