"""A warehouse with a year of daily history and a session of minute bars, built into the
marts (and their snapshot), for the dashboard's and the report's tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from stockpipe import market_calendar as mc
from stockpipe.drain.loader import load_batch
from stockpipe.settings import Settings, load_settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.warehouse import Warehouse
from tests.support import build_marts, raw_rows_from_bars, set_up_warehouse

SYMBOLS = ["AAPL", "MSFT", "NVDA"]
SESSION = mc.session("2025-11-26")
FETCHED = datetime(2025, 11, 27, tzinfo=UTC)


def load_history(settings: Settings, symbols: list[str] = SYMBOLS) -> None:
    """Daily bars for the year before SESSION (a backfill), SESSION's minute bars (ingest)."""
    market = SimulatedMarket(seed=21)
    year = mc.sessions_between("2024-11-25", mc.previous_session(SESSION.day).day)
    daily = market.fetch(symbols, year[0].open, year[-1].close, "1d")
    minutes = market.fetch(symbols, SESSION.open, SESSION.close)
    rows = pd.concat(
        [
            raw_rows_from_bars(daily, FETCHED, interval="1d"),
            raw_rows_from_bars(minutes, FETCHED, first_offset=len(daily)),
        ],
        ignore_index=True,
    )
    set_up_warehouse(settings)
    with Warehouse.connect(settings, "transform") as warehouse:
        load_batch(warehouse, rows, {("prices", 0): len(rows)}, None)
        build_marts(warehouse)


@pytest.fixture(scope="module")
def _built_history(tmp_path_factory: pytest.TempPathFactory, _dbt_dir: Path) -> Path:
    """The history loaded and built once per module (dbt takes seconds): a home directory
    each test gets a copy of."""
    home = tmp_path_factory.mktemp("history") / "home"
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("STOCKPIPE_"):
                env.delenv(name)
        env.setenv("STOCKPIPE_HOME", str(home))
        env.setenv("STOCKPIPE_TRENDS__DBT_DIR", str(_dbt_dir))
        load_history(load_settings())
    return home


@pytest.fixture
def history_settings(_built_history: Path) -> Iterator[Settings]:
    """The built history in this test's own home (a test may write to it)."""
    settings = load_settings()
    shutil.copytree(_built_history, settings.home_dir)
    yield settings
