"""The Snowflake tier: ``backend=snowflake`` with the real snowflake-connector-python over
HTTP to a server speaking Snowflake's protocol (``tests/snowflake/server.py``: fakesnow's,
recorded). No in-process patch and no DuckDB shortcut: the production code path, as far
as it can run without Snowflake.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stockpipe.processes import free_port
from stockpipe.settings import Settings, load_settings
from tests.support import set_up_warehouse

PROJECT_DIR = Path(__file__).resolve().parents[2]


@dataclass
class SnowflakeServer:
    port: int
    record: Path
    log: Path

    def statements(self, database: str) -> list[dict]:
        """Every statement sessions on ``database`` sent, in order."""
        lines = self.record.read_text().splitlines() if self.record.exists() else []
        entries = [json.loads(line) for line in lines]
        return [e for e in entries if e["database"] == database.upper()]

    def fail_next(self, pattern: str, times: int, code: str, sqlstate: str, message: str) -> None:
        """The next ``times`` statements matching ``pattern`` fail with that error."""
        httpx.post(
            f"http://127.0.0.1:{self.port}/_test/faults",
            json={
                "pattern": pattern,
                "times": times,
                "code": code,
                "sqlstate": sqlstate,
                "message": message,
            },
            timeout=10,
        ).raise_for_status()


@pytest.fixture(scope="session")
def snowflake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnowflakeServer]:
    directory = tmp_path_factory.mktemp("snowflake")
    server = SnowflakeServer(free_port(), directory / "statements.jsonl", directory / "log")
    with server.log.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.snowflake.server",
                "--port",
                str(server.port),
                "--record",
                str(server.record),
            ],
            cwd=PROJECT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120  # a bound for a broken install, not a pace
    while True:
        assert process.poll() is None, f"the Snowflake test server exited: {server.log.read_text()}"
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the Snowflake test server did not listen"
            time.sleep(0.1)
    yield server
    process.terminate()
    process.wait(30)


@pytest.fixture
def snowflake_env(
    snowflake_server: SnowflakeServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """STOCKPIPE_WAREHOUSE__* for the test server, with a database of this test's own;
    yields the database's name."""
    database = f"T_{uuid.uuid4().hex[:10].upper()}"
    for name, value in {
        "BACKEND": "snowflake",
        "ACCOUNT": "fakesnow",
        "USER": "fake",
        "PASSWORD": "snow",
        "HOST": "127.0.0.1",
        "PORT": str(snowflake_server.port),
        "PROTOCOL": "http",
        "DATABASE": database,
    }.items():
        monkeypatch.setenv(f"STOCKPIPE_WAREHOUSE__{name}", value)
    yield database


@pytest.fixture
def snowflake_settings(snowflake_env: str) -> Settings:
    """Settings for a set-up warehouse on the test server (no Kafka)."""
    settings = load_settings()
    set_up_warehouse(settings)
    return settings
