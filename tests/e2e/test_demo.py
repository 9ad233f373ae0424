"""The README's main job, run as a user runs it: ``stockpipe demo``, twice.

It starts its own broker (the same code as ``stockpipe kafka up``), runs the Prefect flows
on an ephemeral API, and must leave the warehouse holding exactly the simulated bars, once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from stockpipe import market_calendar as mc
from stockpipe.local_stack.broker import LocalBroker
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import load_settings
from stockpipe.sources.simulated import SimulatedMarket
from stockpipe.warehouse import Warehouse

pytestmark = pytest.mark.e2e
SESSION = "2025-11-28"  # an early close: 210 bars; the previous session is 2025-11-26
WATCHLIST = ["AAPL", "MSFT", "NVDA", "JPM"]


ROOT = Path(__file__).resolve().parents[2]


def readme_sample_lines() -> list[str]:
    """The README's "What the demo prints", without tables and elisions, each cut before its
    first figure or path (what varies by day and machine)."""
    block = (ROOT / "README.md").read_text().split("### What the demo prints", 1)[1]
    lines = block.split("```", 2)[1].splitlines()[1:]
    return [
        re.split(r"[\d/]", line.strip("─ "))[0]
        for line in lines
        if line and line != "..." and line[0] not in "┏┃┡│└ "
    ]


def run_the_demo(env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "stockpipe.cli", "demo", "--session", SESSION]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_demo_runs_the_pipeline_and_a_rerun_does_not_duplicate(tmp_path: Path) -> None:
    port, controller_port = free_port(), free_port()
    env = {
        **os.environ,
        "STOCKPIPE_HOME": str(tmp_path / "home"),
        "STOCKPIPE_LOCAL_KAFKA__PORT": str(port),
        "STOCKPIPE_LOCAL_KAFKA__CONTROLLER_PORT": str(controller_port),
        "STOCKPIPE_LOCAL_KAFKA__JMX_EXPORTER_PORT": str(free_port()),
        "STOCKPIPE_SOURCE__WATCHLIST": ",".join(WATCHLIST),
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }  # no COLUMNS: the demo printing into a pipe (80 columns), as in a log

    broker = LocalBroker(tmp_path / "home" / "kafka", port=port, controller_port=controller_port)
    try:
        first = run_the_demo(env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "Latest per symbol (session 2025-11-28)" in first.stdout
        assert "Daily trends (session 2025-11-28)" in first.stdout
        assert "stockpipe dashboard" in first.stdout
        assert (tmp_path / "home" / "data-docs" / "report" / "index.html").exists()
        for symbol in WATCHLIST:
            assert f"│ {symbol}" in first.stdout
        assert "warehouse:" in first.stdout and "STOCKS.db" in first.stdout
        assert f"validation of session {SESSION}: 17/17 expectations passed" in first.stdout
        # The README shows every line the demo prints, in order, and none is broken mid-phrase.
        printed_lines = [line.strip("─ ") for line in first.stdout.splitlines()]
        at = 0
        for expected_line in readme_sample_lines():
            found = [
                i for i, line in enumerate(printed_lines[at:]) if line.startswith(expected_line)
            ]
            assert found, f"README line {expected_line!r} is not printed (after line {at})"
            at += found[0] + 1
        assert len(readme_sample_lines()) >= 18
        # Quiet by default: the demo's own lines; no librdkafka retries, no telemetry
        # attempt, no per-task Prefect lines on the terminal.
        printed = first.stdout + first.stderr
        for noise in ("%3|", "%4|", "telemetry", "Finished in state", "Unsupported property"):
            assert noise not in printed, noise
        assert len(first.stderr.strip().splitlines()) <= 5, first.stderr
        # dbt's docs site beside the Data Docs: the lineage graph a newcomer opens first.
        docs = tmp_path / "home" / "data-docs" / "dbt"
        assert f"dbt docs (models, tests, lineage graph): {docs / 'index.html'}" in " ".join(
            first.stdout.split()
        )
        parents = json.loads((docs / "manifest.json").read_text())["parent_map"]
        assert set(parents["model.stockpipe.daily_trends"]) == {
            "model.stockpipe.daily_bars",
            "model.stockpipe.daily_rsi",
        }
        catalog = json.loads((docs / "catalog.json").read_text())["nodes"]
        assert "RSI_14" in catalog["model.stockpipe.daily_trends"]["columns"]

        second = run_the_demo(env)
        assert second.returncode == 0, second.stdout + second.stderr
    finally:
        broker.stop()

    expected = SimulatedMarket(seed=42).fetch(
        WATCHLIST, mc.session("2025-11-26").open, mc.session(SESSION).close
    )
    assert len(expected) == len(WATCHLIST) * (390 + 210)

    os.environ["STOCKPIPE_HOME"] = env["STOCKPIPE_HOME"]
    with Warehouse.connect(load_settings()) as warehouse:
        raw = warehouse.query_frame(
            "select symbol, ts, open, high, low, close, volume from RAW.STOCK_PRICES "
            "where bar_interval = '1m'"
        )
        history = warehouse.query("select count(*) from RAW.STOCK_PRICES where bar_interval = '1d'")
        daily = warehouse.query_frame(
            "select symbol, session_date, bar_count, close, change_pct, sma_50, rsi_14, "
            "high_52w from MARTS.DAILY_TRENDS"
        )
    assert len(raw) == len(expected)  # every bar once, after two runs
    # A year of daily bars before the previous session, once.
    year = mc.sessions_between("2024-11-25", "2025-11-25")
    assert history == [(len(WATCHLIST) * len(year),)]
    raw["ts"] = pd.to_datetime(raw["ts"]).dt.tz_localize("UTC")
    merged = expected.merge(raw, on=["symbol", "ts"], suffixes=("", "_wh"), validate="1:1")
    assert len(merged) == len(expected)
    for column in ("open", "high", "low", "close", "volume"):
        assert (merged[column] == merged[f"{column}_wh"]).all(), column

    half_day = daily[daily["session_date"].astype(str) == SESSION]
    assert sorted(half_day["bar_count"]) == [210] * len(WATCHLIST)
    assert half_day["change_pct"].notna().all()  # the previous session gives the day change
    # The history fills the trend figures of the demo's session.
    assert half_day[["sma_50", "rsi_14", "high_52w"]].notna().all().all()
