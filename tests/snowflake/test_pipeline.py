"""The README's "Pointing it at real Snowflake" sequence, step by step, on the HTTP server:
set-up as the admin, then ingest, drain (LOADER), trends and alerts (TRANSFORMER),
validation (READER). Then the privilege matrix: every statement each runtime process sent
is allowed by its role's grants in the set-up SQL, and none of them is DDL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from stockpipe import alerts
from stockpipe.dashboard import APP, data
from stockpipe.settings import Settings, load_settings
from stockpipe.warehouse import Warehouse
from tests.snowflake.privileges import granted, granted_at_run_time, required, set_up_objects
from tests.support import SnowflakeServer

pytestmark = pytest.mark.integration

SESSION = "2025-11-26"
RUNTIME_ROLES = ("STOCKPIPE_LOADER", "STOCKPIPE_TRANSFORMER", "STOCKPIPE_READER")


def stockpipe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stockpipe.cli", *args],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def settings(
    env_settings: Settings, snowflake_env: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("STOCKPIPE_SOURCE__WATCHLIST", "AAPL,MSFT,NVDA")
    # A day: two page views in a row never straddle the end of the dashboard's cache time.
    monkeypatch.setenv("STOCKPIPE_DASHBOARD__CACHE_SECONDS", "86400")
    return load_settings()


def test_the_readme_sequence_runs_with_least_privilege(
    settings: Settings, snowflake_server: SnowflakeServer, snowflake_env: str
) -> None:
    refused = stockpipe("drain")  # before the set-up: refuses, naming the fix
    assert refused.returncode == 1
    assert "stockpipe warehouse setup" in refused.stderr + refused.stdout

    steps = [
        ("warehouse", "setup"),
        ("ingest", "--session", SESSION),
        ("drain",),
        ("trends", "--report"),
        ("validate", "--session", SESSION),
    ]
    for step in steps:
        done = stockpipe(*step)
        assert done.returncode == 0, f"{step}: {done.stdout}\n{done.stderr}"
    with Warehouse.connect(settings, "transform") as warehouse:
        found = alerts.find_alerts(warehouse, settings.trends.alert_day_change_pct)
        alerts.publish_new_alerts(settings, warehouse, found)
    with Warehouse.connect(settings, "read") as warehouse:
        assert warehouse.query("select count(*) from RAW.STOCK_PRICES") == [(3 * 390,)]
        assert warehouse.query("select count(*) from MARTS.DAILY_BARS") == [(3,)]
    # The report read the marts as READER; so does the dashboard.
    assert "AAPL: RSI(14)" in (settings.report_dir / "index.html").read_text()
    reader = data.open_reader(settings)
    try:
        assert data.symbols(reader) == ["AAPL", "MSFT", "NVDA"]
        assert len(data.intraday(reader, "AAPL")) == 390
        assert data.freshness(reader).latest_session.isoformat() == SESSION
    finally:
        reader.close()
    # The dashboard on Snowflake: its page, then a second view within the cache's time
    # reaches the warehouse not once (a resume bills at least 60 s).
    st.cache_data.clear()
    st.cache_resource.clear()
    page = AppTest.from_file(str(APP), default_timeout=120)
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    assert len(page.get("plotly_chart")) >= 4
    sent = len(snowflake_server.statements(snowflake_env))
    again = AppTest.from_file(str(APP), default_timeout=120)
    again.run()
    assert not again.exception and len(again.get("plotly_chart")) >= 4
    assert len(snowflake_server.statements(snowflake_env)) == sent
    st.cache_resource.clear()

    statements = snowflake_server.statements(snowflake_env)
    grants = granted(settings)
    for role, held in granted_at_run_time(statements).items():
        grants.setdefault(role, set()).update(held)
    ran_as = {e["role"] for e in statements}
    assert set(RUNTIME_ROLES) <= ran_as  # each process ran as its own role
    # Costs per purpose in QUERY_HISTORY: every session is tagged with its purpose.
    purposes = dict(zip(RUNTIME_ROLES, ("load", "transform", "read"), strict=True))
    tags = {(e["role"], e["query_tag"]) for e in statements if e["role"] in purposes}
    assert tags == {(role, f"stockpipe:{purpose}") for role, purpose in purposes.items()}
    setup_objects = set(set_up_objects(settings))
    problems = []
    owned: dict[str, set[str]] = {role: set() for role in RUNTIME_ROLES}
    for entry in statements:
        if entry["role"] not in RUNTIME_ROLES:
            continue
        # dbt's sessions sit in STAGING (the profile's schema); the others in RAW.
        schema = "STAGING" if entry["role"] == "STOCKPIPE_TRANSFORMER" else "RAW"
        needs = required(entry["sql"], snowflake_env, owned[entry["role"]], schema)
        if needs is None:
            problems.append(f"{entry['role']} ran DDL: {entry['sql'][:120]}")
            continue
        held = grants.get(entry["role"], set())
        if needs:  # any object access needs the warehouse, database and schema too
            database = snowflake_env
            needs |= {("USAGE", settings.warehouse.warehouse), ("USAGE", database)}
            needs |= {
                ("USAGE", name.rsplit(".", 1)[0]) for _, name in needs if name.count(".") == 2
            }
        for _, name in [n for n in needs if n[0] == "OWNERSHIP"]:
            # A role owns what it creates: never a set-up object, only where it may create.
            needs.discard(("OWNERSHIP", name))
            if name in setup_objects:
                problems.append(f"{entry['role']} ran DDL on set-up's {name}")
            needs.add(("CREATE TABLE", name.rsplit(".", 1)[0]))
        for missing in sorted(needs - held):
            problems.append(f"{entry['role']} lacks {missing} for: {entry['sql'][:120]}")
    assert not problems, "\n".join(sorted(set(problems)))
