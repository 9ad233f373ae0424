"""Helpers shared by tests and benchmarks: distinct bars as Kafka messages, warehouse reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from stockpipe.drain.offsets import read_offsets
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import Settings
from stockpipe.warehouse import Warehouse

# A contract-valid quote as it travels on the prices topic.
VALID_QUOTE = {
    "symbol": "AAPL",
    "ts": "2025-11-28T14:30:00Z",
    "open": 100.0,
    "high": 101.5,
    "low": 99.5,
    "close": 101.0,
    "volume": 1200,
    "interval": "1m",
    "source": "simulated",
    "fetched_at": "2025-11-28T14:31:02Z",
    "schema_version": 2,  # contracts.SCHEMA_VERSION
}

BASE = int(datetime(2020, 1, 2, 14, 30, tzinfo=UTC).timestamp())


def distinct_bar_messages(
    count: int, symbols: int = 500, fetched_at: str = "2026-01-01T00:00:00Z", start: int = 0
) -> Iterator[tuple[bytes, bytes]]:
    """``count`` contract-valid bars, each a different (symbol, ts), as (key, value)."""
    for i in range(start, start + count):
        symbol = f"SYM{i % symbols:03d}"
        ts = datetime.fromtimestamp(BASE + 60 * (i // symbols), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        close = 10 + (i * 7919 % 49_000) / 100
        yield (
            symbol.encode(),
            (
                f'{{"symbol":"{symbol}","ts":"{ts}","open":{close},"high":{close + 0.5},'
                f'"low":{close - 0.5},"close":{close},"volume":{1000 + i % 777},"interval":"1m",'
                f'"source":"simulated","fetched_at":"{fetched_at}","schema_version":1}}'
            ).encode(),
        )


def set_up_warehouse(settings: Settings) -> list[str]:
    """``stockpipe warehouse setup``: what an admin runs once before the pipeline."""
    from stockpipe.warehouse.setup import setup_warehouse

    with Warehouse.connect(settings, "setup") as warehouse:
        return setup_warehouse(warehouse, settings)


def build_marts(warehouse: Warehouse, full: bool = False, progress=None):
    """``stockpipe trends [--full]``'s build, on ``warehouse`` with the test's settings."""
    from stockpipe.settings import load_settings
    from stockpipe.trends import build_marts as build

    return build(warehouse, load_settings(), full=full, progress=progress)


def warehouse_state(settings: Settings) -> tuple[int, int, int]:
    """(rows, distinct (symbol, ts) keys, sum of stored next offsets) of the prices table."""
    # As the set-up role: a test's look may cover tables no runtime role reads.
    with Warehouse.connect(settings, "setup") as warehouse:
        return warehouse_state_of(warehouse, settings.kafka.prices_topic)


def warehouse_state_of(warehouse: Warehouse, topic: str) -> tuple[int, int, int]:
    exists = warehouse.query(
        "select count(*) from information_schema.tables "
        "where table_schema = 'RAW' and table_name = 'STOCK_PRICES'"
    )[0][0]
    if not exists:
        return 0, 0, 0
    rows, distinct = warehouse.query(
        "select count(*), count(distinct symbol || '|' || cast(ts as varchar)) "
        "from RAW.STOCK_PRICES"
    )[0]
    offsets = sum(o.next_offset for o in read_offsets(warehouse, topic).values())
    return int(rows), int(distinct), int(offsets)


def raw_rows_from_bars(
    bars, fetched_at: datetime, first_offset: int = 0, loaded_at=None, interval: str = "1m"
):
    """RAW.STOCK_PRICES rows for source bars (columns of stockpipe.sources.BAR_FIELDS)."""
    import pandas as pd

    from stockpipe.warehouse.raw_schema import RAW_COLUMNS

    now = (loaded_at or datetime.now(UTC)).replace(tzinfo=None)
    return pd.DataFrame(
        {
            "SYMBOL": bars["symbol"].to_numpy(),
            "TS": bars["ts"].dt.tz_localize(None).to_numpy(),
            "BAR_INTERVAL": interval,
            "OPEN": bars["open"].to_numpy(),
            "HIGH": bars["high"].to_numpy(),
            "LOW": bars["low"].to_numpy(),
            "CLOSE": bars["close"].to_numpy(),
            "VOLUME": bars["volume"].to_numpy(),
            "SOURCE": "simulated",
            "FETCHED_AT": fetched_at.replace(tzinfo=None),
            "SCHEMA_VERSION": 1,
            "KAFKA_TOPIC": "prices",
            "KAFKA_PARTITION": 0,
            "KAFKA_OFFSET": range(first_offset, first_offset + len(bars)),
            "KAFKA_TIMESTAMP": now,
            "LOADED_AT": now,
        },
        columns=list(RAW_COLUMNS),
    )


def check_query_frames(warehouse: Warehouse, symbol: str, bars: int) -> None:
    """``query_frame`` gives lower-case columns and numeric types whether rows match or not
    (``symbol`` has ``bars`` rows in RAW; no symbol "ZZZZ" has any)."""
    sql = "select symbol, ts, close, volume from RAW.STOCK_PRICES where symbol = %s"
    some, none = warehouse.query_frame(sql, (symbol,)), warehouse.query_frame(sql, ("ZZZZ",))
    assert list(some.columns) == list(none.columns) == ["symbol", "ts", "close", "volume"]
    assert (len(some), len(none)) == (bars, 0)
    assert some["close"].dtype == "float64" and some["ts"].dtype.kind == "M"
    assert (some["symbol"] == symbol).all() and some["close"].gt(0).all()


def read_topic(settings: Settings, topic: str) -> list:
    """Every message of ``topic`` from the beginning, read until each partition's end."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        settings.kafka.client_config()
        | {
            # A group of its own that commits nothing: every call reads from the beginning.
            "group.id": f"reader-{topic}-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    messages, at_end, partitions = [], set(), None
    while partitions is None or len(at_end) < partitions:
        for message in consumer.consume(1000, timeout=1.0):
            if message.error():
                at_end.add(message.partition())
            else:
                messages.append(message)
        assignment = consumer.assignment()
        partitions = len(assignment) if assignment else None
    consumer.close()
    return messages


def wait_until_serving(process: subprocess.Popen, url: str, what: str, bound: float = 120) -> None:
    """Until ``url`` answers 2xx, failing loudly if ``process`` exits first or ``bound``
    seconds pass (a bound for a broken install, not a pace)."""
    deadline = time.monotonic() + bound
    while True:
        assert process.poll() is None, f"{what} exited before it served"
        try:
            if httpx.get(url, timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{what} did not answer {url} within {bound:.0f} s"
        time.sleep(0.1)


@contextmanager
def running_prefect_server(home: Path):
    """`prefect server start` on a free port; yields the environment that points at it."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        server.terminate()
        pytest.fail("prefect server did not start:\n" + (home / "server.log").read_text()[-3000:])
    yield env
    server.terminate()
    server.wait(30)


@dataclass
class SnowflakeServer:
    """The Snowflake tier's server (tests/snowflake/server.py) as the fixture started it."""

    port: int
    record: Path
    log: Path

    def statements(self, database: str) -> list[dict]:
        """Every statement sessions on ``database`` sent, in order."""
        return [e for e in self._entries(database) if "waiting_for_lock" not in e]

    def lock_waits(self, database: str) -> list[dict]:
        """Each time a statement of a session on ``database`` waited for a table's lock
        (``waiting_for_lock``: the table), in order."""
        return [e for e in self._entries(database) if "waiting_for_lock" in e]

    def _entries(self, database: str) -> list[dict]:
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

    def set_rsa_public_key(self, user: str, public_key_pem: str) -> None:
        """What ``ALTER USER user SET RSA_PUBLIC_KEY`` does: key-pair logins of ``user``
        signed by its private key are accepted (without it, every one is refused)."""
        httpx.post(
            f"http://127.0.0.1:{self.port}/_test/rsa_public_key",
            json={"user": user, "key": public_key_pem},
            timeout=10,
        ).raise_for_status()

    def lose_next_uploads(self, action: str, times: int = 1) -> None:
        """The next ``times`` files PUT on a stage are lost (``drop``) or arrive with half
        their rows (``truncate``)."""
        httpx.post(
            f"http://127.0.0.1:{self.port}/_test/upload_faults",
            json={"action": action, "times": times},
            timeout=10,
        ).raise_for_status()


def snowflake_server_env(port: int) -> dict[str, str]:
    """STOCKPIPE_WAREHOUSE__* that point the real connector at the Snowflake tier's server
    (tests/snowflake/server.py) on ``port``, with a password login."""
    return {
        f"STOCKPIPE_WAREHOUSE__{name}": value
        for name, value in {
            "BACKEND": "snowflake",
            "ACCOUNT": "fakesnow",
            "USER": "fake",
            "PASSWORD": "snow",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PROTOCOL": "http",
        }.items()
    }


def memory_mb(pid: int | str = "self") -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process (this one by default) in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def prerequisite(missing: bool, reason: str) -> pytest.MarkDecorator:
    """A mark for a test that needs something of the machine (root, Chromium, swapon).

    On a developer's machine a missing one skips the test, saying why; under CI (``CI``
    set) the test fails instead: a CI machine has what deployments/local/setup.sh installs,
    and a test that skips there proves nothing while looking green (tests/conftest.py).
    """
    return pytest.mark.prerequisite(reason if missing else None)


def missing_prerequisite(reason: str) -> None:
    """At run time: skip, or fail under CI (see :func:`prerequisite`)."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and a prerequisite is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def topic_messages(settings: Settings) -> list[dict]:
    return [json.loads(m.value()) for m in read_topic(settings, settings.kafka.prices_topic)]
