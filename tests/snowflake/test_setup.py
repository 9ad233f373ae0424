"""`stockpipe warehouse setup` on a new Snowflake account, over HTTP with the real connector.

The tier's server starts as a new account does: the database and schema a login names do
not exist until the set-up creates them. The first run sets everything up, each statement
as the role Snowflake requires; a second changes nothing; one stopped part-way finishes on
the next run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from stockpipe.settings import load_settings
from stockpipe.warehouse import Warehouse, WarehouseNotSetUp
from stockpipe.warehouse.setup import DEFAULT_SQL_DIR
from tests.support import SnowflakeServer

SETUP = [sys.executable, "-m", "stockpipe.cli", "warehouse", "setup"]
SQL_FILES = sorted(p.name for p in DEFAULT_SQL_DIR.glob("*.sql"))
# Only ACCOUNTADMIN may create a resource monitor or assign one to a warehouse, and only a
# role with CREATE ROLE (USERADMIN) makes roles; everything else is the set-up role's.
ACCOUNT_ADMIN_STATEMENTS = re.compile(
    r"^(create resource monitor|alter resource monitor|alter warehouse \w+ set resource_monitor)",
    re.IGNORECASE,
)
USER_ADMIN_STATEMENTS = re.compile(r"^(create role|grant role)", re.IGNORECASE)


def setup(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SETUP, *args], env=os.environ | env, capture_output=True, text=True, timeout=300
    )


def applied(output: str) -> list[str]:
    return re.findall(r"^\s+(\S+\.sql): applied$", output, re.MULTILINE)


def recorded() -> dict[str, str]:
    """The set-up's record (file name -> checksum), read as READER."""
    with Warehouse.connect(load_settings(), "read") as warehouse:
        return dict(warehouse.query("select file_name, checksum from RAW.SQL_APPLIED"))


def test_a_new_account_is_set_up_by_the_first_run_and_left_alone_by_the_second(
    snowflake_server: SnowflakeServer, snowflake_env: str
) -> None:
    settings = load_settings()
    with (
        pytest.raises(WarehouseNotSetUp, match="stockpipe warehouse setup"),
        Warehouse.connect(settings, "load"),
    ):
        pass

    before = len(snowflake_server.statements(snowflake_env))
    first = setup()
    assert first.returncode == 0, first.stdout + first.stderr
    assert applied(first.stdout) == SQL_FILES  # every file, in order, as it ran
    statements = [e for e in snowflake_server.statements(snowflake_env)[before:] if e["ok"]]
    assert sorted(recorded()) == SQL_FILES  # the account files too
    for entry in statements:
        sql = " ".join(entry["sql"].split())
        if ACCOUNT_ADMIN_STATEMENTS.match(sql):
            assert entry["role"] == "ACCOUNTADMIN", sql
        elif USER_ADMIN_STATEMENTS.match(sql):
            assert entry["role"] == "USERADMIN", sql
        elif not sql.lower().startswith("use role"):
            assert entry["role"] == "SYSADMIN", sql  # the owner of what it creates
    sql = [" ".join(e["sql"].lower().split()) for e in statements]
    assert any("statement_timeout_in_seconds = 1800" in s for s in sql)

    again = setup()
    assert again.returncode == 0, again.stdout + again.stderr
    assert applied(again.stdout) == []
    assert "unchanged" in again.stdout
    for purpose in ("load", "transform", "read"):
        with Warehouse.connect(settings, purpose) as warehouse:
            assert warehouse.query("select count(*) from RAW.STOCK_PRICES") == [(0,)]


