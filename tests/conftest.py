"""Shared fixtures: a real KRaft broker for the session, the Snowflake tier's server
(``tests/snowflake/server.py``, started when a test asks for it), and per-test settings.

The broker is started with the same code as ``stockpipe kafka up`` (LocalBroker), on free
ports, with its state in a temporary directory. Each test gets its own topic names and
consumer group, so tests sharing the broker never see each other's messages.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import tests.fuzzing  # noqa: F401 - registers the hypothesis profiles (--hypothesis-profile)
from stockpipe.local_stack.broker import LocalBroker
from stockpipe.local_stack.processes import free_port
from stockpipe.settings import Settings, load_settings
from stockpipe.streaming.topics import ensure_topics
from stockpipe.warehouse import Warehouse
from stockpipe.warehouse.setup import setup_warehouse

if TYPE_CHECKING:
    import boto3

from tests.support import (
    SnowflakeServer,
    missing_prerequisite,
    snowflake_server_env,
    wait_until_serving,
)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[LocalBroker]:
    """One broker for the whole run, shared by the xdist workers (each test has topics and a
    consumer group of its own): the first worker that asks starts it, the last one done with
    it stops it. A broker per worker cost each worker its start and its idle CPU."""
    run_dir = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        run_dir = run_dir.parent  # the run's directory, above each worker's own
    state, lock = run_dir / "kafka-broker.json", run_dir / "kafka-broker.lock"
    with _locked(lock):
        shared = (
            json.loads(state.read_text())
            if state.exists()
            else {"port": free_port(), "controller_port": free_port(), "users": 0}
        )
        broker = LocalBroker(
            home=run_dir / "kafka-broker",
            port=shared["port"],
            controller_port=shared["controller_port"],
            heap="512m",
        )
        broker.start(progress=False)  # attaches when another worker started it
        shared["users"] += 1
        state.write_text(json.dumps(shared))
    yield broker
    with _locked(lock):
        shared = json.loads(state.read_text())
        shared["users"] -= 1
        if shared["users"] == 0:
            broker.stop()
        state.write_text(json.dumps(shared))


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus Pushgateway (Debian's prometheus-pushgateway) on a free port."""
    import shutil
    import subprocess

    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    assert binary, "prometheus-pushgateway is not installed (deployments/local/setup.sh)"
    address = f"127.0.0.1:{free_port()}"
    # A state file of its own: Debian's build otherwise shares the machine-wide one.
    state = tmp_path_factory.mktemp("pushgateway") / "pushgateway.data"
    process = subprocess.Popen(
        [binary, f"--web.listen-address={address}", f"--persistence.file={state}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until_serving(process, f"http://{address}/-/ready", "the Pushgateway")
    yield address
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="session")
def _dbt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dbt state directory for the session: each build re-parses only what changed."""
    return tmp_path_factory.mktemp("dbt")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _dbt_dir: Path) -> None:
    """No test reads the developer's STOCKPIPE_* environment or writes to ~/.prefect."""
    for name in list(os.environ):
        if name.startswith("STOCKPIPE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env file is read
    monkeypatch.setenv("STOCKPIPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STOCKPIPE_TRENDS__DBT_DIR", str(_dbt_dir))


@pytest.fixture
def env_settings(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    kafka_broker: LocalBroker,
    tmp_path: Path,
) -> Settings:
    """Settings (set in the environment, as flows read them) for a test on the real broker."""
    tag = re.sub(r"[^A-Za-z0-9]+", "_", request.node.name)[-60:]
    env = {
        "STOCKPIPE_HOME": str(tmp_path / "home"),
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "STOCKPIPE_KAFKA__PRICES_TOPIC": f"prices_{tag}",
        "STOCKPIPE_KAFKA__ALERTS_TOPIC": f"alerts_{tag}",
        "STOCKPIPE_KAFKA__DLQ_TOPIC": f"dlq_{tag}",
        "STOCKPIPE_KAFKA__CONSUMER_GROUP": f"drain_{tag}",
        "STOCKPIPE_KAFKA__LIVE_CONSUMER_GROUP": f"live_{tag}",
        "STOCKPIPE_KAFKA__PRICES_PARTITIONS": "3",
        "STOCKPIPE_DRAIN__MAX_WAIT_SECONDS": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    ensure_topics(settings.kafka)
    return settings


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
            cwd=Path(__file__).resolve().parents[1],
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
    env = snowflake_server_env(snowflake_server.port)
    for name, value in (env | {"STOCKPIPE_WAREHOUSE__DATABASE": database}).items():
        monkeypatch.setenv(name, value)
    yield database


# The longest files first. xdist hands each worker a file at a time (--dist loadfile) in
# collection order (--no-loadscope-reorder: by default it orders files by their number of
# tests, which put the few-test, minutes-long Ansible files last, so the suite waited for
# them at the end). These are the slowest files of CI's --durations (each 1.5 to 6 minutes
# on a busy machine); then whole directories, slowest first.
SLOWEST_FILES = (
    "tests/ansible/test_kafka_cluster_role.py",
    "tests/ansible/test_prefect_worker_role.py",
    "tests/ansible/test_kafka_role.py",
    "tests/ansible/test_provision.py",
    "tests/integration/test_exactly_once.py",
    "tests/e2e/test_deployments.py",
    "tests/e2e/test_demo.py",
    "tests/integration/test_newcomer.py",
    "tests/integration/test_cluster.py",
    "tests/e2e/test_blocks.py",
    "tests/integration/test_alerts.py",
    "tests/e2e/test_demo_live.py",
)
SLOWEST_DIRECTORIES = ("ansible", "e2e", "snowflake", "integration", "dashboard", "unit")


def _start_rank(item: pytest.Item) -> tuple[int, int]:
    path = Path(str(item.path)).resolve().relative_to(Path(__file__).resolve().parents[1])
    name = path.as_posix()
    if name in SLOWEST_FILES:
        return 0, SLOWEST_FILES.index(name)
    directory = path.parts[1] if len(path.parts) > 2 else ""
    rank = SLOWEST_DIRECTORIES.index(directory) if directory in SLOWEST_DIRECTORIES else 0
    return 1, rank


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_start_rank)  # stable: a file's tests keep their order


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A missing prerequisite (tests.support.prerequisite) skips the test, or fails it
    under CI."""
    for mark in item.iter_markers("prerequisite"):
        if mark.args and mark.args[0]:
            missing_prerequisite(mark.args[0])


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.client]:
    """A local S3 server (moto's, in server mode) with the lake's bucket, and the lake's
    settings pointing at it; yields a client of it."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "STOCKPIPE_LAKE__ENABLED": "true",
        "STOCKPIPE_LAKE__S3_BUCKET": "stockpipe-raw",
        "STOCKPIPE_LAKE__S3_ENDPOINT_URL": endpoint,
        "STOCKPIPE_LAKE__S3_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="stockpipe-raw")
    yield client
    server.stop()


@pytest.fixture
def warehouse() -> Iterator[Warehouse]:
    """The embedded warehouse, set up as the one-time set-up does, open as the set-up role."""
    with Warehouse.connect(load_settings(), "setup") as wh:
        setup_warehouse(wh, load_settings())
        yield wh
