"""Bars loaded into RAW as the drain loads them, and the marts built over them, without a
broker: for the tests of the SQL models and what reads them."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from stockpipe import market_calendar as mc
from stockpipe.drain.loader import load_batch
from stockpipe.warehouse import Warehouse
from tests.support import build_marts, raw_rows_from_bars

FETCHED = datetime(2026, 1, 1, tzinfo=UTC)


def load(warehouse: Warehouse, bars: pd.DataFrame, loaded_at: datetime | None = None) -> None:
    """Load bars into RAW as the drain would (no build)."""
    rows = raw_rows_from_bars(bars, FETCHED, loaded_at=loaded_at)
    load_batch(warehouse, rows, {("prices", 0): len(bars)}, None)


def load_and_build(warehouse: Warehouse, bars: pd.DataFrame) -> None:
    load(warehouse, bars)
    build_marts(warehouse)


def three_bars_a_session(symbols: list[str], start: str, end: str, seed: int = 3) -> pd.DataFrame:
    """A multi-year series: per session, bars at the open, mid-session and the last minute."""
    rng = np.random.default_rng(seed)
    frames = []
    for symbol in symbols:
        price = rng.uniform(20, 400)
        for session in mc.sessions_between(start, end):
            minutes = session.minutes
            for ts in (minutes[0], minutes[len(minutes) // 2], minutes[-1]):
                open_ = price
                price = price * np.exp(rng.normal(0, 0.012))
                high = max(open_, price) * (1 + abs(rng.normal(0, 0.002)))
                low = min(open_, price) * (1 - abs(rng.normal(0, 0.002)))
                frames.append((symbol, ts, open_, high, low, price, int(rng.integers(0, 50_000))))
    return pd.DataFrame(frames, columns=["symbol", "ts", "open", "high", "low", "close", "volume"])