def test_a_setup_that_failed_after_the_account_files_finishes_on_the_next_run(
    snowflake_server: SnowflakeServer, snowflake_env: str
) -> None:
    # The first statement after the account files fails, before RAW.SQL_APPLIED exists.
    snowflake_server.fail_next(
        r"^\s*create schema if not exists RAW\s*$",
        times=1,
        code="000630",
        sqlstate="57014",
        message="Statement reached its statement or warehouse timeout of 1,800 second(s) "
        "and was canceled.",
    )
    failed = setup()
    assert failed.returncode == 1
    assert "000_schema_raw.sql" in failed.stderr and "timeout" in failed.stderr
    assert applied(failed.stdout) == [n for n in SQL_FILES if n.startswith("000_account")]

    resumed = setup()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert applied(resumed.stdout) == SQL_FILES  # the unrecorded account files ran again
    assert sorted(recorded()) == SQL_FILES
    assert applied(setup().stdout) == []


def test_a_setup_killed_after_the_account_file_finishes_on_the_next_run(
    snowflake_env: str,
) -> None:
    process = subprocess.Popen(
        SETUP,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == "000_account.sql: applied":
            process.send_signal(signal.SIGKILL)
            break
    assert process.wait(60) == -signal.SIGKILL, "the set-up ended before it was killed"

    resumed = setup()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert sorted(recorded()) == SQL_FILES
    assert applied(setup().stdout) == []


def test_a_warehouse_set_up_before_contract_version_2_keeps_its_bars_and_grants(
    snowflake_server: SnowflakeServer, snowflake_env: str, tmp_path
) -> None:
    """VOLUME was BIGINT; 014 makes it FLOAT in place (Snowflake cannot change a NUMBER's
    scale): the bars keep their volumes and the runtime roles keep their privileges."""
    import shutil
    from datetime import UTC, datetime

    from stockpipe import market_calendar as mc
    from stockpipe.drain.loader import load_batch
    from stockpipe.sources.simulated import SimulatedMarket
    from stockpipe.warehouse.setup import setup_warehouse
    from tests.support import raw_rows_from_bars

    before = tmp_path / "sql"
    shutil.copytree(DEFAULT_SQL_DIR, before)
    (before / "014_raw_volume_fractional.sql").unlink()
    for name in ("010_raw_stock_prices.sql", "012_raw_stock_prices_batch.sql"):
        path = before / name
        text = re.sub(
            r"volume +float +not null,[^\n]*", "volume bigint not null,", path.read_text()
        )
        assert "volume bigint" in text
        path.write_text(text)
    settings = load_settings()
    with Warehouse.connect(settings, "setup") as warehouse:
        setup_warehouse(warehouse, settings, before)
    session = mc.session("2025-11-26")
    bars = SimulatedMarket().fetch(["AAPL"], session.open, session.minutes[3])
    fetched = datetime(2025, 11, 27, tzinfo=UTC)
    # Loaded by the set-up role: this code's runtime roles refuse a warehouse set up before it.
    with Warehouse.connect(settings, "setup") as warehouse:
        load_batch(warehouse, raw_rows_from_bars(bars, fetched), {("prices", 0): 3}, None)
    with (
        pytest.raises(WarehouseNotSetUp, match=r"014_raw_volume_fractional\.sql"),
        Warehouse.connect(settings, "load"),
    ):
        pass

    again = setup()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "014_raw_volume_fractional.sql" in applied(again.stdout)

    fractional = bars.iloc[[0]].assign(volume=[1234.5])
    later = datetime(2025, 11, 28, tzinfo=UTC)
    with Warehouse.connect(settings, "load") as warehouse:  # the loader may still write
        load_batch(warehouse, raw_rows_from_bars(fractional, later, 3), {("prices", 0): 4}, None)
    with Warehouse.connect(settings, "read") as warehouse:  # and the reader read
        stored = warehouse.query("select ts, volume from RAW.STOCK_PRICES order by ts")
        (volume_type,) = [
            row[1]
            for row in warehouse.query("describe table RAW.STOCK_PRICES")
            if row[0] == "VOLUME"
        ]
    assert volume_type == "FLOAT"
    assert [v for _, v in stored] == [1234.5, *bars["volume"].iloc[1:].astype(float)]
