"""The live tier on backend=snowflake: a session followed live sends Snowflake not one
statement (no warehouse resumed, no credit), while the drain of record loads it on its
cadence."""

from __future__ import annotations

import pytest

from stockpipe.live.snapshot import read_snapshot, snapshot_dir
from stockpipe.settings import Settings, load_settings
from tests.snowflake.test_pipeline import SESSION, stockpipe
from tests.support import SnowflakeServer
from tests.support.live import Running

pytestmark = pytest.mark.integration
SYMBOLS = ["AAPL", "MSFT", "NVDA"]


def recorded(server: SnowflakeServer) -> int:
    """Statements the Snowflake server took so far, from any session on any database."""
    return len(server.record.read_text().splitlines()) if server.record.exists() else 0


def test_the_live_tier_uses_no_snowflake_warehouse(
    env_settings: Settings,
    snowflake_server: SnowflakeServer,
    snowflake_env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", ",".join(SYMBOLS))
    settings = load_settings()
    assert settings.warehouse.backend == "snowflake"
    assert stockpipe("warehouse", "setup").returncode == 0
    assert stockpipe("ingest", "--session", SESSION).returncode == 0
    before = recorded(snowflake_server)
    ours = len(snowflake_server.statements(snowflake_env))

    running = Running(settings)
    try:
        running.showing(len(SYMBOLS) * 390)
    finally:
        running.stop()
    _, frames = read_snapshot(snapshot_dir(settings))
    assert sorted(frames["latest_quote"]["symbol"]) == SYMBOLS
    assert recorded(snowflake_server) == before  # the whole session live: no statement

    drained = stockpipe("drain")  # the cadence's drain loads the warehouse of record
    assert drained.returncode == 0, drained.stdout + drained.stderr
    loaded = [e for e in snowflake_server.statements(snowflake_env)[ours:] if e["ok"]]
    assert any("RAW.STOCK_PRICES" in e["sql"].upper() for e in loaded)
